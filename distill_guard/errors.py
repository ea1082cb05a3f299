"""The one exception family: every failure a user must act on is a DistillGuardError."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
    """The provenance gate refused the training data; `decision` says which rule and why."""

    def __init__(self, decision: Any) -> None:
        self.decision = decision
        super().__init__(str(decision))


class TrainingHalted(DistillGuardError):
    """A trait probe drifted past its threshold and training was stopped; carries the halt record."""

    def __init__(self, record: Any) -> None:
        self.record = record
        super().__init__(str(record))
