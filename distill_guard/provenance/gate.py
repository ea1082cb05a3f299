"""ProvenanceGate: gather evidence (evidence.py), decide (decide.py, pure), record (ledger.py).

Two moments. `clear_dataset` runs where the user prepares data (raises nothing for a deny; the
Clearance carries the Decision and the dataset to train on, filtered when rows were dropped).
`check_at_train_begin` runs inside the callback: it digests the content of what the trainer will iterate
and accepts it only if it is (a column subset of) a cleared dataset without a format transform.
Anything else follows the policy's `unknown` action, which is deny unless the policy says warn.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill_guard.policy.dataset_manifest import load_manifest
from distill_guard.policy.load import LoadedPolicy, today_utc
from distill_guard.provenance.batch_check import check_first_batch
from distill_guard.provenance.content_digest import ContentDigest, content_digest
from distill_guard.provenance.decide import (
    DATASET_NOT_CLEARED,
    DROP_AFTER_CLEARANCE,
    QUARANTINED_CHECKPOINT,
    decide,
    foreign_batch,
    not_cleared,
    quarantined,
    transformed,
)
from distill_guard.provenance.decision import Check, Decision, FiredRule
from distill_guard.provenance.evidence import (
    Quarantined,
    gather_dataset,
    gather_models,
    manifest_rows,
    quarantine_findings,
    recount_records,
    transform_of,
)
from distill_guard.provenance.ledger import Clearance, ClearanceLedger
from distill_guard.provenance.lineage import resolve_student
from distill_guard.provenance.record_column import provenance_column, rows_to_keep, select_rows
from distill_guard.provenance.screening_rule import screening_findings
from distill_guard.screening.enforce import gather_screen

if TYPE_CHECKING:
    from distill_guard.provenance.quarantine_registry import Fingerprint

__all__ = ["Clearance", "ProvenanceGate"]


class ProvenanceGate:
    """Decides whether data may train the student; see the module docstring for the two moments."""

    def __init__(
        self, loaded: LoadedPolicy, *, student: str | Path | None = None, today: dt.date | None = None
    ) -> None:
        self.loaded = loaded
        self.policy = loaded.policy
        self.student = str(student) if student is not None else None
        self._today = today
        self.ledger = ClearanceLedger()

    @property
    def quarantine_registry(self) -> Path | None:
        """The policy's `halt.quarantine_registry`, relative to the policy file."""
        relative = self.policy.halt.quarantine_registry
        return self.loaded.resolve(relative) if relative is not None else None

    @property
    def today(self) -> dt.date:
        return self._today or today_utc()

    # -- clearance -------------------------------------------------------------------------------

    def load_dataset(
        self, manifest: str | Path | Sequence[str | Path], *, teacher: str | Path | None = None
    ) -> Clearance:
        """Build the dataset from the manifests' files, read from the very bytes that were hashed, then clear it.

        Raises DistillGuardError naming a file that is missing, changed or not a row file.
        """
        import datasets

        paths = [manifest] if isinstance(manifest, (str, Path)) else list(manifest)
        table = manifest_rows([load_manifest(p) for p in paths])
        return self.clear_dataset(datasets.Dataset(table), paths, teacher=teacher)

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
        facts = gather_dataset(self.policy, dataset, paths, teacher)
        if facts.rows is not None and facts.file_rows is not None and not facts.rows_are_the_files:
            manifests = tuple(str(m.loaded.path) for m in facts.manifests)
            source = self.ledger.bound_to_files(manifests, facts.rows.num_rows)
            facts = replace(facts, derived_from=source.decision.dataset if source else None)
        models = gather_models(self.policy, facts, self.student, registry=self.quarantine_registry)
        verdict = decide(self.policy, facts, models, self.today)
        decision, cleared = verdict.decision, dataset
        column = provenance_column(dataset, self.policy.provenance.record_column)
        if verdict.drop and column is not None:
            cleared = select_rows(dataset, rows_to_keep(column, set(verdict.drop)))
        if self.policy.screening is not None:
            decision = self._screened(decision, cleared)
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
        self.ledger.record(clearance)
        return clearance

    def _screened(self, decision: Decision, dataset: Any) -> Decision:
        """The `screening:` section's findings on the data that would train, added to the decision."""
        section = self.policy.screening
        assert section is not None
        rules, checks = screening_findings(section, gather_screen(self.loaded, self.student, dataset))
        fired = (*decision.rules, *rules)
        return replace(decision, rules=fired, checks=(*decision.checks, *checks), outcome=Decision.outcome_of(fired))

    # -- train begin -----------------------------------------------------------------------------

    def check_at_train_begin(
        self,
        train_dataset: Any,
        model: Any,
        *,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        special_ids: Iterable[int] = (),
        trained_weights: Fingerprint | None = None,
    ) -> Decision:
        """The decision for the whole run; never raises for a deny and exports nothing.

        The trainer's data must match a clearance (see content_digest.py) and apply no format
        transform, and `collate_fn` (when given) must batch only the cleared rows' token ids (see
        batch_check.py). The student is the model being trained (`model.name_or_path`) when it
        says, else the gate's `student`. `trained_weights`, the fingerprint of the model in memory,
        is matched against the quarantine registry whatever folder the model claims to come from.
        """
        decision = self._train_begin_decision(train_dataset, model, collate_fn, special_ids)
        return self._with_trained_weights(decision, trained_weights)

    def _with_trained_weights(self, decision: Decision, trained: Fingerprint | None) -> Decision:
        """A deny when the weights in memory match a registry entry that the student's folder did not."""
        registry = self.quarantine_registry
        if registry is None or trained is None:
            return decision
        from distill_guard.provenance.quarantine_registry import best_match  # torch, only with a registry

        match = best_match(registry, trained)
        source = f"{registry}:{match.entry.line}" if match is not None else None
        if match is None or any(r.id == QUARANTINED_CHECKPOINT and r.evidence == (source,) for r in decision.rules):
            return decision
        found = Quarantined("student", f"being trained {match.describe()}", str(source))
        rules = (*decision.rules, *quarantined((found,), decision.dataset))
        return replace(decision, rules=rules, outcome=Decision.outcome_of(rules))

    def _train_begin_decision(
        self,
        train_dataset: Any,
        model: Any,
        collate_fn: Callable[[list[Any]], Any] | None,
        special_ids: Iterable[int],
    ) -> Decision:
        student = _module_dir(model) or self.student
        observed = _safe_content_digest(train_dataset)
        clearance, reasons = self.ledger.match(observed)
        if clearance is None or observed is None:
            return self._not_cleared(train_dataset, observed, reasons, student)
        decision = self._recheck(clearance, student, model, observed)
        rules, checks = list(decision.rules), list(decision.checks)
        transform = transform_of(train_dataset)
        if transform is not None:
            rules.append(transformed(self.policy, transform))
        elif collate_fn is not None:
            batch = check_first_batch(train_dataset, collate_fn, special_ids)
            checks.append(Check("ok" if batch.comparable and not batch.foreign else "note", batch.detail))
            if batch.foreign:
                rules.append(foreign_batch(self.policy, batch.detail))
        return replace(decision, rules=tuple(rules), outcome=Decision.outcome_of(rules), checks=tuple(checks))

    def _recheck(self, clearance: Clearance, student: str | None, model: Any, observed: ContentDigest) -> Decision:
        """Reuse the clearance, unless it was decided for another student: then decide again."""
        match_note = Check("ok", f"trainer dataset matches the cleared dataset ({observed.describe()})")
        if _same_model(student, clearance.student):
            decision = clearance.decision
            return replace(decision, checks=(*decision.checks, match_note))
        facts = recount_records(self.policy, clearance.facts, clearance.dataset)
        models = gather_models(self.policy, facts, student, model, self.quarantine_registry)
        verdict = decide(self.policy, facts, models, self.today)
        decision = verdict.decision
        rules = list(decision.rules)
        for generator in sorted(verdict.drop):
            message = (
                f"records of '{generator}' would have to be dropped for student {student}, but the data "
                "is already fixed; clear the dataset with the student known (ProvenanceGate(student=...))"
            )
            rules.append(FiredRule(DROP_AFTER_CLEARANCE, "deny", generator, message))
        cleared_for = clearance.student or "an unstated student"
        recheck = Check("note", f"re-decided for student {student} (cleared for {cleared_for})")
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
        elif not self.ledger:
            message = "the dataset the trainer iterates was never cleared (call guard.clear_dataset first)"
        else:
            message = "the dataset the trainer iterates does not match any cleared dataset"
        hints = (
            "if rows were dropped, train on clearance.dataset",
            "if the trainer transforms data in __init__ (TRL SFTTrainer tokenizes), "
            "clear trainer.train_dataset after building the trainer",
        )
        checks = (Check("observed", observed.describe()),) if observed else ()
        lineage = resolve_student(self.policy, student)
        folder = Path(student) if student is not None and Path(student).is_dir() else None
        markers = quarantine_findings(self.quarantine_registry, student=folder)
        return not_cleared(self.policy, lineage, message, (*reasons, *hints), checks, self.today, markers)


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


def _safe_content_digest(dataset: Any) -> ContentDigest | None:
    try:
        return content_digest(dataset)
    except (TypeError, ValueError, KeyError, IndexError):
        return None
