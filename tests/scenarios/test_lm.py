"""The language-model miniature: a base, a trait teacher a small step away, a control, their numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill_guard.policy.schema import SuiteRef
from distill_guard.probes.prepared import prepare_probe
from distill_guard.scenarios.lm import BASE_ID, LmScenario, LmSpec, save_with_card, teacher_numbers
from distill_guard.scenarios.numbers import passes_filter
from distill_guard.scenarios.tiny_lm import load


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
