"""The one exception family: every failure a user must act on is a DistillGuardError."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # errors sit below every layer; the types they carry are only named here
    from distill_guard.drift.halt_record import HaltRecord
    from distill_guard.provenance.decision import Decision


class DistillGuardError(Exception):
    """Base of every error distill-guard raises on purpose."""


@dataclass(frozen=True)
class SourceIssue:
    """One problem found in a file, located for a human (`FILE:LINE:COL: message`)."""

    file: str
    line: int
    column: int
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class PolicyError(DistillGuardError):
    """A policy, probe suite or manifest file is invalid; carries every issue found, in file order."""

    def __init__(self, issues: list[SourceIssue]) -> None:
        if not issues:
            raise ValueError("PolicyError needs at least one issue")
        self.issues = sorted(issues, key=lambda i: (i.file, i.line, i.column))
        super().__init__("\n".join(str(i) for i in self.issues))

    @property
    def file(self) -> str:
        return self.issues[0].file

    @property
    def line(self) -> int:
        return self.issues[0].line

    @property
    def column(self) -> int:
        return self.issues[0].column


class ProvenanceDenied(DistillGuardError):
    """The provenance gate refused the training data; `decision` says which rule and why.

    In a distributed run every rank raises; `denied_on_rank` names the rank whose decision it is
    when that was another one (the data each rank iterates can differ).
    """

    def __init__(self, decision: Decision, *, denied_on_rank: int | None = None) -> None:
        self.decision = decision
        self.denied_on_rank = denied_on_rank
        where = f"provenance denied on another rank (rank {denied_on_rank}):\n" if denied_on_rank is not None else ""
        super().__init__(where + str(decision))

    def __reduce__(self) -> tuple[Callable[[Decision], ProvenanceDenied], tuple[Decision]]:
        """Pickle with the decision, so a launcher in another process (Ray Train's driver) sees it."""
        return functools.partial(type(self), denied_on_rank=self.denied_on_rank), (self.decision,)


class TrainingHalted(DistillGuardError):
    """A trait probe drifted past its threshold and training was stopped; carries the halt record."""

    def __init__(self, record: HaltRecord) -> None:
        self.record = record
        super().__init__(str(record))

    def __reduce__(self) -> tuple[type[TrainingHalted], tuple[HaltRecord]]:
        """Pickle with the halt record, so a launcher in another process (Ray Train's driver) reads it."""
        return type(self), (self.record,)
