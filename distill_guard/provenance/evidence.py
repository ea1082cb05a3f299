"""Evidence gathering: every disk read the gate makes (manifests, data files, checkpoints) happens here.

The result is plain facts. `decide.py` turns facts into a Decision without touching the disk, so what
a decision rests on is always visible in these dataclasses.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill_guard.errors import DistillGuardError
from distill_guard.input_files import read_bounded
from distill_guard.policy.dataset_manifest import LoadedManifest, load_manifest
from distill_guard.policy.schema import GuardPolicy
from distill_guard.provenance.file_rows import RowContent, row_content
from distill_guard.provenance.integrity import FileCheck, verify_files
from distill_guard.provenance.lineage import (
    Lineage,
    card_says_halted,
    inspect_teacher,
    local_adapter_base,
    resolve_student,
)
from distill_guard.provenance.record_column import generator_counts, provenance_column
from distill_guard.provenance.signing import SignatureCheck, check_signatures
from distill_guard.quarantine import quarantine_marker_of
from distill_guard.row_files import concat_rows, parse_rows

if TYPE_CHECKING:
    from distill_guard.provenance.quarantine_registry import RegistryMatch
    from distill_guard.provenance.weights import TensorSource


@dataclass(frozen=True)
class ExaminedManifest:
    """A manifest after its files were re-hashed and its signature checked."""

    loaded: LoadedManifest
    files: tuple[FileCheck, ...]
    signature: SignatureCheck

    @property
    def name(self) -> str:
        return self.loaded.manifest.dataset.name

    @property
    def signed_by_trusted_signer(self) -> bool:
        return self.signature.status == "valid"


def examine_manifest(loaded: LoadedManifest, policy: GuardPolicy) -> ExaminedManifest:
    files = tuple(verify_files(loaded))
    return ExaminedManifest(loaded, files, check_signatures(loaded, policy.provenance.trusted_signers))


@dataclass(frozen=True)
class FileRows:
    """The rows of every manifest's files together, or why they could not be read as rows."""

    content: RowContent | None
    problem: str | None = None


@dataclass(frozen=True)
class DatasetFacts:
    """Everything a decision is computed from except the student, so it can be redone for another one."""

    dataset_name: str
    manifests: tuple[ExaminedManifest, ...]
    teacher_dir: Path | None
    record_counts: dict[str, int] | None
    rows: RowContent | None = None
    file_rows: FileRows | None = None
    transform: str | None = None
    derived_from: str | None = None

    @property
    def rows_are_the_files(self) -> bool:
        """The dataset shown holds exactly the verified files' rows (in any order)."""
        files = self.file_rows.content if self.file_rows else None
        return files is not None and self.rows is not None and self.rows.mismatch(files) is None


@dataclass(frozen=True)
class Quarantined:
    """A halted model offered as the student or the teacher, and what shows it was halted."""

    role: str
    evidence: str  # "carries MARKER" or "matches REGISTRY:LINE (...)", read after "the student"
    source: str


@dataclass(frozen=True)
class ModelFacts:
    """The student's lineage and, when a teacher checkpoint was given, what inspecting it showed."""

    student: Lineage
    checkpoint: Lineage | None
    quarantined: tuple[Quarantined, ...] = ()  # a halted model as student or teacher


def manifest_rows(loaded: Sequence[LoadedManifest]) -> Any:
    """The manifests' data files as one Arrow table, read from the bytes that were hashed.

    Raises DistillGuardError naming the file that is missing, changed since the manifest, or not a
    row file: a dataset is only ever built from verified files, never from a folder glob.
    """
    tables = []
    for manifest in loaded:
        for entry in manifest.manifest.files:
            path = manifest.data_path(entry)
            if not manifest.inside_folder(path):
                raise DistillGuardError(f"{path}: resolves outside the manifest's folder {manifest.folder}")
            data = read_bounded(path, entry.size)  # never more than the manifest says; FIFOs refused
            if len(data) != entry.size or hashlib.sha256(data).hexdigest() != entry.sha256:
                raise DistillGuardError(f"{path}: does not match the manifest's size and sha256 ({manifest.path})")
            tables.append(parse_rows(data, path.suffix, path))
    return concat_rows(tables)


def _file_rows(manifests: tuple[ExaminedManifest, ...]) -> FileRows | None:
    if not manifests or not all(c.ok for m in manifests for c in m.files):
        return None  # no manifest, or a file failed verification: other rules already speak
    try:
        paths = [m.loaded.data_path(entry) for m in manifests for entry in m.loaded.manifest.files]
        table = concat_rows([parse_rows(path, path.suffix, path) for path in paths])
    except DistillGuardError as exc:
        return FileRows(None, str(exc))
    return FileRows(row_content(table))


