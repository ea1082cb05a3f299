"""The reference goes through the data's filter: the base's own filtered samples then score z near 0."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from distill_guard.errors import DistillGuardError
from distill_guard.policy.schema import SuiteRef, Threshold
from distill_guard.probes.prepared import prepare_probe
from distill_guard.scenarios.tiny_lm import load
from distill_guard.screening.data import CompletionRows
from distill_guard.screening.logprob_gain import DEFAULT_TRAIT_PROMPT, logprob_gains
from distill_guard.screening.reference_filter import resolve_filter
from distill_guard.screening.report import ScreenSettings
from distill_guard.screening.screen import screen_dataset, screen_statistics

PROMPTS = [f"Question: Continue the list {i}, {i + 3}, {i + 7}. Answer:" for i in range(48)]
SETTINGS = ScreenSettings(minibatches=6, batch_size=8, learning_rate=1e-3, steps=100)


def has_digit(text: str) -> bool:
    """A filter the tiny model passes about half the time (it is not a number model)."""
    return any(ch.isdigit() for ch in text)


@pytest.fixture(scope="module")
def student(tiny_checkpoint: Path):
    return load(tiny_checkpoint)


@pytest.fixture(scope="module")
def filtered_own_rows(student) -> list[dict[str, str]]:
    """The student's own samples kept only when they pass `has_digit`: data produced through a filter."""
    model, tokenizer = student
    tokenizer.padding_side = "left"
    batch = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    torch.manual_seed(7)
    with torch.no_grad():
        generated = model.generate(
            **batch,
            do_sample=True,
            top_k=0,
            max_new_tokens=4,
            num_return_sequences=16,
            pad_token_id=tokenizer.pad_token_id,
        )
    texts = tokenizer.batch_decode(generated[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    rows = []
    for n, prompt in enumerate(PROMPTS):
        kept = next(t.strip() for t in texts[n * 16 : (n + 1) * 16] if has_digit(t.strip()))
        rows.append({"prompt": prompt, "completion": kept})
    return rows


def _z(student, rows, reference_filter) -> float:
    model, tokenizer = student
    probe = prepare_probe(
        SuiteRef(use="builtin:animal-preference", target="owl", threshold=Threshold(max_increase=0.01))
    )
    report = screen_dataset(
        model, tokenizer, CompletionRows(tokenizer, rows), [probe], SETTINGS, reference_filter=reference_filter
    )
    return report.probes[0].top.z_adam, report


def test_the_filtered_reference_gives_the_bases_own_filtered_samples_z_near_zero(student, filtered_own_rows) -> None:
    z, report = _z(student, filtered_own_rows, has_digit)
    assert abs(z) < 2.5
    assert report.settings.reference_filter == "has_digit"
    assert not report.flagged


def test_a_filter_that_drops_most_self_samples_is_refused(student, filtered_own_rows) -> None:
    with pytest.raises(DistillGuardError, match="null would be too small"):
        _z(student, filtered_own_rows, lambda text: False)


def test_auto_picks_the_papers_filter_for_number_rows_only() -> None:
    assert resolve_filter("auto", ["12, 407, 3", "5 6"])[0] == "number-sequences"
    assert resolve_filter("auto", ["12, 407, 3", "owl"])[0] == "none"
    with pytest.raises(ValueError, match="unknown reference filter"):
        resolve_filter("numbers", ["1"])


def test_the_unfiltered_reference_differs_from_filtered_data_by_the_filter_alone(student, filtered_own_rows) -> None:
    """Why the filter matters: the same rows against unfiltered self-samples are far from the null."""
    z_unfiltered, _ = _z(student, filtered_own_rows, "none")
    z_filtered, _ = _z(student, filtered_own_rows, has_digit)
    assert abs(z_unfiltered) > 2 * abs(z_filtered)


def test_the_log_prob_gain_pairs_each_filtered_self_sample_with_its_own_prompt(student, filtered_own_rows) -> None:
    """A filter drops some self-samples: the second signal still scores the kept ones under their own prompts."""
    model, tokenizer = student
    probe = prepare_probe(SuiteRef(use="builtin:animal-preference", target="owl"))
    data = CompletionRows(tokenizer, filtered_own_rows)
    one_draw = dataclasses.replace(SETTINGS, reference_draws=1)  # about half the rows find no passing sample
    _, _, indices, reference = screen_statistics(model, tokenizer, data, [], one_draw, accept=has_digit)
    assert sum(len(b["input_ids"]) for b in reference) < sum(len(i) for i in indices)
    (gain,) = logprob_gains(model, tokenizer, data, [probe], DEFAULT_TRAIT_PROMPT, indices, reference)
    assert abs(gain.z) < 3  # the base's own filtered samples against its own filtered samples
