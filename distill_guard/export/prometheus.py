"""Prometheus exporters: HTTP endpoint, Pushgateway, node-exporter textfile, or none.

Only observability is at stake here, so an exporter never raises into training: a port that is
taken or a backend that is down is logged once (a warning on the first failure) and every failure
is counted in `distill_guard_export_errors_total{backend}`. Rank 0 alone creates an exporter.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol
from wsgiref.simple_server import WSGIServer

from prometheus_client import delete_from_gateway, push_to_gateway, start_http_server, write_to_textfile

from distill_guard.export.metrics import GuardMetrics
from distill_guard.policy.schema import (
    HttpExport,
    NoExport,
    PrometheusExport,
    PushgatewayExport,
    TextfileExport,
)

logger = logging.getLogger(__name__)

PUSH_TIMEOUT_SECONDS = 5.0


class Exporter(Protocol):
    """How the callback hands metrics to Prometheus; no method raises."""

    def start(self) -> None: ...

    def publish(self) -> None: ...

    def close(self, *, clean: bool) -> None: ...

    def location(self) -> str:
        """Where the metrics can be found, for the log: a URL (with the bound port) or a path."""
        ...


class _FailSoft:
    """Runs export actions, turning exceptions into one warning plus a counted error per failure."""

    def __init__(self, backend: str, metrics: GuardMetrics) -> None:
        self.backend = backend
        self._metrics = metrics
        self._warned = False

    def run(self, action: str, effect: Callable[[], None]) -> None:
        try:
            effect()
        except Exception as exc:
            self._metrics.record_export_error(self.backend)
            if not self._warned:
                self._warned = True
                logger.warning(
                    "distill-guard: Prometheus %s export failed to %s (%s: %s); training continues, "
                    "further failures are only counted in distill_guard_export_errors_total",
                    self.backend,
                    action,
                    type(exc).__name__,
                    exc,
                )
            else:
                logger.debug("distill-guard: %s export failed to %s: %r", self.backend, action, exc)


class NullExporter:
    """`mode: none`: metrics stay in memory (tests and the CLI may still read the registry)."""

    def start(self) -> None:
        pass

    def publish(self) -> None:
        pass

    def close(self, *, clean: bool) -> None:
        pass

    def location(self) -> str:
        return "not exported (metrics.prometheus.mode: none)"


class HttpExporter:
    """Serves /metrics on host:port for Prometheus to scrape; port 0 binds an ephemeral port."""

    def __init__(self, config: HttpExport, metrics: GuardMetrics) -> None:
        self._config = config
        self._metrics = metrics
        self._fail_soft = _FailSoft("http", metrics)
        self._server: WSGIServer | None = None
        self.port: int | None = None

    def start(self) -> None:
        self._fail_soft.run(f"listen on {self._config.host}:{self._config.port}", self._listen)

    def _listen(self) -> None:
        server, _thread = start_http_server(self._config.port, addr=self._config.host, registry=self._metrics.registry)
        self._server = server
        self.port = server.server_port

    def publish(self) -> None:
        """Nothing to do: Prometheus pulls the registry's current values."""

    def location(self) -> str:
        if self.port is None:
            return f"not served (could not listen on {self._config.host}:{self._config.port})"
        return f"http://{self._config.host}:{self.port}/metrics"

    def close(self, *, clean: bool) -> None:
        server, self._server = self._server, None
        if server is not None:
            self._fail_soft.run("stop the server", lambda: _shutdown(server))


def _shutdown(server: WSGIServer) -> None:
    server.shutdown()
    server.server_close()


class PushgatewayExporter:
    """Pushes the whole registry to a Pushgateway group {job, run}, at most once per interval.

    `publish` is cheap to call on every step; a push happens when `interval_seconds` have passed
    since the last one. `close` always pushes the final state, or deletes the group after a clean
    finish when `delete_on_finish` is set (the Pushgateway never forgets a group on its own).
    """

    def __init__(
        self,
        config: PushgatewayExport,
        metrics: GuardMetrics,
        grouping: dict[str, str],
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._metrics = metrics
        self._grouping = grouping
        self._monotonic = monotonic
        self._fail_soft = _FailSoft("pushgateway", metrics)
        self._last_push: float | None = None

    def start(self) -> None:
        """Nothing to do: the first `publish` pushes."""

    def location(self) -> str:
        return f"pushed to {self._config.url} (job {self._config.job}, run {self._grouping.get('run')})"

    def publish(self) -> None:
        now = self._monotonic()
        if self._last_push is None or now - self._last_push >= self._config.interval_seconds:
            self._last_push = now
            self._push()

    def close(self, *, clean: bool) -> None:
        if clean and self._config.delete_on_finish:
            self._fail_soft.run(f"delete the group at {self._config.url}", self._delete)
        else:
            self._push()

    def _push(self) -> None:
        self._fail_soft.run(f"push to {self._config.url}", self._push_now)

    def _push_now(self) -> None:
        push_to_gateway(
            self._config.url,
            job=self._config.job,
            registry=self._metrics.registry,
            grouping_key=self._grouping,
            timeout=PUSH_TIMEOUT_SECONDS,
        )

    def _delete(self) -> None:
        delete_from_gateway(
            self._config.url, job=self._config.job, grouping_key=self._grouping, timeout=PUSH_TIMEOUT_SECONDS
        )


class TextfileExporter:
    """Writes the exposition for node-exporter's textfile collector, atomically (temp file + rename)."""

    def __init__(self, config: TextfileExport, metrics: GuardMetrics) -> None:
        self._config = config
        self._metrics = metrics
        self._fail_soft = _FailSoft("textfile", metrics)

    def start(self) -> None:
        """Nothing to do: the first `publish` writes the file."""

    def location(self) -> str:
        return f"written to {self._config.path}"

    def publish(self) -> None:
        # write_to_textfile writes PATH.<pid>.<thread> then renames it over PATH; node-exporter
        # ignores the temporary name because it does not end in .prom.
        self._fail_soft.run(
            f"write {self._config.path}", lambda: write_to_textfile(self._config.path, self._metrics.registry)
        )

    def close(self, *, clean: bool) -> None:
        self.publish()


def make_exporter(
    config: PrometheusExport, metrics: GuardMetrics, *, grouping: dict[str, str] | None = None
) -> Exporter:
    """The exporter for the policy's `metrics.prometheus` block.

    `grouping` adds Pushgateway grouping labels to {job, run}; other modes ignore it.
    """
    if isinstance(config, HttpExport):
        return HttpExporter(config, metrics)
    if isinstance(config, PushgatewayExport):
        return PushgatewayExporter(config, metrics, {"run": metrics.run, **(grouping or {})})
    if isinstance(config, TextfileExport):
        return TextfileExporter(config, metrics)
    if isinstance(config, NoExport):
        return NullExporter()
    raise TypeError(f"unknown Prometheus export config: {config!r}")
