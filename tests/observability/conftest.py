"""Fixtures: real Prometheus, Pushgateway and node-exporter processes on 127.0.0.1 (see prometheus_stack).

Each starts on a free port with a temporary config and data directory, is ready before the first
test uses it, and is stopped at the end of the session, even after a failure. Without the binaries
the tests skip, except under CI=true, where they fail (node-exporter alone stays optional).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from prometheus_stack import (
    ALERT_RULES,
    NodeExporter,
    Prometheus,
    Pushgateway,
    require_binary,
    start_server,
)

from distill_guard.scenarios.demo import free_local_port


@pytest.fixture(scope="session")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pushgateway]:
    binary = require_binary("prometheus-pushgateway")
    workdir = tmp_path_factory.mktemp("pushgateway")
    port = free_local_port()
    server = start_server(
        "pushgateway",
        [binary, f"--web.listen-address=127.0.0.1:{port}"],
        f"http://127.0.0.1:{port}",
        "/-/ready",
        workdir,
    )
    yield Pushgateway(server)
    server.stop()


@pytest.fixture(scope="session")
def node_exporter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeExporter]:
    """node-exporter with only its textfile collector, reading a temporary directory."""
    # Optional even in CI (only Recommended by Debian's prometheus); promtool checks the textfile regardless.
    binary = require_binary("prometheus-node-exporter", required_in_ci=False)
    workdir = tmp_path_factory.mktemp("node-exporter")
    textfile_dir = workdir / "textfile"
    textfile_dir.mkdir()
    port = free_local_port()
    argv = [
        binary,
        f"--web.listen-address=127.0.0.1:{port}",
        "--collector.disable-defaults",
        "--collector.textfile",
        f"--collector.textfile.directory={textfile_dir}",
    ]
    server = start_server("node-exporter", argv, f"http://127.0.0.1:{port}", "/metrics", workdir)
    yield NodeExporter(server, textfile_dir)
    server.stop()


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory, pushgateway: Pushgateway) -> Iterator[Prometheus]:
    """Prometheus scraping every second: the Pushgateway (honor_labels) plus targets added by tests."""
    binary = require_binary("prometheus")
    workdir = tmp_path_factory.mktemp("prometheus")
    targets_file = workdir / "targets.json"
    targets_file.write_text(json.dumps([{"targets": [], "labels": {}}]))
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERT_RULES)],
        "scrape_configs": [
            {
                "job_name": "pushgateway",
                "honor_labels": True,
                "static_configs": [{"targets": [pushgateway.url.removeprefix("http://")]}],
            },
            {
                "job_name": "distill-guard-test",
                "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "1s"}],
            },
        ],
    }
    config_file = workdir / "prometheus.yml"
    config_file.write_text(json.dumps(config))  # JSON is YAML
    port = free_local_port()
    argv = [
        binary,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    server = start_server("prometheus", argv, f"http://127.0.0.1:{port}", "/-/ready", workdir)
    yield Prometheus(server, targets_file)
    server.stop()


@pytest.fixture
def unused_port() -> int:
    """A 127.0.0.1 port nothing listens on: a backend that is down."""
    return free_local_port()


REAL_PROCESS_FIXTURES = frozenset({"prometheus", "pushgateway", "node_exporter"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs a real process, so `-m "not prometheus"` can leave them out."""
    for item in items:
        if REAL_PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.prometheus)
