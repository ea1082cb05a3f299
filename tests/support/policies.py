"""The one way tests write a GuardPolicy file: a dict built from a few options, dumped as YAML.

Tests that are about the YAML text itself (located errors, hostile input) write their text
literally; every other test builds its policy here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.support.controlled import controlled


def guard_policy(
    suites: list[dict[str, Any]] | None = None,
    *,
    name: str = "test-policy",
    every: int = 2,
    unknown: str = "warn",
    halt: str = "stop",
    metrics_file: Path | None = None,
    sections: dict[str, Any] | None = None,
    **probe_options: Any,
) -> dict[str, Any]:
    """A policy probing `suites` (default: the controlled probe) every `every` steps.

    `probe_options` go into `probes` (e.g. calibrate_noise=True), `metrics_file` exports textfile
    metrics there, and `sections` replace or add whole top-level sections (e.g. `families`).
    """
    policy: dict[str, Any] = {
        "apiVersion": "distill-guard/v1",
        "kind": "GuardPolicy",
        "metadata": {"name": name},
        "provenance": {"unknown": unknown},
        "probes": {"every_n_steps": every, **probe_options, "suites": [controlled()] if suites is None else suites},
        "halt": {"action": halt},
    }
    if metrics_file is not None:
        policy["metrics"] = {"prometheus": {"mode": "textfile", "path": str(metrics_file)}}
    policy.update(sections or {})
    return policy


def write_guard_policy(path: Path, suites: list[dict[str, Any]] | None = None, **options: Any) -> Path:
    """`guard_policy(suites, **options)` written to `path` (its name defaults to the file's stem)."""
    options.setdefault("name", path.stem)
    unshared = json.loads(json.dumps(guard_policy(suites, **options)))  # shared dicts would dump as YAML aliases
    path.write_text(yaml.safe_dump(unshared, sort_keys=False), "utf-8")
    return path
