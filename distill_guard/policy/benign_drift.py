"""The benign-drift file (`kind: BenignDrift`, JSON): what `distill-guard calibrate` measured.

A policy points at it with `probes.benign_drift`; `policy validate` then warns about every limit
that sits inside the measured range, and a threshold with `benign_margin` derives its limits from
it (`benign_limits.py`). The file is data a reviewer can read, never code.

Format 2 adds, per probe label, the sha256 of the suite file it measured and (for panels) every
candidate's largest drift, plus the weights digest of the calibrated checkpoint. A format-1 file
(no `version`) is still read for the range warnings; it cannot back a `benign_margin`.
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
FORMAT_VERSION = 2


@dataclass(frozen=True)
class ProbeCalibration:
    """What one probe label was measured on: its suite file, and (panels) each candidate's largest drift per run."""

    suite_sha256: str
    per_candidate: dict[str, list[float]] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class BenignDrift:
    """Per probe label: the largest tested drift of each benign run (one value per run).

    `probes` (format 2) says which suite each label measured and, for a panel, the largest drift
    of every candidate per run; `weights_digest` identifies the calibrated checkpoint.
    """

    model: str
    runs: int
    per_probe: dict[str, list[float]]
    created: str = dataclasses.field(
        default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    )
    probes: dict[str, ProbeCalibration] = dataclasses.field(default_factory=dict)
    weights_digest: str | None = None
    version: int = FORMAT_VERSION

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
            return cls._from_json(json.loads(read_bounded(path, MAX_FILE_BYTES).decode("utf-8")))
        except DistillGuardError as exc:
            raise DistillGuardError(f"cannot read benign drift: {exc}") from exc
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DistillGuardError(f"{path}: cannot read benign drift: {exc}") from exc

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> BenignDrift:
        if data.pop("kind", None) != BENIGN_DRIFT_KIND:
            raise ValueError(f"not a {BENIGN_DRIFT_KIND} file")
        version = int(data.get("version", 1))
        if version not in (1, FORMAT_VERSION):
            raise ValueError(f"format {version}; this distill-guard reads formats 1 and {FORMAT_VERSION}")
        per_probe = {str(k): _finite(values) for k, values in data["per_probe"].items()}
        probes = {
            str(label): ProbeCalibration(
                str(entry["suite_sha256"]),
                {str(name): _finite(values) for name, values in entry.get("per_candidate", {}).items()},
            )
            for label, entry in (data.get("probes") or {}).items()
        }
        digest = data.get("weights_digest")
        return cls(
            str(data["model"]),
            int(data["runs"]),
            per_probe,
            str(data.get("created", "")),
            probes,
            str(digest) if digest is not None else None,
            version,
        )


def _finite(values: list[Any]) -> list[float]:
    out = [float(v) for v in values]
    if not all(math.isfinite(v) for v in out):
        raise ValueError("non-finite drift values")
    return out
