"""The screen's differentiable statistic is the probe's own score, not an approximation of it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from distill_guard.policy.load import load_policy
from distill_guard.policy.schema import SuiteRef
from distill_guard.probes.prepared import prepare_probe, prepare_probes
from distill_guard.scenarios.policies import DIGITS_POLICY
from distill_guard.scenarios.tiny_lm import load
from distill_guard.screening.gradients import trainable_parameters
from distill_guard.screening.screen import statistic_gradients
from distill_guard.screening.statistics import statistic_for_probe


@pytest.mark.parametrize(
    "ref", [SuiteRef(use="builtin:animal-preference", target="owl"), SuiteRef(use="builtin:misalignment-choice")]
)
def test_the_statistic_equals_the_probe_score(tiny_checkpoint: Path, ref: SuiteRef) -> None:
    model, tokenizer = load(tiny_checkpoint)
    probe = prepare_probe(ref)
    statistic = statistic_for_probe(probe)
    assert statistic is not None
    values, grads = statistic_gradients(statistic, model, tokenizer, trainable_parameters(model))
    assert float(values[0]) == pytest.approx(probe.run(model, tokenizer, max_tokens_per_batch=4096).score, abs=1e-5)
    assert grads.shape == (1, sum(p.numel() for p in model.parameters())) and torch.isfinite(grads).all()


def test_a_panel_has_one_statistic_per_candidate_and_their_shares_sum_to_one(tiny_checkpoint: Path) -> None:
    model, tokenizer = load(tiny_checkpoint)
    statistic = statistic_for_probe(prepare_probe(SuiteRef(use="builtin:colour-preference", panel=True)))
    assert statistic is not None
    values, _ = statistic_gradients(statistic, model, tokenizer, trainable_parameters(model))
    assert len(statistic.components) == len(values) > 2
    assert float(values.sum()) == pytest.approx(1.0, abs=1e-5)


def test_a_python_probe_is_not_screenable() -> None:
    (probe,) = prepare_probes(load_policy(DIGITS_POLICY))
    assert statistic_for_probe(probe) is None
