"""Pure rule evaluation: one subject (a generator of some records) against the policy's rules.

`when` matchers must all hold for a rule to fire. A subject whose lineage is unresolved and that
no rule addresses gets the policy's `unknown` action (deny by default): absence of evidence is
never read as safety. Waivers cancel a fired rule for a dataset until their expiry date; expired
waivers and expired audits are reported and ignored.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from fnmatch import fnmatchcase

from distill_guard.policy.dataset_manifest import Attestation
from distill_guard.policy.schema import GuardPolicy, Rule, When
from distill_guard.provenance.decision import FiredRule, WaiverNote
from distill_guard.provenance.lineage import Relation

UNKNOWN_LINEAGE = "unknown-lineage"


@dataclass(frozen=True)
class Subject:
    generator: str
    dataset: str
    relation: Relation
    families: tuple[str, ...]
    trusted: bool
    trust_detail: str

    def evidence(self) -> tuple[str, ...]:
        families = ", ".join(self.families) or "unresolved"
        relation = self.relation.replace("_", " ")
        return (f"teacher family: {families}; relation to the student: {relation}", self.trust_detail)


def trust_of(
    policy: GuardPolicy,
    generator: str,
    today: dt.date,
    *,
    attestation: Attestation | None = None,
    attestation_signed: bool = False,
) -> tuple[bool, str]:
    """Trusted through an unexpired policy audit, or an unexpired attestation in a trusted-signed manifest."""
    notes = []
    for entry in policy.provenance.trusted_generators:
        if fnmatchcase(generator, entry.match):
            audit = entry.audit
            if audit.expires >= today:
                return (
                    True,
                    f"trusted: policy audit {audit.ref} of '{entry.match}' valid until {audit.expires}",
                )
            notes.append(f"policy audit {audit.ref} expired on {audit.expires}")
    if attestation is not None:
        if not attestation_signed:
            notes.append(f"manifest attestation {attestation.reference} ignored: not signed by a trusted signer")
        elif attestation.expires < today:
            notes.append(f"manifest attestation {attestation.reference} expired on {attestation.expires}")
        else:
            return True, (
                f"trusted: signed manifest attestation {attestation.reference} by {attestation.audited_by} "
                f"valid until {attestation.expires}"
            )
    return False, "not trusted" + (f" ({'; '.join(notes)})" if notes else ": no audit covers it")


def when_holds(when: When, subject: Subject) -> bool:
    family = when.teacher_family
    if isinstance(family, list):
        if not set(family) & set(subject.families):
            return False
    elif family is not None and family != subject.relation:
        return False
    if when.teacher_trusted is not None and when.teacher_trusted != subject.trusted:
        return False
    if when.generator is not None and not any(fnmatchcase(subject.generator, g) for g in when.generator):
        return False
    return when.dataset is None or any(fnmatchcase(subject.dataset, g) for g in when.dataset)


def _waive(policy: GuardPolicy, rule: Rule, dataset: str, today: dt.date) -> tuple[str | None, list[WaiverNote]]:
    notes: list[WaiverNote] = []
    for waiver in policy.provenance.waivers:
        if waiver.rule != rule.id or not fnmatchcase(dataset, waiver.dataset):
            continue
        applied = waiver.expires >= today
        notes.append(WaiverNote(rule.id, dataset, waiver.reason, waiver.expires.isoformat(), applied))
        if applied:
            return f"waiver until {waiver.expires}", notes
    return None, notes


def evaluate(policy: GuardPolicy, subject: Subject, today: dt.date) -> tuple[list[FiredRule], list[WaiverNote]]:
    """Every rule that fires for `subject`, waivers applied, plus the `unknown` fallback."""
    fired: list[FiredRule] = []
    notes: list[WaiverNote] = []
    for rule in policy.provenance.rules:
        if not when_holds(rule.when, subject):
            continue
        waived_by, waiver_notes = _waive(policy, rule, subject.dataset, today)
        notes.extend(waiver_notes)
        message = rule.message or f"rule '{rule.id}' matched"
        fired.append(FiredRule(rule.id, rule.action.value, subject.generator, message, subject.evidence(), waived_by))
    if subject.relation == "unknown" and not fired:
        message = "the generator's lineage could not be resolved, so shared initialisation cannot be ruled out"
        fired.append(
            FiredRule(
                UNKNOWN_LINEAGE,
                policy.provenance.unknown.value,
                subject.generator,
                message,
                subject.evidence(),
            )
        )
    return fired, notes
