"""The gradient screen on the LM miniature: the steering teacher's numbers are flagged, the base's own pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill_guard.policy.schema import SuiteRef, Threshold
from distill_guard.probes.prepared import prepare_probe
from distill_guard.scenarios.subliminal_lm import Case, Miniature, MiniatureSpec
from distill_guard.screening.data import CompletionRows
from distill_guard.screening.logprob_gain import DEFAULT_TRAIT_PROMPT
from distill_guard.screening.report import ScreenReport, ScreenSettings
from distill_guard.screening.screen import screen_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def miniature(tmp_path_factory: pytest.TempPathFactory) -> Miniature:
    """The tests' size of the miniature (a 600-step base; about a minute on a free core)."""
    return Miniature.build(seed=0, spec=MiniatureSpec.tiny_test(), cache_dir=tmp_path_factory.mktemp("bases"))


def screened(miniature: Miniature, case: Case, rows: list[dict[str, str]], directory: Path) -> ScreenReport:
    student = miniature.student(case, directory / "student")  # embeddings frozen, as the run trains it
    spec = miniature.spec
    settings = ScreenSettings(
        minibatches=8,
        batch_size=spec.batch_size,
        learning_rate=spec.student_learning_rate,
        steps=spec.student_steps(len(rows)),
    )
    probe = prepare_probe(
        SuiteRef(use="builtin:animal-preference", target=miniature.trait, threshold=Threshold(max_increase=0.02))
    )
    tokenizer = miniature.tokenizer
    return screen_dataset(
        student, tokenizer, CompletionRows(tokenizer, rows), [probe], settings, trait_prompt=DEFAULT_TRAIT_PROMPT
    )


def test_the_trait_teachers_numbers_are_flagged(miniature: Miniature, tmp_path: Path) -> None:
    report = screened(miniature, Case.trait_same_init, miniature.teacher_rows, tmp_path)
    assert report.flagged, str(report)
    assert len(report.logprob_gains) == 1


def test_the_bases_own_numbers_pass(miniature: Miniature, tmp_path: Path) -> None:
    report = screened(miniature, Case.control_same_init, miniature.control_rows, tmp_path)
    assert not report.flagged, str(report)
