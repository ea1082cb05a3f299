"""The gate's decision as a pure function: facts in (see evidence.py), a Decision out; no disk, no clock.

It holds the ids of the built-in rules. Every declaration of a generator, in every manifest, is merged
before the generator is judged, and every declared generator is judged whether or not a row names
it. Only verified evidence can show a teacher is of another family (see lineage.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from distill_guard.policy.schema import GuardPolicy
from distill_guard.provenance.decision import Check, Decision, DroppedRecords, FiredRule, LineageReport, WaiverNote
from distill_guard.provenance.evidence import DatasetFacts, ExaminedManifest, ModelFacts, Quarantined
from distill_guard.provenance.lineage import Declaration, Evidence, Lineage, relation, resolve_teacher
from distill_guard.provenance.record_column import MISSING
from distill_guard.provenance.rules import Subject, evaluate, trust_of
from distill_guard.provenance.signing import signature_refused

MANIFEST_INTEGRITY = "manifest-integrity"
MANIFEST_SIGNATURE = "manifest-signature"
UNKNOWN_PROVENANCE = "unknown-provenance"
UNDECLARED_GENERATOR = "undeclared-generator"
DATASET_NOT_CLEARED = "dataset-not-cleared"
DATASET_NOT_FROM_MANIFEST = "dataset-not-from-manifest"
DATASET_TRANSFORMED = "dataset-transformed"
DROP_AFTER_CLEARANCE = "drop-after-clearance"
BATCH_NOT_FROM_DATASET = "batch-not-from-dataset"
QUARANTINED_CHECKPOINT = "quarantined-checkpoint"


@dataclass(frozen=True)
class Verdict:
    """The decision, and the generator ids whose rows are to be dropped (empty unless allowed)."""

    decision: Decision
    drop: frozenset[str] = frozenset()


@dataclass
class _Draft:
    """Mutable scratch space while one decision is assembled."""

    rules: list[FiredRule] = field(default_factory=list)
    waivers: list[WaiverNote] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    teachers: list[LineageReport] = field(default_factory=list)
    dropped: list[DroppedRecords] = field(default_factory=list)
    drop: set[str] = field(default_factory=set)


def decide(policy: GuardPolicy, facts: DatasetFacts, models: ModelFacts, today: dt.date) -> Verdict:
    """Facts + student -> Decision. Raises nothing for a deny."""
    draft = _Draft()
    unknown = policy.provenance.unknown.value
    for examined in facts.manifests:
        _manifest_findings(policy, examined, draft)
    if not facts.manifests:
        message = "no provenance manifest: where this data came from is unknown"
        draft.rules.append(FiredRule(UNKNOWN_PROVENANCE, unknown, facts.dataset_name, message))
    _binding_findings(policy, facts, draft)
    draft.rules += quarantined(models.quarantined, facts.dataset_name)
    for generator in generators_to_judge(facts):
        _judge_generator(policy, generator, facts, models, today, draft)
    decision = Decision(
        outcome=Decision.outcome_of(draft.rules),
        policy=policy.metadata.name,
        dataset=facts.dataset_name,
        decided_on=today.isoformat(),
        rules=tuple(draft.rules),
        waivers=tuple(dict.fromkeys(draft.waivers)),
        student=LineageReport.of(models.student),
        teachers=tuple(draft.teachers),
        dropped=tuple(draft.dropped) if draft.drop else (),
        checks=tuple(draft.checks),
    )
    return Verdict(decision, frozenset(draft.drop) if decision.allowed else frozenset())


def quarantined(markers: tuple[Quarantined, ...], subject: str) -> list[FiredRule]:
    """Always a deny, whatever the policy: a halted model neither starts a new run nor writes its data."""
    return [
        FiredRule(
            QUARANTINED_CHECKPOINT, "deny", subject, f"the {m.role} {m.evidence}: a halt quarantined it", (m.source,)
        )
        for m in markers
    ]


def not_cleared(
    policy: GuardPolicy,
    student: Lineage,
    message: str,
    evidence: tuple[str, ...],
    checks: tuple[Check, ...],
    today: dt.date,
    markers: tuple[Quarantined, ...] = (),
) -> Decision:
    """The train-begin decision for data that no clearance covers: the policy's `unknown` action (and a
    deny when the student is a quarantined checkpoint)."""
    rule = FiredRule(DATASET_NOT_CLEARED, policy.provenance.unknown.value, "trainer dataset", message, evidence)
    rules = [rule, *quarantined(markers, "trainer dataset")]
    return Decision(
        outcome=Decision.outcome_of(rules),
        policy=policy.metadata.name,
        dataset="(not cleared)",
        decided_on=today.isoformat(),
        rules=tuple(rules),
        student=LineageReport.of(student),
        checks=checks,
    )


def transformed(policy: GuardPolicy, transform: str) -> FiredRule:
    message = (
        f"the dataset applies a format transform ({transform}) when iterated, so the trainer would see "
        "rows the gate never cleared; apply it with .map() before clearing, or clear trainer.train_dataset"
    )
    return FiredRule(DATASET_TRANSFORMED, policy.provenance.unknown.value, "dataset", message)


def foreign_batch(policy: GuardPolicy, detail: str) -> FiredRule:
    message = f"{detail}: the data collator does not train on the cleared data"
    return FiredRule(BATCH_NOT_FROM_DATASET, policy.provenance.unknown.value, "data collator", message)


def declarations_of(generator: str, manifests: tuple[ExaminedManifest, ...]) -> tuple[Declaration, ...]:
    """Every manifest entry for `generator` (by id or `id@revision`), in every manifest."""
    return tuple(
        Declaration(str(m.loaded.path), g.base_model, m.signed_by_trusted_signer)
        for m in manifests
        for g in m.loaded.manifest.generators
        if generator in (g.model, f"{g.model}@{g.revision}")
    )


def generators_to_judge(facts: DatasetFacts) -> list[str]:
    """The ids rows name, plus every declared generator no such id covers: declared means judged."""
    named = list(facts.record_counts or {})
    for manifest in facts.manifests:
        for gen in manifest.loaded.manifest.generators:
            covered = any(n in (gen.model, f"{gen.model}@{gen.revision}") for n in named)
            if not covered:
                named.append(gen.model)
    return named


def _manifest_findings(policy: GuardPolicy, examined: ExaminedManifest, draft: _Draft) -> None:
    where = str(examined.loaded.path)
    for check in examined.files:
        draft.checks.append(Check(check.status, check.detail, check.path))
        if not check.ok:
            message = f"data file '{check.path}' failed verification ({check.status.replace('_', ' ')})"
            draft.rules.append(FiredRule(MANIFEST_INTEGRITY, "deny", where, message, (check.detail,)))
    sig = examined.signature
    draft.checks.append(Check(f"signature {sig.status}", f"{where}: {sig.detail}", where))
    if signature_refused(sig, policy.provenance):
        message = "the policy requires a signature by a trusted signer" if sig.status == "unsigned" else sig.detail
        draft.rules.append(FiredRule(MANIFEST_SIGNATURE, "deny", where, message, (sig.detail,)))


def _binding_findings(policy: GuardPolicy, facts: DatasetFacts, draft: _Draft) -> None:
    """The data shown must be the rows of the manifests' verified files (in any order)."""
    unknown = policy.provenance.unknown.value
    if facts.transform is not None:
        draft.rules.append(transformed(policy, facts.transform))
    if facts.file_rows is None or facts.rows is None:
        return
    files = facts.file_rows.content
    if files is None:
        message = f"the dataset cannot be matched to the manifest's files: {facts.file_rows.problem}"
        draft.rules.append(FiredRule(DATASET_NOT_FROM_MANIFEST, unknown, facts.dataset_name, message))
        return
    mismatch = facts.rows.mismatch(files)
    if mismatch is not None and facts.derived_from is not None and facts.rows.num_rows == files.num_rows:
        detail = (
            f"dataset derived in-process from the cleared rows of '{facts.derived_from}' "
            f"({files.num_rows} rows, as many as the files; {mismatch})"
        )
        draft.checks.append(Check("note", detail))
        return
    if mismatch is not None:
        message = f"the data shown to the gate is not the manifest's verified files: {mismatch}"
        hint = "build the dataset from the verified files with guard.load_dataset(manifest)"
        draft.rules.append(FiredRule(DATASET_NOT_FROM_MANIFEST, unknown, facts.dataset_name, message, (hint,)))
        return
    shared = facts.rows.shared_columns(files)
    if shared:
        detail = f"dataset rows are the manifest files' {files.num_rows} rows (columns compared: {', '.join(shared)})"
        draft.checks.append(Check("ok", detail))
    else:
        detail = f"dataset has as many rows as the manifest files ({files.num_rows}); no column in common to compare"
        draft.checks.append(Check("note", detail))


