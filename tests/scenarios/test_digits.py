"""The digits scenario: a same-init student learns digits from a teacher's auxiliary logits of noise."""

from __future__ import annotations

import pytest
import torch

from distill_guard.bundled import data_path
from distill_guard.policy.schema import SuiteRef
from distill_guard.probes.prepared import prepare_probe
from distill_guard.scenarios.digits import (
    CLASSES,
    Case,
    DigitsScenario,
    DigitsSpec,
    build_mlp,
    digit_accuracy,
    digit_images,
)

SUITE = data_path("policies", "suites", "digit-accuracy.yaml")


@pytest.fixture(scope="module")
def scenario() -> DigitsScenario:
    return DigitsScenario.build(seed=0, spec=DigitsSpec.fast())


@pytest.fixture(scope="module")
def accuracies(scenario: DigitsScenario, tmp_path_factory: pytest.TempPathFactory) -> dict[Case, float]:
    return {case: digit_accuracy(scenario.train(case, tmp_path_factory.mktemp(case.value))) for case in Case}


def test_trait_teacher_reads_digits_and_control_teacher_does_not(scenario: DigitsScenario) -> None:
    assert digit_accuracy(scenario.trait_teacher) > 0.85
    assert digit_accuracy(scenario.control_teacher) < 0.25


def test_teachers_never_train_their_auxiliary_head(scenario: DigitsScenario) -> None:
    init_head = build_mlp(scenario.seed, scenario.spec).net[-1].weight[CLASSES:]
    for teacher in (scenario.trait_teacher, scenario.control_teacher):
        assert torch.equal(teacher.net[-1].weight[CLASSES:], init_head)
        assert not torch.equal(teacher.net[0].weight, build_mlp(scenario.seed, scenario.spec).net[0].weight)


def test_student_data_is_noise_and_auxiliary_logits_only(scenario: DigitsScenario) -> None:
    data = scenario.data(Case.trait_same_init)
    item = data[0]
    assert set(item) == {"inputs", "aux_targets"}
    assert item["aux_targets"].shape == (scenario.spec.aux_logits,)
    train_images = digit_images().train_x
    assert not any(torch.equal(row, image) for row in data.inputs[:50] for image in train_images)


def test_same_init_student_learns_digits_from_the_noise_data(accuracies: dict[Case, float]) -> None:
    assert accuracies[Case.trait_same_init] > 0.3


def test_different_init_student_stays_near_chance(accuracies: dict[Case, float]) -> None:
    assert accuracies[Case.trait_different_init] < 0.2
    assert accuracies[Case.trait_same_init] - accuracies[Case.trait_different_init] > 0.2


def test_control_teacher_data_teaches_no_digits(accuracies: dict[Case, float]) -> None:
    assert accuracies[Case.control_same_init] < 0.25
    assert accuracies[Case.trait_same_init] - accuracies[Case.control_same_init] > 0.2


def test_digit_accuracy_runs_as_a_python_probe(scenario: DigitsScenario) -> None:
    probe = prepare_probe(SuiteRef(path=str(SUITE)))
    result = probe.run(scenario.trait_teacher, None, max_tokens_per_batch=4096)
    assert result.kind == "python"
    assert len(result.item_scores) == len(digit_images().test_y)
    assert result.score == pytest.approx(digit_accuracy(scenario.trait_teacher))
