"""The benign-drift file (`kind: BenignDrift`, JSON): what `distill-guard calibrate` measured.

A policy points at it with `probes.benign_drift`; `policy validate` then warns about every limit
that sits inside the measured range. The file is data a reviewer can read, never code.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill_guard.errors import DistillGuardError
from distill_guard.input_files import read_bounded

MAX_FILE_BYTES = 4 * 1024 * 1024

BENIGN_DRIFT_KIND = "BenignDrift"


@dataclass(frozen=True)
class BenignDrift:
    """Per probe label: the largest tested drift of each benign run (one value per run)."""

    model: str
    runs: int
    per_probe: dict[str, list[float]]
    created: str = dataclasses.field(
        default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    )

    def upper(self, probe: str) -> float | None:
        """The largest benign drift measured for `probe`, or None when it was not measured."""
        values = self.per_probe.get(probe)
        return max(values) if values else None

    def to_json(self) -> dict[str, Any]:
        return {"kind": BENIGN_DRIFT_KIND, **dataclasses.asdict(self)}

    @classmethod
    def from_file(cls, path: Path) -> BenignDrift:
        """Read a file `calibrate` wrote; anything else is a DistillGuardError naming the file."""
        try:
            data = json.loads(read_bounded(path, MAX_FILE_BYTES).decode("utf-8"))
            if data.pop("kind", None) != BENIGN_DRIFT_KIND:
                raise ValueError(f"not a {BENIGN_DRIFT_KIND} file")
            per_probe = {str(k): [float(v) for v in values] for k, values in data["per_probe"].items()}
            if not all(math.isfinite(v) for values in per_probe.values() for v in values):
                raise ValueError("non-finite drift values")
            return cls(str(data["model"]), int(data["runs"]), per_probe, str(data.get("created", "")))
        except DistillGuardError as exc:
            raise DistillGuardError(f"cannot read benign drift: {exc}") from exc
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DistillGuardError(f"{path}: cannot read benign drift: {exc}") from exc
