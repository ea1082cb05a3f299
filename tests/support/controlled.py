"""The controlled probe: a test decides its scores, call by call, and hands them to the guard directly.

Importing this module registers the probe kind `controlled` (through the same `register_probe_kind`
users call), so `controlled.yaml` loads like any suite file. Its scorer is the `python` kind's, fed
with `PLAN`: one row per probe call (baseline first), each a list of item scores (numbers, or the
strings "nan"/"inf") or the string "raise" to make the probe fail; the last row repeats. A test, or a
distributed worker given its rows in a file, calls `PLAN.plan(rows)`; no environment variable is read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from distill_guard import LoadedSuite, register_probe_kind
from distill_guard.probes.kinds.python_probe import PythonScorer

CONTROLLED_SUITE = Path(__file__).with_name("controlled.yaml")
TIGHT = {"max_increase": 0.05}


class ControlledSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["controlled"]
    target: str | None = None


class ControlledPlan:
    """The planned rows and how many probe calls have used them; planning again starts from row 0."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Back to the default plan: two flat items, every call."""
        self.plan([[0.1, 0.1]])

    def plan(self, rows: list[Any]) -> None:
        if not rows:
            raise ValueError("plan at least one row")
        self.rows = list(rows)
        self.calls = 0

    def __call__(self, model: Any, tokenizer: Any, *, target: str | None = None) -> list[float]:
        row = self.rows[min(self.calls, len(self.rows) - 1)]
        self.calls += 1
        if row == "raise":
            raise RuntimeError("controlled probe failure")
        return [float(x) for x in row]


PLAN = ControlledPlan()


def controlled_scorer(suite: LoadedSuite, target: str | None) -> PythonScorer:
    return PythonScorer(PLAN, "controlled", target or suite.spec.target, is_probability=True, kind="controlled")


register_probe_kind(ControlledSpec, controlled_scorer)


def controlled(threshold: dict[str, Any] | None = None) -> dict[str, Any]:
    """The controlled probe's entry in a policy's `probes.suites` (scores planned by the test)."""
    return {"path": str(CONTROLLED_SUITE), "threshold": threshold or TIGHT}


@contextmanager
def planned_scores(rows: list[Any]) -> Iterator[None]:
    """Plan the controlled probe's scores for the block; the default plan comes back afterwards."""
    PLAN.plan(rows)
    try:
        yield
    finally:
        PLAN.reset()