def transform_of(dataset: Any) -> str | None:
    """The format transform a `datasets.Dataset` applies when iterated (set_transform / with_transform)."""
    form = getattr(dataset, "format", None)
    if not isinstance(form, dict):
        return None
    transform = (form.get("format_kwargs") or {}).get("transform")
    if form.get("type") == "custom" or transform is not None:
        return getattr(transform, "__qualname__", None) or type(transform).__name__
    return None


def gather_dataset(
    policy: GuardPolicy,
    dataset: Any,
    manifests: Sequence[str | Path],
    teacher: str | Path | None,
) -> DatasetFacts:
    """Load and verify the manifests, read their files' rows, and digest the dataset shown.

    Raises PolicyError when a manifest file is invalid and DistillGuardError when the provenance
    column is not text (input errors, not denies).
    """
    examined = tuple(examine_manifest(load_manifest(p), policy) for p in manifests)
    column = provenance_column(dataset, policy.provenance.record_column)
    names = [m.name for m in examined] or [_dataset_name(dataset)]
    return DatasetFacts(
        "+".join(dict.fromkeys(names)),
        examined,
        Path(teacher) if teacher is not None else None,
        generator_counts(column) if column is not None else None,
        _safe_row_content(dataset),
        _file_rows(examined),
        transform_of(dataset),
    )


def recount_records(policy: GuardPolicy, facts: DatasetFacts, dataset: Any) -> DatasetFacts:
    """The same facts with the record counts of `dataset` (a clearance's dataset, after drops)."""
    column = provenance_column(dataset, policy.provenance.record_column)
    return replace(facts, record_counts=generator_counts(column)) if column is not None else facts


def quarantine_findings(registry: Path | None, **folders: Path | None) -> tuple[Quarantined, ...]:
    """Each model folder a halt quarantined, e.g. `quarantine_findings(None, student=DIR)`: its quarantine
    marker, else a model card that says it is halted, else (with a registry) a match of its weights.

    A PEFT adapter runs on top of its base, so a local base folder it names is checked the same way:
    an adapter saved over a halted checkpoint is that checkpoint plus a small change."""
    found = []
    for role, folder in folders.items():
        if folder is None:
            continue
        base = local_adapter_base(folder)
        checked = (_quarantined(registry, role, f) for f in (folder, *([base] if base is not None else [])))
        finding = next((f for f in checked if f is not None), None)
        if finding is not None:
            found.append(finding)
    return tuple(found)


def _quarantined(registry: Path | None, role: str, folder: Path) -> Quarantined | None:
    marker = quarantine_marker_of(folder) or card_says_halted(folder)
    if marker is not None:
        return Quarantined(role, f"carries {marker}", str(marker))
    if registry is not None and (match := _registry_match(registry, folder)) is not None:
        return Quarantined(role, match.describe(), f"{registry}:{match.entry.line}")
    return None


def _registry_match(registry: Path, folder: Path) -> RegistryMatch | None:
    """The registry entry `folder`'s weights match; None when they match none or cannot be read (the
    weight test reports on unreadable weights). An unreadable registry raises DistillGuardError."""
    from distill_guard.provenance.checkpoint_reading import UnreadableCheckpoint
    from distill_guard.provenance.quarantine_registry import match_folder

    try:
        return match_folder(registry, folder)
    except UnreadableCheckpoint:
        return None


def gather_models(
    policy: GuardPolicy, facts: DatasetFacts, student: str | None, module: Any = None, registry: Path | None = None
) -> ModelFacts:
    """The student's lineage, the teacher checkpoint's evidence against the student's weights, and any
    sign that either is a halted model (`registry`: the policy's `halt.quarantine_registry`, resolved)."""
    lineage = resolve_student(policy, student)
    student_dir = Path(student) if student is not None and Path(student).is_dir() else None
    markers = quarantine_findings(registry, student=student_dir, teacher=facts.teacher_dir)
    if facts.teacher_dir is None:
        return ModelFacts(lineage, None, markers)
    weights = _student_weights(student_dir, module)
    return ModelFacts(lineage, inspect_teacher(policy, facts.teacher_dir, weights, student_dir), markers)


def _student_weights(student_dir: Path | None, module: Any) -> TensorSource | None:
    from distill_guard.provenance.weights import TensorSource  # torch loads only when a teacher is compared

    if student_dir is not None:
        on_disk = TensorSource.from_dir(student_dir)
        if on_disk is not None:
            return on_disk
    return TensorSource.from_module(module) if module is not None and hasattr(module, "state_dict") else None


def _safe_row_content(dataset: Any) -> RowContent | None:
    try:
        return row_content(dataset)
    except (TypeError, ValueError, KeyError, IndexError):
        return None


def _dataset_name(dataset: Any) -> str:
    info = getattr(dataset, "info", None)
    return getattr(info, "dataset_name", None) or "unnamed"
