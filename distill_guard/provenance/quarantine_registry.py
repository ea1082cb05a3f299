"""The quarantine registry: name-free fingerprints of halted checkpoints, kept outside the checkpoints.

A quarantine marker and a model card live inside the checkpoint folder, so whoever holds the folder
can delete both and the gate would see a clean model. With `halt.quarantine_registry` set, the guard
also appends the halted checkpoint's fingerprint to a JSON Lines file the team keeps elsewhere, and
the gate denies a student or teacher whose weights match an entry.

A fingerprint is one digest per weight matrix over its shape and a fixed sample of its rows, without
the tensor's name: renaming tensors, re-saving as `.bin`, sharding or converting to float32 does not
change it. Permuting hidden units, adding noise or training further does; those are a same-init
model, which the weight test catches when the model comes back as a teacher.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from distill_guard.errors import DistillGuardError
from distill_guard.provenance.checkpoint_reading import (
    UnreadableCheckpoint,
    WeightSet,
    module_weights,
    read_checkpoint_or_adapter,
)

FINGERPRINT_ROWS = 8
"""Rows read per weight matrix, spread from the first to the last: a few kB per matrix on any model."""
MATCH_FRACTION = 0.5
"""An entry matches a model holding at least this share of its matrices. A student of a halted run that
froze its embeddings shares only those with the base, so the base itself never matches."""


@dataclass(frozen=True)
class RegistryEntry:
    """One halted checkpoint: where it was saved, by which run, at which step, and its matrices' digests."""

    line: int
    checkpoint: str
    run_id: str
    step: int
    matrices: frozenset[str]

    def to_json(self) -> dict[str, object]:
        return {
            "checkpoint": self.checkpoint,
            "run_id": self.run_id,
            "step": self.step,
            "matrices": sorted(self.matrices),
        }


@dataclass(frozen=True)
class RegistryMatch:
    registry: Path
    entry: RegistryEntry
    shared: int

    def describe(self) -> str:
        e = self.entry
        return (
            f"matches {self.registry}:{e.line} ({self.shared} of its {len(e.matrices)} weight matrices; "
            f"checkpoint {e.checkpoint} of run {e.run_id}, halted at step {e.step})"
        )


def _matrix_digest(weights: WeightSet, name: str, shape: tuple[int, ...]) -> str:
    last = shape[0] - 1
    rows = sorted({round(i * last / (FINGERPRINT_ROWS - 1)) for i in range(FINGERPRINT_ROWS)})
    sample = weights.rows(name, rows).detach().to(device="cpu", dtype=torch.float32).contiguous()
    digest = hashlib.sha256(repr(tuple(shape)).encode())
    digest.update(sample.numpy().tobytes())
    return digest.hexdigest()[:32]


def fingerprint_sets(sets: Iterable[WeightSet]) -> frozenset[str]:
    return frozenset(_matrix_digest(s, name, shape) for s in sets for name, shape in s.shapes.items())


def fingerprint_folder(folder: Path) -> frozenset[str]:
    """The folder's fingerprint (full weights, or a PEFT adapter's); UnreadableCheckpoint when it has none."""
    weights = read_checkpoint_or_adapter(folder)
    if not weights.sets:
        raise UnreadableCheckpoint(weights.problem or f"{folder}: no weights")
    return fingerprint_sets(weights.sets)


def fingerprint_module(module: torch.nn.Module) -> frozenset[str]:
    return fingerprint_sets([module_weights(getattr(module, "module", module))])


def read_registry(path: Path) -> list[RegistryEntry]:
    """Every entry of `path` (none when the file does not exist yet); DistillGuardError at FILE:LINE otherwise.

    A registry that cannot be read is an error, never an empty list: that would clear every model.
    """
    if not path.exists():
        if not path.parent.is_dir():
            raise DistillGuardError(f"{path}: the quarantine registry's folder {path.parent} does not exist")
        return []
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DistillGuardError(f"{path}: the quarantine registry cannot be read ({error})") from None
    return [_entry(path, number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _entry(path: Path, number: int, line: str) -> RegistryEntry:
    where = f"{path}:{number}"
    try:
        data = json.loads(line)
    except ValueError as error:
        raise DistillGuardError(f"{where}: not a JSON object ({error})") from None
    matrices = data.get("matrices") if isinstance(data, dict) else None
    if not (isinstance(matrices, list) and matrices and all(isinstance(m, str) and m for m in matrices)):
        raise DistillGuardError(f"{where}: an entry needs 'matrices', a non-empty list of digests")
    step = data.get("step")
    return RegistryEntry(
        number,
        str(data.get("checkpoint", "?")),
        str(data.get("run_id", "?")),
        step if isinstance(step, int) else -1,
        frozenset(matrices),
    )


def best_match(path: Path, fingerprint: frozenset[str]) -> RegistryMatch | None:
    """The entry sharing the most matrices with `fingerprint`, when it shares at least MATCH_FRACTION of its own."""
    matches = (
        RegistryMatch(path, entry, len(entry.matrices & fingerprint))
        for entry in read_registry(path)
        if len(entry.matrices & fingerprint) >= MATCH_FRACTION * len(entry.matrices)
    )
    return max(matches, key=lambda m: m.shared / len(m.entry.matrices), default=None)


def register(path: Path, folder: Path, *, run_id: str, step: int) -> RegistryEntry:
    """Append `folder`'s fingerprint to the registry as one line, written and synced in one call."""
    read_registry(path)  # a corrupt registry is reported before it is appended to
    matrices = fingerprint_folder(folder)
    text = path.read_text("utf-8") if path.exists() else ""
    entry = RegistryEntry(len(text.splitlines()) + 1, str(folder.resolve()), run_id, step, matrices)
    separator = "\n" if text and not text.endswith("\n") else ""
    line = (separator + json.dumps(entry.to_json(), sort_keys=True) + "\n").encode("utf-8")
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return entry
