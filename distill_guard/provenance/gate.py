"""ProvenanceGate: verify manifests, resolve lineage, apply rules, and bind the result to the data.

Two moments. `clear_dataset` runs where the user prepares data (raises nothing for a deny; the
Clearance carries the Decision and the dataset to train on, filtered when rows were dropped).
`check_at_train_begin` runs inside the callback: it digests the content of what the trainer will iterate
and accepts it only if it is (a column subset of) a cleared dataset. Anything else follows the
policy's `unknown` action, which is deny unless the policy says warn.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from distill_guard.policy.dataset_manifest import LoadedManifest, load_manifest
from distill_guard.policy.load import LoadedPolicy, today_utc
from distill_guard.policy.schema import GuardPolicy
from distill_guard.provenance.content_digest import ContentDigest, content_digest
from distill_guard.provenance.decision import Decision, DroppedRecords, FiredRule, LineageReport, WaiverNote
from distill_guard.provenance.integrity import FileCheck, verify_files
from distill_guard.provenance.lineage import (
    Evidence,
    Lineage,
    inspect_teacher,
    relation,
    resolve_student,
    resolve_teacher,
)
from distill_guard.provenance.record_column import (
    MISSING,
    generator_counts,
    provenance_column,
    rows_to_keep,
    select_rows,
)
from distill_guard.provenance.rules import Subject, evaluate, trust_of
from distill_guard.provenance.signing import SignatureCheck, signature_refused, verify_signature
from distill_guard.provenance.weights import TensorSource

MANIFEST_INTEGRITY = "manifest-integrity"
MANIFEST_SIGNATURE = "manifest-signature"
UNKNOWN_PROVENANCE = "unknown-provenance"
UNDECLARED_GENERATOR = "undeclared-generator"
DATASET_NOT_CLEARED = "dataset-not-cleared"
DROP_AFTER_CLEARANCE = "drop-after-clearance"


@dataclass(frozen=True)
class ExaminedManifest:
    """A manifest after its files were re-hashed and its signature checked."""

    loaded: LoadedManifest
    files: tuple[FileCheck, ...]
    signature: SignatureCheck

    @property
    def name(self) -> str:
        return self.loaded.manifest.dataset.name


def examine_manifest(loaded: LoadedManifest, policy: GuardPolicy) -> ExaminedManifest:
    files = tuple(verify_files(loaded))
    return ExaminedManifest(loaded, files, verify_signature(loaded.manifest, policy.provenance.trusted_signers))


@dataclass(frozen=True)
class DatasetFacts:
    """Everything a decision is computed from except the student, so it can be redone for another one."""

    dataset_name: str
    manifests: tuple[ExaminedManifest, ...]
    teacher_dir: Path | None
    record_counts: dict[str, int] | None
    dataset_rows: int | None = None


@dataclass(frozen=True)
class Clearance:
    """One `clear_dataset` result: train on `dataset` (filtered when rows were dropped), not the input."""

    decision: Decision
    dataset: Any
    content: ContentDigest | None
    student: str | None
    facts: DatasetFacts = field(repr=False)


@dataclass
class _DecisionDraft:
    """Mutable scratch space while one decision is assembled."""

    rules: list[FiredRule] = field(default_factory=list)
    waivers: list[WaiverNote] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    teachers: list[LineageReport] = field(default_factory=list)
    dropped: list[DroppedRecords] = field(default_factory=list)
    drop: set[str] = field(default_factory=set)


def _manifest_findings(policy: GuardPolicy, examined: ExaminedManifest, draft: _DecisionDraft) -> None:
    where = str(examined.loaded.path)
    for check in examined.files:
        draft.checks.append(f"{check.status:<14} {check.detail}")
        if not check.ok:
            message = f"data file '{check.path}' failed verification ({check.status.replace('_', ' ')})"
            draft.rules.append(FiredRule(MANIFEST_INTEGRITY, "deny", where, message, (check.detail,)))
    sig = examined.signature
    draft.checks.append(f"{'signature ' + sig.status:<14} {where}: {sig.detail}")
    if signature_refused(sig, policy.provenance):
        message = "the policy requires a signature by a trusted signer" if sig.status == "unsigned" else sig.detail
        draft.rules.append(FiredRule(MANIFEST_SIGNATURE, "deny", where, message, (sig.detail,)))


class ProvenanceGate:
    """Decides whether data may train the student; see the module docstring for the two moments."""

    def __init__(
        self, loaded: LoadedPolicy, *, student: str | Path | None = None, today: dt.date | None = None
    ) -> None:
        self.loaded = loaded
        self.policy = loaded.policy
        self.student = str(student) if student is not None else None
        self._today = today
        self.clearances: list[Clearance] = []

    @property
    def today(self) -> dt.date:
        return self._today or today_utc()

    # -- clearance -------------------------------------------------------------------------------

    def clear_dataset(
        self,
        dataset: Any,
        manifest: str | Path | Sequence[str | Path] | None = None,
        *,
        teacher: str | Path | None = None,
    ) -> Clearance:
        """Decide on `dataset`; its content digest (after any dropped rows) is remembered for train begin.

        Raises PolicyError when a manifest file is invalid and DistillGuardError when the provenance
        column is not text (input errors, not denies).
        """
        paths = [manifest] if isinstance(manifest, (str, Path)) else list(manifest or [])
        examined = tuple(examine_manifest(load_manifest(p), self.policy) for p in paths)
        column = provenance_column(dataset, self.policy.provenance.record_column)
        names = [m.name for m in examined] or [_dataset_name(dataset)]
        facts = DatasetFacts(
            "+".join(dict.fromkeys(names)),
            examined,
            Path(teacher) if teacher is not None else None,
            generator_counts(column) if column is not None else None,
            _row_count(dataset),
        )
        decision, drop = self._decide(facts, self.student)
        cleared = dataset
        if drop and decision.allowed and column is not None:
            cleared = select_rows(dataset, rows_to_keep(column, drop))
        bound = content_digest(cleared)
        if bound is None:
            message = (
                f"a {type(dataset).__name__} cannot be content-hashed, so the data the trainer iterates "
                "cannot be matched to this clearance; pass a map-style dataset (datasets.Dataset)"
            )
            rules = (
                *decision.rules,
                FiredRule(DATASET_NOT_CLEARED, self.policy.provenance.unknown.value, "dataset", message),
            )
            decision = replace(decision, rules=rules, outcome=Decision.outcome_of(rules))
        clearance = Clearance(decision, cleared, bound, self.student, facts)
        self.clearances.append(clearance)
        return clearance

    def _decide(
        self, facts: DatasetFacts, student: str | None, student_module: Any = None
    ) -> tuple[Decision, set[str]]:
        """Facts + student -> Decision, and the generator ids whose rows to drop. Raises nothing for a deny."""
        policy, today = self.policy, self.today
        student_lineage = resolve_student(policy, student)
        draft = _DecisionDraft()
        for examined in facts.manifests:
            _manifest_findings(policy, examined, draft)
        draft.checks.extend(_row_count_note(facts))
        if not facts.manifests:
            message = "no provenance manifest: where this data came from is unknown"
            draft.rules.append(
                FiredRule(UNKNOWN_PROVENANCE, policy.provenance.unknown.value, facts.dataset_name, message)
            )
        generators = list(facts.record_counts) if facts.record_counts is not None else _declared(facts)
        # the student's weights are read (through torch) only to compare them with a teacher checkpoint's
        checkpoint = (
            inspect_teacher(policy, facts.teacher_dir, _student_weights(student, student_module))
            if facts.teacher_dir
            else None
        )
        for generator in generators:
            self._judge_generator(generator, facts, student_lineage, checkpoint, draft)
        decision = Decision(
            outcome=Decision.outcome_of(draft.rules),
            policy=policy.metadata.name,
            dataset=facts.dataset_name,
            decided_on=today.isoformat(),
            rules=tuple(draft.rules),
            waivers=tuple(dict.fromkeys(draft.waivers)),
            student=LineageReport.of(student_lineage),
            teachers=tuple(draft.teachers),
            dropped=tuple(draft.dropped) if draft.drop else (),
            checks=tuple(draft.checks),
        )
        return decision, draft.drop if decision.allowed else set()

    def _judge_generator(
        self,
        generator: str,
        facts: DatasetFacts,
        student: Lineage,
        checkpoint: Lineage | None,
        draft: _DecisionDraft,
    ) -> None:
        policy = self.policy
        owner = next((m for m in facts.manifests if m.loaded.manifest.generator(generator)), None)
        if generator == MISSING:
            rows = (facts.record_counts or {}).get(MISSING, 0)
            teacher = Lineage(MISSING, (Evidence("records", f"{rows} rows carry no generator id"),))
        else:
            declared = owner.loaded.manifest.generator(generator) if owner else None
            base_model = declared.base_model if declared else None
            teacher = resolve_teacher(policy, generator, base_model=base_model, checkpoint=checkpoint)
        if owner is None and facts.manifests and generator != MISSING:
            message = "records name a generator that no manifest declares"
            draft.rules.append(FiredRule(UNDECLARED_GENERATOR, policy.provenance.unknown.value, generator, message))
        attestation = owner.loaded.manifest.attestation if owner else None
        signed = owner is not None and owner.signature.status == "valid"
        trusted, trust_detail = trust_of(
            policy, generator, self.today, attestation=attestation, attestation_signed=signed
        )
        related = relation(student, teacher)
        draft.teachers.append(LineageReport.of(teacher, related, trust_detail))
        subject = Subject(
            generator,
            owner.name if owner else facts.dataset_name,
            related,
            teacher.families,
            trusted,
            trust_detail,
        )
        fired, notes = evaluate(policy, subject, self.today)
        draft.waivers.extend(notes)
        for rule in fired:
            if rule.action == "drop_records" and rule.waived_by is None:
                if facts.record_counts is None:
                    column = policy.provenance.record_column
                    refused = f"no '{column}' column to drop records by: the whole dataset is refused"
                    message = f"{rule.message} ({refused})"
                    rule = FiredRule(rule.id, "deny", rule.subject, message, rule.evidence)
                elif generator not in draft.drop:
                    draft.drop.add(generator)
                    draft.dropped.append(DroppedRecords(generator, rule.id, facts.record_counts[generator]))
            draft.rules.append(rule)

    # -- train begin -----------------------------------------------------------------------------

    def check_at_train_begin(self, train_dataset: Any, model: Any) -> Decision:
        """The decision for the whole run; never raises for a deny and exports nothing.

        The trainer's data must match a clearance (see content_digest.py). The student is the model
        being trained (`model.name_or_path`) when it says, else the gate's `student`.
        """
        student = _module_dir(model) or self.student
        observed = _safe_content_digest(train_dataset)
        reasons = []
        for clearance in reversed(self.clearances):
            if clearance.content is None or observed is None:
                continue
            mismatch = clearance.content.mismatch(observed)
            if mismatch is None:
                return self._recheck(clearance, student, model, observed)
            reasons.append(f"cleared '{clearance.decision.dataset}': {mismatch}")
        return self._not_cleared(train_dataset, observed, reasons, student)

    def _recheck(self, clearance: Clearance, student: str | None, model: Any, observed: ContentDigest) -> Decision:
        """Reuse the clearance, unless it was decided for another student: then decide again."""
        match_note = f"ok             trainer dataset matches the cleared dataset ({observed.describe()})"
        if _same_model(student, clearance.student):
            decision = clearance.decision
            return replace(decision, checks=(*decision.checks, match_note))
        facts = clearance.facts
        column = provenance_column(clearance.dataset, self.policy.provenance.record_column)
        if column is not None:
            facts = replace(facts, record_counts=generator_counts(column))
        decision, drop = self._decide(facts, student, model)
        rules = list(decision.rules)
        for generator in sorted(drop):
            message = (
                f"records of '{generator}' would have to be dropped for student {student}, but the data "
                "is already fixed; clear the dataset with the student known (ProvenanceGate(student=...))"
            )
            rules.append(FiredRule(DROP_AFTER_CLEARANCE, "deny", generator, message))
        recheck = f"re-decided for student {student} (cleared for {clearance.student or 'an unstated student'})"
        return replace(
            decision,
            rules=tuple(rules),
            outcome=Decision.outcome_of(rules),
            dropped=clearance.decision.dropped,
            checks=(*decision.checks, match_note, recheck),
        )

    def _not_cleared(
        self, train_dataset: Any, observed: ContentDigest | None, reasons: list[str], student: str | None
    ) -> Decision:
        if observed is None:
            kind = type(train_dataset).__name__
            message = f"the trainer's dataset ({kind}) cannot be content-hashed, so it was never cleared"
        elif not self.clearances:
            message = "the dataset the trainer iterates was never cleared (call guard.clear_dataset first)"
        else:
            message = "the dataset the trainer iterates does not match any cleared dataset"
        hints = (
            "if rows were dropped, train on clearance.dataset",
            "if the trainer transforms data in __init__ (TRL SFTTrainer tokenizes), "
            "clear trainer.train_dataset after building the trainer",
        )
        action = self.policy.provenance.unknown.value
        rule = FiredRule(DATASET_NOT_CLEARED, action, "trainer dataset", message, (*reasons, *hints))
        return Decision(
            outcome=Decision.outcome_of([rule]),
            policy=self.policy.metadata.name,
            dataset="(not cleared)",
            decided_on=self.today.isoformat(),
            rules=(rule,),
            student=LineageReport.of(resolve_student(self.policy, student)),
            checks=(f"observed       {observed.describe()}",) if observed else (),
        )


def _row_count(dataset: Any) -> int | None:
    """Rows of a dataset that has columns (the CLI's placeholder for files without records has none)."""
    columns = getattr(dataset, "column_names", None)
    return len(dataset) if columns and hasattr(dataset, "__len__") else None


def _row_count_note(facts: DatasetFacts) -> list[str]:
    """Informational: rows shown to the gate vs JSON Lines records the manifests list."""
    files = [f for m in facts.manifests for f in m.loaded.manifest.files]
    if facts.dataset_rows is None or not files or any(f.records is None for f in files):
        return []
    listed = sum(f.records or 0 for f in files)
    if listed == facts.dataset_rows:
        return [f"{'ok':<14} dataset has {listed} rows, as many as the manifest files' records"]
    return [
        f"{'note':<14} dataset has {facts.dataset_rows} rows, the manifest files hold {listed} records "
        "(transformed data, or not these files)"
    ]


def _declared(facts: DatasetFacts) -> list[str]:
    return list(dict.fromkeys(g.model for m in facts.manifests for g in m.loaded.manifest.generators))


def _dataset_name(dataset: Any) -> str:
    info = getattr(dataset, "info", None)
    return getattr(info, "dataset_name", None) or "unnamed"


def _same_model(a: str | None, b: str | None) -> bool:
    """Same folder on disk (however spelled) or the same model id."""
    if a is None or b is None:
        return a == b
    if Path(a).exists() and Path(b).exists():
        return Path(a).resolve() == Path(b).resolve()
    return a == b


def _module_dir(model: Any) -> str | None:
    name = getattr(model, "name_or_path", None)
    return str(name) if name else None


def _student_weights(student: str | None, module: Any) -> TensorSource | None:
    if student is not None and Path(student).is_dir():
        on_disk = TensorSource.from_dir(Path(student))
        if on_disk is not None:
            return on_disk
    return TensorSource.from_module(module) if module is not None and hasattr(module, "state_dict") else None


def _safe_content_digest(dataset: Any) -> ContentDigest | None:
    try:
        return content_digest(dataset)
    except (TypeError, ValueError, KeyError, IndexError):
        return None
