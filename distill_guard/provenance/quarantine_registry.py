"""The quarantine registry: name-free fingerprints of halted checkpoints, kept outside the checkpoints.

A quarantine marker and a model card live inside the checkpoint folder, so whoever holds the folder
can delete both and the gate would see a clean model. With `halt.quarantine_registry` set, the guard
also appends the halted checkpoint's fingerprint to a JSON Lines file the team keeps elsewhere, and
the gate denies a student or teacher whose weights match an entry.

A line written by this version (`"version": 2`) keeps, per weight matrix, its shape and its norm
profile (norm_profile.py), without the tensor's name; a folder matches when most of the entry's
matrices find a matrix of the folder with a close profile. Renaming or reordering tensors,
re-saving as `.bin`, sharding, float16/bfloat16, permuting hidden units and small noise do not
evade it. Training the halted copy on does: one more step at the halt's learning rate moves it
about as far from its entry as the halted run moved it from its base (measured in
`benchmarks/quarantine_fingerprint.py`); that copy is a same-init model, which the weight test
catches when it comes back as a teacher. The entry keeps only matrices the run moved clearly away
from where it started, so the base itself never matches (see `register`).

Lines without a version, written before, keep 32 values at fixed positions per matrix and are
still matched that way (renaming and dtype survive, permutation does not): call `register` on
those checkpoints again to get the stronger entry. A line of a version this code does not know
stops the gate at FILE:LINE rather than being skipped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch

from distill_guard.errors import DistillGuardError
from distill_guard.provenance.checkpoint_reading import (
    UnreadableCheckpoint,
    WeightSet,
    module_weights,
    read_checkpoint_or_adapter,
)
from distill_guard.provenance.norm_profile import PROFILE_POINTS, TOLERANCE, NormProfile, ProfileIndex, norm_profile

VERSION = 2
"""The line format `register` writes; lines without a version are format 1 (positional values)."""
ROWS = 8
COLUMNS = 4
"""Format 1 kept 4 positions in each of 8 rows spread over each matrix."""
POSITIONAL_TOLERANCE = 0.01
"""Format 1: largest difference, relative to the entry's largest kept value, for a value to match."""
MATCH_FRACTION = 0.5
"""An entry matches a model holding at least this share of its matrices. A student of a halted run that
froze its embeddings shares only those with the base, so the base itself never matches."""
DISTINCT_FROM_START = 2 * TOLERANCE
"""`register` with the run's starting weights keeps only matrices whose profile moved at least this far
from every starting matrix's, so the base a run began from cannot match its halted checkpoint's entry."""


@dataclass(frozen=True)
class PositionalMatrix:
    """A format-1 entry's matrix: its shape and values at fixed positions (read, never written)."""

    shape: tuple[int, ...]
    values: tuple[float, ...]

    def matches(self, other: PositionalMatrix) -> bool:
        if self.shape != other.shape or len(self.values) != len(other.values):
            return False
        scale = max(abs(v) for v in self.values)
        return all(abs(a - b) <= POSITIONAL_TOLERANCE * scale for a, b in zip(self.values, other.values, strict=True))


@dataclass(frozen=True)
class Fingerprint:
    """A model's matrices as each line format compares them."""

    profiles: tuple[NormProfile, ...]
    positional: tuple[PositionalMatrix, ...]

    @cached_property
    def index(self) -> ProfileIndex:
        """The profiles by shape, built once however many entries the registry holds."""
        return ProfileIndex(self.profiles)


@dataclass(frozen=True)
class RegistryEntry:
    """One halted checkpoint: where it was saved, by which run, at which step, and its matrices."""

    line: int
    checkpoint: str
    run_id: str
    step: int
    matrices: tuple[NormProfile, ...] | tuple[PositionalMatrix, ...]
    version: int = VERSION

    def to_json(self) -> dict[str, object]:
        matrices = [m.to_json() for m in self.matrices if isinstance(m, NormProfile)]
        return {
            "version": self.version,
            "checkpoint": self.checkpoint,
            "run_id": self.run_id,
            "step": self.step,
            "matrices": matrices,
        }

    def shared_with(self, fingerprint: Fingerprint) -> int:
        """How many of the entry's matrices some matrix of `fingerprint` matches, whatever their names and order."""
        if self.version == VERSION:
            return sum(fingerprint.index.matches(mine) for mine in self.matrices)  # type: ignore[arg-type]
        theirs = fingerprint.positional
        return sum(any(mine.matches(other) for other in theirs) for mine in self.matrices)  # type: ignore[union-attr]


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


def _positional(weights: WeightSet, name: str, shape: tuple[int, ...]) -> PositionalMatrix:
    rows = weights.rows(name, _spread(ROWS, shape[0])).detach().to(device="cpu", dtype=torch.float32)
    flat = rows.reshape(rows.shape[0], -1)
    picked = flat[:, _spread(COLUMNS, flat.shape[1])]
    return PositionalMatrix(tuple(shape), tuple(picked.reshape(-1).tolist()))


def fingerprint_sets(sets: Iterable[WeightSet]) -> Fingerprint:
    """Every matrix that is not all zero (a fresh LoRA B says nothing), in both line formats' terms."""
    named = [(s, name, shape) for s in sets for name, shape in s.shapes.items()]
    profiles = (norm_profile(s.fetch(name)) for s, name, _ in named)
    positional = (_positional(s, name, shape) for s, name, shape in named)
    return Fingerprint(tuple(p for p in profiles if p is not None), tuple(m for m in positional if any(m.values)))


