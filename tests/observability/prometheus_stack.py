"""Real Prometheus, Pushgateway and node-exporter processes on 127.0.0.1, for conftest.py's fixtures.

Debian's binaries run on free ports with temporary configs; a started server is ready (its
readiness endpoint answers) or the start fails with its log. Without the binaries tests skip,
except under CI=true, where they fail: CI must install `prometheus` (with promtool) and
`prometheus-pushgateway`. `prometheus-node-exporter` (a Recommends of `prometheus`) is optional.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.ci import missing

REPO = Path(__file__).resolve().parents[2]
ALERT_RULES = REPO / "integrations" / "prometheus" / "alerts.yaml"
READY_DEADLINE_SECONDS = 30.0
WAIT_DEADLINE_SECONDS = 30.0
POLL_SECONDS = 0.2


def require_binary(name: str, *, required_in_ci: bool = True) -> str:
    """The binary's path. When it is not installed: a skip, or under CI=true a failure."""
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"{name} is not installed (Debian: apt-get install {name.replace('promtool', 'prometheus')})"
    missing(message, required_in_ci=required_in_ci)


def http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read()


def wait_until(condition: Callable[[], Any], what: str, deadline_seconds: float = WAIT_DEADLINE_SECONDS) -> Any:
    """Poll `condition` until it returns something truthy; fail naming `what` after the deadline."""
    deadline = time.monotonic() + deadline_seconds
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
        except (OSError, ValueError) as exc:
            last_error = exc
        else:
            if result:
                return result
        time.sleep(POLL_SECONDS)
    raise AssertionError(f"timed out after {deadline_seconds:.0f}s waiting for {what} (last error: {last_error!r})")


@dataclass
class ServerProcess:
    """One started binary, its URL and its log file."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_server(name: str, argv: list[str], url: str, ready_path: str, workdir: Path) -> ServerProcess:
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    server = ServerProcess(name, url, process, log_path)

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"{name} exited with {process.returncode}:\n{server.log_tail()}")
        try:
            http_get(url + ready_path)
        except (OSError, urllib.error.HTTPError):
            return False
        return True

    try:
        wait_until(ready, f"{name} at {url}{ready_path}", READY_DEADLINE_SECONDS)
    except BaseException:
        server.stop()
        raise
    return server


@dataclass
class Pushgateway:
    server: ServerProcess

    @property
    def url(self) -> str:
        return self.server.url

    def groups(self) -> list[dict[str, str]]:
        """Grouping labels of every group the Pushgateway holds."""
        data = json.loads(http_get(self.url + "/api/v1/metrics"))["data"]
        return [group["labels"] for group in data]


@dataclass
class NodeExporter:
    server: ServerProcess
    textfile_dir: Path

    @property
    def target(self) -> str:
        return self.server.url.removeprefix("http://")


@dataclass
class Prometheus:
    """A running Prometheus that scrapes the Pushgateway and any target a test adds, with our alert rules."""

    server: ServerProcess
    targets_file: Path
    targets: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            body = json.loads(http_get(f"{self.url}/api/v1/{path}{query}"))
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read())
        if body.get("status") != "success":
            raise AssertionError(f"Prometheus rejected {path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; raises AssertionError when Prometheus cannot parse or evaluate `expr`."""
        data = self.api("query", query=expr)
        return data["result"] if data["resultType"] == "vector" else [data]

    def wait_for(self, expr: str, deadline_seconds: float = WAIT_DEADLINE_SECONDS) -> list[dict[str, Any]]:
        """Poll until `expr` returns at least one series."""
        try:
            return wait_until(lambda: self.query(expr), f"data for {expr!r}", deadline_seconds)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nscrape targets: {self.target_health()}") from None

    def target_health(self) -> list[tuple[str, str, str]]:
        active = self.api("targets")["activeTargets"]
        return [(t["scrapeUrl"], t["health"], t["lastError"]) for t in active]

    @contextmanager
    def scraping(self, target: str) -> Iterator[None]:
        """Scrape host:port while the block runs (file-based discovery, picked up within seconds)."""
        self._write_targets([*self.targets, target])
        try:
            yield
        finally:
            self._write_targets([t for t in self.targets if t != target])

    def _write_targets(self, targets: list[str]) -> None:
        self.targets = targets
        temporary = self.targets_file.with_suffix(".tmp")
        temporary.write_text(json.dumps([{"targets": targets, "labels": {}}]))
        temporary.replace(self.targets_file)
