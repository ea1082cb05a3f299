"""Exporters against real processes: Pushgateway, node-exporter's textfile collector, Prometheus.

Every failure mode here must leave training running: no exception, one warning, every failure
counted in distill_guard_export_errors_total{backend}.
"""

from __future__ import annotations

import itertools
import logging
import math
import socket
import subprocess
import uuid
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_stack import NodeExporter, Prometheus, Pushgateway, http_get, require_binary

from distill_guard.export.metrics import GuardMetrics
from distill_guard.export.prometheus import PushgatewayExporter, make_exporter
from distill_guard.policy.schema import HttpExport, PushgatewayExport, TextfileExport
from tests.support.evaluations import evaluation

LOGGER = "distill_guard.export.prometheus"


def new_run() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


def export_errors(metrics: GuardMetrics, backend: str) -> float | None:
    return metrics.registry.get_sample_value(
        "distill_guard_export_errors_total", {"run": metrics.run, "backend": backend}
    )


def warnings_from_exporters(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


def pushed_value(pushgateway: Pushgateway, name: str, run: str) -> float | None:
    """The value the Pushgateway serves for `name` in `run`, None when it holds no such series."""
    for family in text_string_to_metric_families(http_get(pushgateway.url + "/metrics").decode()):
        for s in family.samples:
            if s.name == name and s.labels.get("run") == run:
                return s.value
    return None


def push_config(url: str, **overrides: object) -> PushgatewayExport:
    return PushgatewayExport.model_validate({"mode": "pushgateway", "url": url, "interval_seconds": 0.001, **overrides})


# -- http -----------------------------------------------------------------------------------------


def test_http_exporter_serves_on_an_ephemeral_port_until_closed() -> None:
    metrics = GuardMetrics(new_run())
    exporter = make_exporter(HttpExport(mode="http", port=0), metrics)
    exporter.start()
    assert exporter.port
    url = f"http://127.0.0.1:{exporter.port}/metrics"
    try:
        assert f'distill_guard_halted{{run="{metrics.run}"}} 0.0' in http_get(url).decode()
    finally:
        exporter.close(clean=True)
    with pytest.raises(OSError):
        http_get(url)


def test_http_port_taken_is_logged_once_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    metrics = GuardMetrics(new_run())
    with socket.socket() as occupant:
        occupant.bind(("127.0.0.1", 0))
        occupant.listen()
        exporter = make_exporter(HttpExport(mode="http", port=occupant.getsockname()[1]), metrics)
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            exporter.start()
            exporter.publish()
            exporter.close(clean=False)
    assert exporter.port is None
    assert export_errors(metrics, "http") == 1
    assert len(warnings_from_exporters(caplog)) == 1


# -- pushgateway ------------------------------------------------------------------------------------


def test_pushed_series_reach_prometheus_grouped_by_job_and_run(
    pushgateway: Pushgateway, prometheus: Prometheus
) -> None:
    metrics = GuardMetrics(new_run())
    metrics.set_step(42)
    exporter = make_exporter(push_config(pushgateway.url), metrics)
    exporter.start()
    exporter.publish()
    assert {"job": "distill-guard", "run": metrics.run} in pushgateway.groups()
    series = prometheus.wait_for(f'distill_guard_training_step{{job="distill-guard", run="{metrics.run}"}} == 42')
    assert len(series) == 1
    exporter.close(clean=True)


def test_extra_grouping_labels_join_job_and_run(pushgateway: Pushgateway) -> None:
    metrics = GuardMetrics(new_run())
    exporter = make_exporter(push_config(pushgateway.url), metrics, grouping={"instance": "node-3"})
    exporter.publish()
    assert {"job": "distill-guard", "run": metrics.run, "instance": "node-3"} in pushgateway.groups()
    exporter.close(clean=True)


def test_clean_finish_deletes_the_group_when_asked(pushgateway: Pushgateway) -> None:
    metrics = GuardMetrics(new_run())
    exporter = make_exporter(push_config(pushgateway.url, delete_on_finish=True), metrics)
    exporter.publish()
    assert pushed_value(pushgateway, "distill_guard_halted", metrics.run) == 0
    exporter.close(clean=True)
    assert pushed_value(pushgateway, "distill_guard_halted", metrics.run) is None


def test_unclean_finish_pushes_the_final_state_and_keeps_it(pushgateway: Pushgateway) -> None:
    metrics = GuardMetrics(new_run())
    exporter = make_exporter(push_config(pushgateway.url, delete_on_finish=True), metrics)
    exporter.publish()
    metrics.set_halted(True)
    exporter.close(clean=False)
    assert pushed_value(pushgateway, "distill_guard_halted", metrics.run) == 1


def test_publish_pushes_at_most_once_per_interval(pushgateway: Pushgateway) -> None:
    now = [1000.0]
    metrics = GuardMetrics(new_run())
    config = push_config(pushgateway.url, interval_seconds=60)
    exporter = PushgatewayExporter(config, metrics, {"run": metrics.run}, monotonic=lambda: now[0])
    metrics.set_step(1)
    exporter.publish()
    metrics.set_step(2)
    now[0] += 59
    exporter.publish()
    assert pushed_value(pushgateway, "distill_guard_training_step", metrics.run) == 1
    now[0] += 1
    exporter.publish()
    assert pushed_value(pushgateway, "distill_guard_training_step", metrics.run) == 2
    metrics.set_step(3)
    exporter.close(clean=False)
    assert pushed_value(pushgateway, "distill_guard_training_step", metrics.run) == 3


def test_pushgateway_down_is_logged_once_and_every_failure_counted(
    unused_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = GuardMetrics(new_run())
    config = push_config(f"http://127.0.0.1:{unused_port}", interval_seconds=60, delete_on_finish=True)
    hours = itertools.count(step=3600.0)
    exporter = PushgatewayExporter(config, metrics, {"run": metrics.run}, monotonic=lambda: next(hours))
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        exporter.start()
        for _ in range(3):
            exporter.publish()
        exporter.close(clean=True)
    assert export_errors(metrics, "pushgateway") == 4
    assert len(warnings_from_exporters(caplog)) == 1


def test_nan_and_inf_arrive_in_prometheus_unchanged(pushgateway: Pushgateway, prometheus: Prometheus) -> None:
    metrics = GuardMetrics(new_run())
    metrics.observe_probe(
        *evaluation(
            "broken",
            None,
            score=math.nan,
            baseline=0.1,
            drift=math.inf,
            zscore=0.0,
            threshold=0.05,
            duration_seconds=0.1,
        )
    )
    exporter = make_exporter(push_config(pushgateway.url), metrics)
    exporter.publish()
    selector = f'{{run="{metrics.run}", probe="broken"}}'
    [score] = prometheus.wait_for(f"distill_guard_probe_score{selector}")
    [drift] = prometheus.wait_for(f"distill_guard_probe_drift{selector}")
    assert (score["value"][1], drift["value"][1]) == ("NaN", "+Inf")
    exporter.close(clean=True)


# -- textfile ---------------------------------------------------------------------------------------


def test_textfile_is_collected_by_node_exporter_and_scraped(
    node_exporter: NodeExporter, prometheus: Prometheus
) -> None:
    metrics = GuardMetrics(new_run())
    metrics.set_step(7)
    path = node_exporter.textfile_dir / f"{metrics.run}.prom"
    exporter = make_exporter(TextfileExport(mode="textfile", path=str(path)), metrics)
    exporter.start()
    exporter.publish()
    try:
        assert [p.name for p in node_exporter.textfile_dir.iterdir() if metrics.run in p.name] == [path.name]
        with prometheus.scraping(node_exporter.target):
            prometheus.wait_for(f'distill_guard_training_step{{run="{metrics.run}"}} == 7')
            metrics.set_step(8)
            exporter.close(clean=True)
            prometheus.wait_for(f'distill_guard_training_step{{run="{metrics.run}"}} == 8')
        assert export_errors(metrics, "textfile") is None
    finally:
        path.unlink()


@pytest.mark.prometheus
def test_textfile_passes_promtool_check_metrics(tmp_path: Path) -> None:
    metrics = GuardMetrics(new_run())
    metrics.observe_probe(
        *evaluation(score=math.nan, baseline=0.1, drift=math.inf, zscore=0.0, threshold=0.15, duration_seconds=0.1)
    )
    metrics.record_breach(probe="animal-preference", trait="owl")
    metrics.record_provenance_decision(decision="deny", rule="same-base-untrusted")
    metrics.set_run_info(policy="strict-distillation")
    path = tmp_path / "guard.prom"
    make_exporter(TextfileExport(mode="textfile", path=str(path)), metrics).publish()
    with path.open("rb") as exposition:
        result = subprocess.run(
            [require_binary("promtool"), "check", "metrics"], stdin=exposition, capture_output=True, text=True
        )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_unwritable_textfile_is_logged_once_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    metrics = GuardMetrics(new_run())
    exporter = make_exporter(TextfileExport(mode="textfile", path=str(tmp_path / "missing" / "g.prom")), metrics)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        exporter.publish()
        exporter.close(clean=True)
    assert export_errors(metrics, "textfile") == 2
    assert len(warnings_from_exporters(caplog)) == 1
    assert not (tmp_path / "missing").exists()