def fingerprint_module(module: torch.nn.Module) -> Fingerprint:
    """The fingerprint of a model in memory: what is trained, whatever folder it says it came from."""
    return fingerprint_sets((module_weights(module),))


def fingerprint_folder(folder: Path) -> Fingerprint:
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
        data = json.loads(line, parse_constant=_refuse_constant)
    except RecursionError:
        raise DistillGuardError(f"{where}: not a JSON object (nested too deeply)") from None
    except ValueError as error:
        raise DistillGuardError(f"{where}: not a JSON object ({error})") from None
    matrices = data.get("matrices") if isinstance(data, dict) else None
    if not (isinstance(matrices, list) and matrices):
        raise DistillGuardError(f"{where}: an entry needs 'matrices', a non-empty list")
    version = data.get("version", 1)
    if version not in (1, VERSION) or isinstance(version, bool):
        raise DistillGuardError(
            f"{where}: registry line format {version!r} is unknown to this distill-guard (it reads 1 and {VERSION}); "
            "upgrade distill-guard rather than skip the entry"
        )
    parse = _parsed_profile if version == VERSION else _parsed_positional
    step = data.get("step")
    return RegistryEntry(
        number,
        str(data.get("checkpoint", "?")),
        str(data.get("run_id", "?")),
        step if isinstance(step, int) else -1,
        tuple(parse(where, m) for m in matrices),  # type: ignore[arg-type]
        version,
    )


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number an entry can hold: it would match nothing and clear every model")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _shape(data: dict) -> tuple[int, ...] | None:
    shape = data.get("shape")
    if isinstance(shape, list) and shape and all(_is_number(d) and isinstance(d, int) and d > 0 for d in shape):
        return tuple(shape)
    return None


def _numbers(data: dict, key: str) -> tuple[float, ...] | None:
    values = data.get(key)
    if isinstance(values, list) and values and all(_is_number(v) for v in values):
        return tuple(float(v) for v in values)
    return None


def _parsed_positional(where: str, data: object) -> PositionalMatrix:
    shape = _shape(data) if isinstance(data, dict) else None
    values = _numbers(data, "values") if isinstance(data, dict) else None
    if shape is None or values is None:
        raise DistillGuardError(f"{where}: each matrix needs 'shape' (positive ints) and 'values' (numbers)")
    return PositionalMatrix(shape, values)


def _parsed_profile(where: str, data: object) -> NormProfile:
    shape = _shape(data) if isinstance(data, dict) else None
    rows = _numbers(data, "row_norms") if isinstance(data, dict) else None
    columns = _numbers(data, "column_norms") if isinstance(data, dict) else None
    if shape is None or rows is None or columns is None:
        raise DistillGuardError(
            f"{where}: each matrix needs 'shape' (positive ints), 'row_norms' and 'column_norms' (numbers)"
        )
    if not all(_is_profile(norms) for norms in (rows, columns)):
        raise DistillGuardError(
            f"{where}: 'row_norms' and 'column_norms' must each be {PROFILE_POINTS} norms (finite, not negative, "
            "not all zero); an entry this code cannot compare would silently match nothing"
        )
    return NormProfile(shape, rows, columns)


def _is_profile(norms: tuple[float, ...]) -> bool:
    return len(norms) == PROFILE_POINTS and all(0 <= v < float("inf") for v in norms) and any(norms)


def best_match(path: Path, fingerprint: Fingerprint) -> RegistryMatch | None:
    """The entry sharing the largest share of its matrices with `fingerprint`, if at least MATCH_FRACTION."""
    return _best(path, read_registry(path), fingerprint)


def match_folder(path: Path, folder: Path) -> RegistryMatch | None:
    """`best_match` for a model folder, whose weights are read only when the registry has an entry."""
    entries = read_registry(path)
    return _best(path, entries, fingerprint_folder(folder)) if entries else None


def _best(path: Path, entries: Sequence[RegistryEntry], fingerprint: Fingerprint) -> RegistryMatch | None:
    matches = [RegistryMatch(path, entry, entry.shared_with(fingerprint)) for entry in entries]
    best = max(matches, key=lambda m: m.shared / len(m.entry.matrices), default=None)
    return best if best is not None and best.shared >= MATCH_FRACTION * len(best.entry.matrices) else None


def register(path: Path, folder: Path, *, run_id: str, step: int, start: Fingerprint | None = None) -> RegistryEntry:
    """Append `folder`'s fingerprint to the registry as one line, written and synced in one call.

    `start`: the fingerprint of the weights the run began from (its index is built once). Matrices the run left within
    DISTINCT_FROM_START of them are not kept (the base would match them); when no matrix moved that
    far, UnreadableCheckpoint says so rather than an entry that refuses the base.
    """
    text = _registry_text(path)
    _entries(path, text)  # a corrupt registry is reported before it is appended to
    matrices = fingerprint_folder(folder).profiles
    if not matrices:
        raise UnreadableCheckpoint(f"{folder}: every weight matrix is zero")
    started = start.index if start is not None else ProfileIndex(())
    moved = tuple(m for m in matrices if started.closest(m) > DISTINCT_FROM_START)
    if not moved:
        raise UnreadableCheckpoint(
            f"{folder}: no weight matrix moved more than {DISTINCT_FROM_START:g} (relative norm profile) from "
            "the weights the run started from, so an entry would also refuse the base; its quarantine marker "
            "and model card still mark it"
        )
    entry = RegistryEntry(len(text.splitlines()) + 1, str(folder.resolve()), run_id, step, moved)
    separator = "\n" if text and not text.endswith("\n") else ""
    line = (separator + json.dumps(entry.to_json(), sort_keys=True) + "\n").encode("utf-8")
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return entry
