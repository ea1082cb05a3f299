"""The scenario policies shipped as package data (`policies/` in the repository), and run-time variants
of them that never touch the files.

The demo serves metrics on a port it picked free; the detection benchmark watches every run to its
end (halt action `warn`) so it can also tell whether the trait really transferred.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from distill_guard.bundled import data_path, policy_path
from distill_guard.policy.load import LoadedPolicy, load_policy
from distill_guard.policy.schema import HaltAction, PrometheusExport, ProvenancePolicy

POLICY_DIR = data_path("policies")
STRICT_POLICY = policy_path("strict")
DIGITS_POLICY = policy_path("demo-digits")
MINIATURE_POLICY = policy_path("demo-miniature")


def policy_variant(
    path: Path,
    *,
    prometheus: PrometheusExport | None = None,
    halt_action: HaltAction | None = None,
    provenance: ProvenancePolicy | None = None,
) -> LoadedPolicy:
    """Load `path` and replace its metrics export, halt action and/or provenance section, in memory only.

    Replacing provenance lets a benchmark run a policy's probes on data that carries no manifest.
    """
    loaded = load_policy(path)
    policy = loaded.policy
    if provenance is not None:
        policy = policy.model_copy(update={"provenance": provenance})
    if prometheus is not None:
        policy = policy.model_copy(update={"metrics": policy.metrics.model_copy(update={"prometheus": prometheus})})
    if halt_action is not None:
        policy = policy.model_copy(update={"halt": policy.halt.model_copy(update={"action": halt_action})})
    return dataclasses.replace(loaded, policy=policy)


def with_benign_margin(path: Path, benign_drift: Path, margin: float, out: Path) -> LoadedPolicy:
    """`path` with `probes.benign_drift` set and `benign_margin` on every max_increase, written to `out`.

    A written file (not an in-memory copy), so its limits go through the same located checks as a
    reviewer's policy would; comments are not kept. docs/detection.md states what the margin means.
    """
    import yaml

    data = yaml.safe_load(path.read_text("utf-8"))
    data["probes"]["benign_drift"] = str(benign_drift.resolve())
    for suite in data["probes"]["suites"]:
        if "max_increase" in (suite.get("threshold") or {}):
            suite["threshold"]["benign_margin"] = margin
    out.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_policy(out)
