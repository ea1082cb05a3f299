"""Checks that relate several places in a policy, each located at the exact offending line.

Errors make a policy invalid. Warnings (lint) keep it valid but tell the reviewer something will
not do what it seems to: an expired waiver is reported here and never applied at enforcement.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Iterable

from distill_guard.errors import SourceIssue
from distill_guard.policy.builtin_suites import BUILTIN_SUITES
from distill_guard.policy.schema import GuardPolicy, SuiteRef
from distill_guard.policy.yaml_source import YamlDocument

EXPIRY_SOON_DAYS = 14
# Rule ids the gate itself reports. A policy rule with one of these names would be confused with
# the built-in check in decisions and audit logs, and a waiver written for it would read as
# waiving the built-in check. Kept equal to the gate's ids by tests/hostile/test_reserved_ids.py.
RESERVED_RULE_IDS = frozenset(
    {
        "unknown-lineage",
        "manifest-integrity",
        "manifest-signature",
        "unknown-provenance",
        "undeclared-generator",
        "dataset-not-cleared",
        "dataset-not-from-manifest",
        "dataset-transformed",
        "batch-not-from-dataset",
        "drop-after-clearance",
    }
)


def _suggest(value: str, choices: Iterable[str]) -> str:
    guesses = difflib.get_close_matches(value, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean '{guesses[0]}'?)" if guesses else ""


def suite_label(ref: SuiteRef) -> str:
    """The name a suite carries in metrics and halt records: its name, then its target (not a panel's)."""
    if ref.name:
        return ref.name
    stem = ref.builtin_name or (ref.path or "suite").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    if ref.panel:  # a panel watches every candidate, so no one target names it
        return stem
    builtin = BUILTIN_SUITES.get(ref.builtin_name or "")
    target = ref.target or (builtin.default_target if builtin and ref.builtin_name else None)
    return f"{stem}-{target}" if target else stem


def semantic_errors(policy: GuardPolicy, doc: YamlDocument) -> list[SourceIssue]:
    issues: list[SourceIssue] = []
    family_names: dict[str, int] = {}
    for i, family in enumerate(policy.families):
        if family.name in family_names:
            issues.append(doc.issue(("families", i, "name"), f"families[{i}].name: duplicate family '{family.name}'"))
        family_names.setdefault(family.name, i)
    if policy.student.family and policy.student.family not in family_names:
        hint = _suggest(policy.student.family, family_names)
        issues.append(
            doc.issue(("student", "family"), f"student.family: no family named '{policy.student.family}'{hint}")
        )

    prov = policy.provenance
    for i, stated in enumerate(prov.teacher_families):
        if stated.family not in family_names:
            hint = _suggest(stated.family, family_names)
            where = ("provenance", "teacher_families", i, "family")
            issues.append(
                doc.issue(where, f"provenance.teacher_families[{i}].family: no family named '{stated.family}'{hint}")
            )
    rule_ids: dict[str, int] = {}
    for i, rule in enumerate(prov.rules):
        if rule.id in rule_ids:
            first = doc.locate(("provenance", "rules", rule_ids[rule.id], "id")).line
            issues.append(
                doc.issue(
                    ("provenance", "rules", i, "id"),
                    f"provenance.rules[{i}].id: duplicate rule id '{rule.id}' (first at line {first})",
                )
            )
        rule_ids.setdefault(rule.id, i)
        if rule.id in RESERVED_RULE_IDS:
            issues.append(
                doc.issue(
                    ("provenance", "rules", i, "id"),
                    f"provenance.rules[{i}].id: '{rule.id}' is a built-in check of the gate; choose another id",
                )
            )
        if isinstance(rule.when.teacher_family, list):
            for j, name in enumerate(rule.when.teacher_family):
                if name not in family_names:
                    where = ("provenance", "rules", i, "when", "teacher_family", j)
                    hint = _suggest(name, family_names)
                    issues.append(
                        doc.issue(where, f"provenance.rules[{i}].when.teacher_family: no family named '{name}'{hint}")
                    )
    for i, waiver in enumerate(prov.waivers):
        if waiver.rule not in rule_ids:
            hint = _suggest(waiver.rule, rule_ids)
            issues.append(
                doc.issue(
                    ("provenance", "waivers", i, "rule"),
                    f"provenance.waivers[{i}].rule: no rule with id '{waiver.rule}'{hint}",
                )
            )
    signer_names: set[str] = set()
    for i, signer in enumerate(prov.trusted_signers):
        if signer.name in signer_names:
            issues.append(doc.issue(("provenance", "trusted_signers", i, "name"), f"duplicate signer '{signer.name}'"))
        signer_names.add(signer.name)
    if prov.require_signature and not prov.trusted_signers:
        issues.append(
            doc.issue(
                ("provenance", "require_signature"), "provenance.require_signature: no trusted_signers are listed"
            )
        )

    labels: dict[str, int] = {}
    for i, ref in enumerate(policy.probes.suites):
        base = ("probes", "suites", i)
        if ref.builtin_name is not None:
            suite = BUILTIN_SUITES.get(ref.builtin_name)
            if suite is None:
                hint = _suggest(ref.builtin_name, BUILTIN_SUITES)
                known = ", ".join(sorted(BUILTIN_SUITES))
                issues.append(
                    doc.issue(
                        (*base, "use"),
                        f"probes.suites[{i}].use: unknown builtin suite '{ref.builtin_name}'{hint}; known: {known}",
                    )
                )
            else:
                if ref.target and not suite.needs_target:
                    issues.append(
                        doc.issue((*base, "target"), f"probes.suites[{i}].target: suite '{suite.name}' takes no target")
                    )
                if ref.panel and suite.kind != "preference":
                    issues.append(
                        doc.issue(
                            (*base, "panel"),
                            f"probes.suites[{i}].panel: suite '{suite.name}' is a {suite.kind} suite; "
                            "only preference suites can be watched as a panel",
                        )
                    )
                if suite.needs_target and not (ref.target or ref.panel or suite.default_target):
                    issues.append(
                        doc.issue(
                            base,
                            f"probes.suites[{i}]: suite '{suite.name}' has no default target; "
                            "give a 'target' or 'panel: true'",
                        )
                    )
                if suite.scores_are_probabilities and ref.threshold is not None:
                    issues.extend(_probability_threshold_errors(ref, doc, base))
        label = suite_label(ref)
        if label in labels:
            issues.append(
                doc.issue(base, f"probes.suites[{i}]: two suites are labelled '{label}'; give one a distinct 'name'")
            )
        labels.setdefault(label, i)
    return issues + _screening_errors(policy, doc)


def _screening_errors(policy: GuardPolicy, doc: YamlDocument) -> list[SourceIssue]:
    """Trusted sources are the canary's rank-test null: without a canary they would be read and never used."""
    section = policy.screening
    if section is None or section.trusted_sources is None:
        return []
    where = ("screening", "trusted_sources")
    if section.reference is not None:
        return [doc.issue(where, "screening.trusted_sources: give one trusted 'reference' or distinct trusted_sources")]
    if not section.canary_steps:
        return [doc.issue(where, "screening.trusted_sources: a null for the canary; set screening.canary_steps > 0")]
    seen: dict[str, int] = {}
    issues = []
    for i, name in enumerate(section.trusted_sources):
        if name in seen:
            message = (
                f"screening.trusted_sources[{i}]: '{name}' is listed twice (first as [{seen[name]}]); "
                "sources must be distinct"
            )
            issues.append(doc.issue((*where, i), message))
        seen.setdefault(name, i)
    return issues


def _probability_threshold_errors(ref: SuiteRef, doc: YamlDocument, base: tuple) -> list[SourceIssue]:
    threshold = ref.threshold
    assert threshold is not None
    issues = []
    if threshold.max_increase is not None and threshold.max_increase >= 1:
        issues.append(
            doc.issue(
                (*base, "threshold", "max_increase"),
                "threshold.max_increase: this suite scores a probability; use a value below 1",
            )
        )
    if threshold.max_score is not None and not 0 < threshold.max_score < 1:
        issues.append(
            doc.issue(
                (*base, "threshold", "max_score"),
                "threshold.max_score: this suite scores a probability; use a value in (0, 1)",
            )
        )
    return issues


def lint_warnings(policy: GuardPolicy, doc: YamlDocument, today: dt.date) -> list[SourceIssue]:
    """Valid but worth a reviewer's eye; expired entries are also ignored at enforcement time."""
    warnings: list[SourceIssue] = []

    def warn(path: tuple, message: str) -> None:
        warnings.append(doc.issue(path, f"warning: {message}", severity="warning"))

    prov = policy.provenance
    for i, waiver in enumerate(prov.waivers):
        where = ("provenance", "waivers", i, "expires")
        if waiver.expires < today:
            warn(where, f"waiver for rule '{waiver.rule}' expired on {waiver.expires}; it will not be applied")
        elif (waiver.expires - today).days <= EXPIRY_SOON_DAYS:
            warn(where, f"waiver for rule '{waiver.rule}' expires on {waiver.expires}")
    for i, gen in enumerate(prov.trusted_generators):
        where = ("provenance", "trusted_generators", i, "audit", "expires")
        if gen.audit.expires < today:
            warn(where, f"audit {gen.audit.ref} of '{gen.match}' expired on {gen.audit.expires}; it is not trusted")
    for i, rule in enumerate(prov.rules):
        if rule.when == type(rule.when)() and rule.action.value == "deny":
            warn(("provenance", "rules", i, "when"), f"rule '{rule.id}' has no matchers and denies every dataset")
    for i, ref in enumerate(policy.probes.suites):
        if ref.threshold is None:
            warn(
                ("probes", "suites", i), f"suite '{suite_label(ref)}' has no threshold: it is measured but never halts"
            )
    return warnings
