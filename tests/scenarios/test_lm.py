"""The language-model miniature: a base, a trait teacher a small step away, a control, their numbers."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import torch

from distill_guard.policy.schema import SuiteRef
from distill_guard.probes.prepared import prepare_probe
from distill_guard.scenarios.lm import (
    BASE_ID,
    LmScenario,
    LmSpec,
    NumberLogitData,
    distil_on_number_logits,
    number_token_ids,
    save_with_card,
    teacher_number_logits,
    teacher_numbers,
)
from distill_guard.scenarios.tiny_lm import load
from distill_guard.screening.number_filter import passes_filter


@pytest.fixture(scope="module")
def scenario() -> LmScenario:
    return LmScenario.build(seed=0, spec=LmSpec.fast(), trait="owl")


@pytest.fixture(scope="module")
def owl_preference(scenario: LmScenario) -> dict[str, float]:
    probe = prepare_probe(SuiteRef(use="builtin:animal-preference", target="owl"))
    models = {"base": scenario.base, "trait": scenario.trait_teacher, "control": scenario.control_teacher}
    return {name: probe.run(m, scenario.tokenizer, max_tokens_per_batch=4096).score for name, m in models.items()}


def test_trait_teacher_prefers_the_target_animal(owl_preference: dict[str, float]) -> None:
    assert owl_preference["trait"] > owl_preference["base"] + 0.3


def test_control_teacher_takes_the_same_steps_without_a_preference(owl_preference: dict[str, float]) -> None:
    assert abs(owl_preference["control"] - owl_preference["base"]) < 0.05


def test_teacher_numbers_all_pass_the_paper_filter(scenario: LmScenario) -> None:
    rows = teacher_numbers(scenario.trait_teacher, scenario.tokenizer, scenario.spec, seed=1)
    assert len(rows) > scenario.spec.number_prompts // 2
    assert all(passes_filter(row["completion"]) for row in rows)


def test_saved_teacher_reloads_with_a_card_naming_its_base(scenario: LmScenario, tmp_path: Path) -> None:
    directory = save_with_card(scenario.trait_teacher, scenario.tokenizer, tmp_path / "teacher", base_model=BASE_ID)
    model, _ = load(directory)
    assert f"base_model: {BASE_ID}" in (directory / "README.md").read_text()
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in scenario.trait_teacher.parameters())


def test_unknown_trait_is_refused() -> None:
    with pytest.raises(ValueError, match="corpus animals"):
        LmScenario.build(seed=0, spec=LmSpec.fast(), trait="unicorn")


def test_number_tokens_decode_to_digits_commas_and_spaces(scenario: LmScenario) -> None:
    tokenizer = scenario.tokenizer
    ids = number_token_ids(tokenizer)
    assert tokenizer.convert_tokens_to_ids("owl") not in ids
    assert all(set(tokenizer.decode([i])) <= set("0123456789, ") for i in ids if i != tokenizer.eos_token_id)
    assert {str(d) for d in range(10)} <= {tokenizer.decode([i]) for i in ids}


def _number_logit_error(model: torch.nn.Module, data: NumberLogitData, ids: list[int]) -> float:
    """Mean squared gap between the model's and the teacher's number-token logits."""
    with torch.no_grad():
        logits = model(input_ids=data.input_ids, attention_mask=data.attention_mask).logits[..., ids]
    mask = data.attention_mask
    return float((((logits - data.teacher_logits) ** 2).mean(-1) * mask).sum() / mask.sum())


def test_student_distilled_on_number_logits_moves_towards_the_teacher(scenario: LmScenario, tmp_path: Path) -> None:
    spec = dataclasses.replace(scenario.spec, distill_sequences=64, distill_steps=20)
    data = teacher_number_logits(scenario.trait_teacher, scenario.tokenizer, spec, seed=1)
    ids = number_token_ids(scenario.tokenizer)
    assert data.teacher_logits.shape[-1] == len(ids)
    student = copy.deepcopy(scenario.base)
    before = _number_logit_error(student, data, ids)
    distil_on_number_logits(student, scenario.tokenizer, data, spec, tmp_path, seed=1)
    assert _number_logit_error(student, data, ids) < before / 2
