"""Every hostile input gets exit 1 (or 3) and a message naming the file: no traceback, hang or silence."""

from __future__ import annotations

from pathlib import Path

import pytest

from .corpus import CASES, Case
from .runner import run_case
from .workspace import Workspace


def test_corpus_is_large_and_covers_every_kind_of_input() -> None:
    kinds = {c.kind for c in CASES}
    assert len(CASES) >= 120
    assert kinds == {"policy", "manifest", "data", "key", "audit", "checkpoint"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_refused_clearly(case: Case, tmp_path: Path, tiny_checkpoint: Path) -> None:
    outcome = run_case(case, Workspace(tmp_path, tiny_checkpoint))
    assert outcome.verdict == "clear", f"{outcome.verdict}: {outcome.detail}\n{outcome.output[-2000:]}"
