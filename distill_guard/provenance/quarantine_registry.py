"""The quarantine registry: name-free fingerprints of halted checkpoints, kept outside the checkpoints.

A quarantine marker and a model card live inside the checkpoint folder, so whoever holds the folder
can delete both and the gate would see a clean model. With `halt.quarantine_registry` set, the guard
also appends the halted checkpoint's fingerprint to a JSON Lines file the team keeps elsewhere, and
the gate denies a student or teacher whose weights match an entry.

A fingerprint is, per weight matrix, its shape and a few values at fixed positions, without the
tensor's name. Matching is by shape and values within a relative tolerance, so renaming tensors,
re-saving as `.bin`, sharding, or converting to float16 or bfloat16 does not evade it. Permuting
hidden units, adding noise or training further does; those give a same-init model, which the weight
test catches when it comes back as a teacher.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from distill_guard.errors import DistillGuardError
from distill_guard.provenance.checkpoint_reading import UnreadableCheckpoint, WeightSet, read_checkpoint_or_adapter

ROWS = 8
COLUMNS = 4
"""Values kept per matrix: 4 positions in each of 8 rows spread over it (a few kB per matrix read, on any model)."""
TOLERANCE = 0.01
"""Largest difference, relative to the entry's largest kept value, for a value to match: above bfloat16's
rounding (2^-8), far below what a training step on a quarantined model would need to hide it."""
MATCH_FRACTION = 0.5
"""An entry matches a model holding at least this share of its matrices. A student of a halted run that
froze its embeddings shares only those with the base, so the base itself never matches."""


@dataclass(frozen=True)
class Matrix:
    shape: tuple[int, ...]
    values: tuple[float, ...]

    def matches(self, other: Matrix) -> bool:
        if self.shape != other.shape or len(self.values) != len(other.values):
            return False
        scale = max(abs(v) for v in self.values)
        return all(abs(a - b) <= TOLERANCE * scale for a, b in zip(self.values, other.values, strict=True))

    def to_json(self) -> dict[str, object]:
        return {"shape": list(self.shape), "values": [float(f"{v:.7g}") for v in self.values]}


@dataclass(frozen=True)
class RegistryEntry:
    """One halted checkpoint: where it was saved, by which run, at which step, and its matrices."""

    line: int
    checkpoint: str
    run_id: str
    step: int
    matrices: tuple[Matrix, ...]

    def to_json(self) -> dict[str, object]:
        matrices = [m.to_json() for m in self.matrices]
        return {"checkpoint": self.checkpoint, "run_id": self.run_id, "step": self.step, "matrices": matrices}

    def shared_with(self, fingerprint: Sequence[Matrix]) -> int:
        return sum(any(mine.matches(theirs) for theirs in fingerprint) for mine in self.matrices)


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


def _spread(count: int, size: int) -> list[int]:
    return sorted({round(i * (size - 1) / max(1, count - 1)) for i in range(count)})


def _matrix(weights: WeightSet, name: str, shape: tuple[int, ...]) -> Matrix:
    rows = weights.rows(name, _spread(ROWS, shape[0])).detach().to(device="cpu", dtype=torch.float32)
    flat = rows.reshape(rows.shape[0], -1)
    picked = flat[:, _spread(COLUMNS, flat.shape[1])]
    return Matrix(tuple(shape), tuple(picked.reshape(-1).tolist()))


def fingerprint_sets(sets: Iterable[WeightSet]) -> tuple[Matrix, ...]:
    """Every matrix with a non-zero kept value: an all-zero one (a fresh LoRA B) says nothing."""
    matrices = (_matrix(s, name, shape) for s in sets for name, shape in s.shapes.items())
    return tuple(m for m in matrices if any(m.values))


def fingerprint_folder(folder: Path) -> tuple[Matrix, ...]:
    """The folder's fingerprint (full weights, or a PEFT adapter's); UnreadableCheckpoint when it has none."""
    weights = read_checkpoint_or_adapter(folder)
    if not weights.sets:
        raise UnreadableCheckpoint(weights.problem or f"{folder}: no weights")
    return fingerprint_sets(weights.sets)


def read_registry(path: Path) -> list[RegistryEntry]:
    """Every entry of `path` (none when the file does not exist yet); DistillGuardError at FILE:LINE otherwise.

    A registry that cannot be read is an error, never an empty list: that would clear every model.
    """
    return _entries(path, _registry_text(path))


def _registry_text(path: Path) -> str:
    if not path.exists():
        if not path.parent.is_dir():
            raise DistillGuardError(f"{path}: the quarantine registry's folder {path.parent} does not exist")
        return ""
    try:
        return path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DistillGuardError(f"{path}: the quarantine registry cannot be read ({error})") from None


def _entries(path: Path, text: str) -> list[RegistryEntry]:
    return [_entry(f"{path}:{n}", n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _entry(where: str, number: int, line: str) -> RegistryEntry:
    try:
        data = json.loads(line)
    except ValueError as error:
        raise DistillGuardError(f"{where}: not a JSON object ({error})") from None
    matrices = data.get("matrices") if isinstance(data, dict) else None
    if not (isinstance(matrices, list) and matrices):
        raise DistillGuardError(f"{where}: an entry needs 'matrices', a non-empty list")
    step = data.get("step")
    return RegistryEntry(
        number,
        str(data.get("checkpoint", "?")),
        str(data.get("run_id", "?")),
        step if isinstance(step, int) else -1,
        tuple(_parsed_matrix(where, m) for m in matrices),
    )


def _parsed_matrix(where: str, data: object) -> Matrix:
    shape = data.get("shape") if isinstance(data, dict) else None
    values = data.get("values") if isinstance(data, dict) else None
    if not (
        isinstance(shape, list)
        and shape
        and all(isinstance(d, int) and d > 0 for d in shape)
        and isinstance(values, list)
        and values
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    ):
        raise DistillGuardError(f"{where}: each matrix needs 'shape' (positive ints) and 'values' (numbers)")
    return Matrix(tuple(shape), tuple(float(v) for v in values))


def best_match(path: Path, fingerprint: Sequence[Matrix]) -> RegistryMatch | None:
    """The entry sharing the largest share of its matrices with `fingerprint`, if at least MATCH_FRACTION."""
    return _best(path, read_registry(path), fingerprint)


def match_folder(path: Path, folder: Path) -> RegistryMatch | None:
    """`best_match` for a model folder, whose weights are read only when the registry has an entry."""
    entries = read_registry(path)
    return _best(path, entries, fingerprint_folder(folder)) if entries else None


def _best(path: Path, entries: Sequence[RegistryEntry], fingerprint: Sequence[Matrix]) -> RegistryMatch | None:
    matches = [RegistryMatch(path, entry, entry.shared_with(fingerprint)) for entry in entries]
    best = max(matches, key=lambda m: m.shared / len(m.entry.matrices), default=None)
    return best if best is not None and best.shared >= MATCH_FRACTION * len(best.entry.matrices) else None


def register(path: Path, folder: Path, *, run_id: str, step: int) -> RegistryEntry:
    """Append `folder`'s fingerprint to the registry as one line, written and synced in one call."""
    text = _registry_text(path)
    _entries(path, text)  # a corrupt registry is reported before it is appended to
    matrices = fingerprint_folder(folder)
    if not matrices:
        raise UnreadableCheckpoint(f"{folder}: every weight matrix is zero where the fingerprint reads it")
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
