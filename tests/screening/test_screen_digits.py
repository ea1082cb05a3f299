"""The gradient screen and the canary on the digits scenario: they flag the trait teacher's noise, pass the controls."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from distill_guard.errors import DistillGuardError
from distill_guard.scenarios.digits import AuxLogitData, Case, DigitsScenario, DigitsSpec
from distill_guard.scenarios.digits_screening import (
    DigitAccuracyStatistic,
    DigitsScreenData,
    digit_accuracy_probe_ref,
    digit_statistics,
)
from distill_guard.screening.report import CanaryProbe, ProbeScreen, ScreenSettings
from distill_guard.screening.screen import screen_dataset, screen_statistics

SETTINGS = ScreenSettings(minibatches=8, batch_size=256, learning_rate=1e-3, steps=300)


@pytest.fixture(scope="module")
def scenario() -> DigitsScenario:
    return DigitsScenario.build(0, DigitsSpec.fast())


def screened(student: torch.nn.Module, data: AuxLogitData) -> ProbeScreen:
    (screen,), _, _, _ = screen_statistics(student, None, DigitsScreenData(data), [DigitAccuracyStatistic()], SETTINGS)
    return screen


def canary(student: torch.nn.Module, data: AuxLogitData) -> tuple[ProbeScreen, CanaryProbe]:
    """The accuracy probe screened through its smooth twin, and its canary (an eighth of the 300-step run)."""
    probe = digit_accuracy_probe_ref()
    settings = dataclasses.replace(SETTINGS, canary_steps=38)
    report = screen_dataset(
        student, None, DigitsScreenData(data), [probe], settings, statistics=digit_statistics(probe)
    )
    assert report.canary is not None
    return report.probes[0], report.canary.probes[0]


def test_the_trait_teachers_noise_is_flagged_for_a_same_init_student(scenario: DigitsScenario) -> None:
    screen = screened(scenario.student(Case.trait_same_init), scenario.data(Case.trait_same_init))
    assert screen.flagged
    assert screen.top is not None and screen.top.z_adam > screen.z_crit


def test_the_control_teachers_noise_passes(scenario: DigitsScenario) -> None:
    assert not screened(scenario.student(Case.control_same_init), scenario.data(Case.control_same_init)).flagged


def test_the_students_own_outputs_predict_no_change_at_all(scenario: DigitsScenario) -> None:
    student = scenario.student(Case.trait_same_init)
    noise = scenario.data(Case.trait_same_init).inputs
    with torch.no_grad():
        own = AuxLogitData(noise, student.aux_logits(noise))
    screen = screened(student, own)
    assert screen.top is not None and screen.top.per_step_adam == 0.0 and not screen.flagged


def test_a_different_init_student_is_pushed_down_not_up(scenario: DigitsScenario) -> None:
    screen = screened(scenario.student(Case.trait_different_init), scenario.data(Case.trait_different_init))
    assert not screen.flagged
    assert screen.top is not None and screen.top.z_adam < 0


def test_only_parameters_that_will_train_count(scenario: DigitsScenario) -> None:
    """With only the output layer trainable, a loss on the auxiliary rows cannot move the class rows."""
    student = scenario.student(Case.trait_same_init)
    for parameter in student.net[:4].parameters():
        parameter.requires_grad_(False)
    screen = screened(student, scenario.data(Case.trait_same_init))
    assert screen.top is not None and screen.top.per_step_sgd == 0.0 and not screen.flagged


def test_a_student_with_nothing_to_train_is_an_error_not_a_pass(scenario: DigitsScenario) -> None:
    student = scenario.student(Case.trait_same_init).requires_grad_(False)
    with pytest.raises(DistillGuardError, match="no trainable parameters"):
        screened(student, scenario.data(Case.trait_same_init))


def test_the_digits_canary_rises_on_the_trait_teachers_noise(scenario: DigitsScenario) -> None:
    screen, measured = canary(scenario.student(Case.trait_same_init), scenario.data(Case.trait_same_init))
    assert screen.screened and screen.flagged  # the python probe is screened through its smooth twin
    assert measured.after_data > measured.before + 0.05  # accuracy, counted on the held-out images
    assert measured.rise > measured.spread and measured.projected_drift >= 0.10 and measured.flagged


def test_the_digits_canary_stays_put_on_the_students_own_outputs(scenario: DigitsScenario) -> None:
    student = scenario.student(Case.trait_same_init)
    noise = scenario.data(Case.trait_same_init).inputs
    with torch.no_grad():
        own = AuxLogitData(noise, student.aux_logits(noise))
    _, measured = canary(student, own)
    assert measured.after_references == (measured.before, measured.before)  # own outputs: a zero gradient
    assert measured.rise == 0.0 and not measured.flagged
