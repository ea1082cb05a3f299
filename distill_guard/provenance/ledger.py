"""The clearance ledger: what `clear_dataset` allowed, and the lookup that train begin matches against."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from distill_guard.provenance.content_digest import ContentDigest
from distill_guard.provenance.decision import Decision
from distill_guard.provenance.evidence import DatasetFacts


@dataclass(frozen=True)
class Clearance:
    """One `clear_dataset` result: train on `dataset` (filtered when rows were dropped), not the input."""

    decision: Decision
    dataset: Any
    content: ContentDigest | None
    student: str | None
    facts: DatasetFacts = field(repr=False)


class ClearanceLedger:
    """Clearances in the order they were made; the newest matching one wins."""

    def __init__(self) -> None:
        self.entries: list[Clearance] = []

    def __bool__(self) -> bool:
        return bool(self.entries)

    def record(self, clearance: Clearance) -> None:
        self.entries.append(clearance)

    def bound_to_files(self, manifests: tuple[str, ...], num_rows: int) -> Clearance | None:
        """An allowed clearance of these manifests whose rows were the files' own, with `num_rows` rows.

        A trainer that preprocesses in __init__ (TRL SFTTrainer appends EOS to the text) derives its
        dataset from such a clearance; its rows then match the files by count, not by content.
        """
        for clearance in reversed(self.entries):
            facts = clearance.facts
            paths = tuple(str(m.loaded.path) for m in facts.manifests)
            same_rows = facts.rows is not None and facts.rows.num_rows == num_rows
            if paths == manifests and clearance.decision.allowed and facts.rows_are_the_files and same_rows:
                return clearance
        return None

    def match(self, observed: ContentDigest | None) -> tuple[Clearance | None, list[str]]:
        """The newest clearance whose content `observed` is (a column subset of), or why none is."""
        reasons = []
        for clearance in reversed(self.entries):
            if clearance.content is None or observed is None:
                continue
            mismatch = clearance.content.mismatch(observed)
            if mismatch is None:
                return clearance, reasons
            reasons.append(f"cleared '{clearance.decision.dataset}': {mismatch}")
        return None, reasons