def _judge_generator(
    policy: GuardPolicy, generator: str, facts: DatasetFacts, models: ModelFacts, today: dt.date, draft: _Draft
) -> None:
    declared = declarations_of(generator, facts.manifests)
    owners = [m for m in facts.manifests if any(str(m.loaded.path) == d.manifest for d in declared)]
    if generator == MISSING:
        rows = (facts.record_counts or {}).get(MISSING, 0)
        teacher = Lineage(MISSING, (Evidence("records", f"{rows} rows carry no generator id"),))
    else:
        teacher = resolve_teacher(policy, generator, declared, models.checkpoint)
    if not owners and facts.manifests and generator != MISSING:
        message = "records name a generator that no manifest declares"
        draft.rules.append(FiredRule(UNDECLARED_GENERATOR, policy.provenance.unknown.value, generator, message))
    trusted, trust_detail = False, "not trusted: no audit covers it"
    for owner in owners or [None]:
        attestation = owner.loaded.manifest.attestation if owner else None
        signed = owner is not None and owner.signed_by_trusted_signer
        trusted, trust_detail = trust_of(policy, generator, today, attestation=attestation, attestation_signed=signed)
        if trusted:
            break
    related = relation(models.student, teacher)
    draft.teachers.append(LineageReport.of(teacher, related, trust_detail))
    dataset = owners[0].name if owners else facts.dataset_name
    subject = Subject(generator, dataset, related, teacher.families, trusted, trust_detail)
    fired, notes = evaluate(policy, subject, today)
    draft.waivers.extend(notes)
    for rule in fired:
        if rule.action == "drop_records" and rule.waived_by is None:
            if facts.record_counts is None:
                column = policy.provenance.record_column
                refused = f"no '{column}' column to drop records by: the whole dataset is refused"
                rule = FiredRule(rule.id, "deny", rule.subject, f"{rule.message} ({refused})", rule.evidence)
            elif generator not in draft.drop:
                draft.drop.add(generator)
                count = facts.record_counts.get(generator, 0)
                draft.dropped.append(DroppedRecords(generator, rule.id, count))
        draft.rules.append(rule)
