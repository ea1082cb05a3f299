"""GuardMetrics: the metric names, types and labels that dashboards and alerts depend on."""

from __future__ import annotations

import math

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from distill_guard.export.metrics import GuardMetrics
from tests.support.evaluations import evaluation

DESIGNED_TYPES = {
    "distill_guard_probe_score": "gauge",
    "distill_guard_probe_baseline": "gauge",
    "distill_guard_probe_drift": "gauge",
    "distill_guard_probe_drift_zscore": "gauge",
    "distill_guard_probe_threshold": "gauge",
    "distill_guard_probe_specific_drift": "gauge",
    "distill_guard_probe_last_run_timestamp_seconds": "gauge",
    "distill_guard_probe_duration_seconds": "histogram",
    "distill_guard_threshold_breaches_total": "counter",
    "distill_guard_provenance_decisions_total": "counter",
    "distill_guard_export_errors_total": "counter",
    "distill_guard_halted": "gauge",
    "distill_guard_training_step": "gauge",
    "distill_guard_run_info": "gauge",
}


def exercised(run: str = "run-1", **probe: float) -> GuardMetrics:
    """A GuardMetrics after one call of every method."""
    metrics = GuardMetrics(run, clock=lambda: 1_700_000_000.0)
    metrics.set_run_info(policy="strict-distillation", world_size="1")
    values = {"score": 0.31, "baseline": 0.12, "drift": 0.19, "zscore": 6.0, "threshold": 0.05, **probe}
    metrics.observe_probe(*evaluation("animal-preference", "owl", duration_seconds=0.8, **values))
    metrics.observe_specific(probe="animal-preference", movers=[("owl", 0.18), ("cat", 0.01)])
    metrics.record_breach(probe="animal-preference", trait="owl")
    metrics.set_halted(True)
    metrics.set_step(50)
    metrics.record_provenance_decision(decision="deny", rule="same-base-untrusted")
    metrics.record_export_error("pushgateway")
    return metrics


def exposition(metrics: GuardMetrics) -> str:
    return generate_latest(metrics.registry).decode()


def declared_types(text: str) -> dict[str, str]:
    return {
        name: kind
        for line in text.splitlines()
        if line.startswith("# TYPE ")
        for name, kind in [line.removeprefix("# TYPE ").split(" ")]
    }


def sample(metrics: GuardMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"run": metrics.run, **labels})


def test_exposition_declares_the_designed_names_and_types() -> None:
    types = declared_types(exposition(exercised()))
    assert {name: types.get(name) for name in DESIGNED_TYPES} == DESIGNED_TYPES


def test_every_series_carries_the_run_label() -> None:
    families = text_string_to_metric_families(exposition(exercised(run="run-7")))
    runs = {s.labels.get("run") for family in families for s in family.samples}
    assert runs == {"run-7"}


def test_two_guards_in_one_process_keep_separate_registries() -> None:
    first, second = exercised(run="first"), exercised(run="second")
    assert 'run="second"' not in exposition(first)
    assert 'run="first"' not in exposition(second)


def test_nan_and_inf_scores_are_exported_unchanged() -> None:
    metrics = exercised(score=math.nan, drift=math.inf, zscore=-math.inf)
    probe = {"probe": "animal-preference", "trait": "owl"}
    assert math.isnan(sample(metrics, "distill_guard_probe_score", **probe))
    assert sample(metrics, "distill_guard_probe_drift", **probe) == math.inf
    assert sample(metrics, "distill_guard_probe_drift_zscore", **probe) == -math.inf
    text = exposition(metrics)
    assert 'distill_guard_probe_score{probe="animal-preference",run="run-1",trait="owl"} NaN' in text
    assert 'distill_guard_probe_drift{probe="animal-preference",run="run-1",trait="owl"} +Inf' in text


def test_probe_without_threshold_drops_its_threshold_series() -> None:
    metrics = exercised()
    probe = {"probe": "animal-preference", "trait": "owl"}
    assert sample(metrics, "distill_guard_probe_threshold", **probe) == 0.05
    metrics.observe_probe(
        *evaluation(**probe, score=0.3, baseline=0.1, drift=0.2, zscore=5.0, threshold=None, duration_seconds=1.0)
    )
    assert sample(metrics, "distill_guard_probe_threshold", **probe) is None


def test_first_probe_observation_starts_its_breach_counter_at_zero() -> None:
    metrics = GuardMetrics("run-1")
    metrics.observe_probe(
        *evaluation(
            "misalignment-choice",
            None,
            score=0.02,
            baseline=0.02,
            drift=0.0,
            zscore=0.0,
            threshold=0.02,
            duration_seconds=0.5,
        )
    )
    breaches = {"probe": "misalignment-choice", "trait": ""}
    assert sample(metrics, "distill_guard_threshold_breaches_total", **breaches) == 0.0
    metrics.record_breach(probe="misalignment-choice", trait=None)
    assert sample(metrics, "distill_guard_threshold_breaches_total", **breaches) == 1.0


def test_probe_timestamp_and_duration_are_recorded() -> None:
    metrics = exercised()
    probe = {"probe": "animal-preference", "trait": "owl"}
    assert sample(metrics, "distill_guard_probe_last_run_timestamp_seconds", **probe) == 1_700_000_000.0
    assert sample(metrics, "distill_guard_probe_duration_seconds_bucket", **probe, le="1.0") == 1.0
    assert sample(metrics, "distill_guard_probe_duration_seconds_bucket", **probe, le="0.5") == 0.0


def test_halted_and_step_start_at_zero_and_follow_the_run() -> None:
    metrics = GuardMetrics("run-1")
    assert (sample(metrics, "distill_guard_halted"), sample(metrics, "distill_guard_training_step")) == (0, 0)
    metrics.set_halted(True)
    metrics.set_step(120)
    assert (sample(metrics, "distill_guard_halted"), sample(metrics, "distill_guard_training_step")) == (
        1,
        120,
    )


@pytest.mark.parametrize("label", ["run", "bad-name", "__reserved"])
def test_run_info_rejects_labels_prometheus_would_misread(label: str) -> None:
    with pytest.raises(ValueError, match="run_info label"):
        GuardMetrics("run-1").set_run_info(**{label: "x"})


def test_specific_drift_shows_only_the_current_top_movers() -> None:
    metrics = GuardMetrics("run-1")
    metrics.observe_specific(probe="animal-preference", movers=[("owl", 0.2), ("cat", 0.01)])
    metrics.observe_specific(probe="animal-preference", movers=[("fox", 0.3), ("owl", 0.1)])
    text = exposition(metrics)
    assert 'candidate="cat"' not in text and 'candidate="fox"' in text
    assert sample(metrics, "distill_guard_probe_specific_drift", probe="animal-preference", candidate="owl") == 0.1
