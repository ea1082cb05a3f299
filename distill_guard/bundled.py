"""Files that ship inside the package: policies, the policy schema, the dashboard and the alert rules.

They live under `distill_guard/data/` (the repository's `policies/`, `integrations/grafana/` and
`integrations/prometheus/` are links to them), so an installed wheel has everything the demo and
`distill-guard export` need, with one copy that cannot drift.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

POLICY_NAMES = ("strict", "audit", "demo-digits", "demo-lm", "demo-miniature")


def data_path(*parts: str) -> Path:
    """A shipped file on disk (wheels install as plain files; policies need real paths for their suites)."""
    return Path(str(resources.files("distill_guard").joinpath("data", *parts)))


def policy_path(name: str) -> Path:
    if name not in POLICY_NAMES:
        raise ValueError(f"unknown shipped policy {name!r}; known: {', '.join(POLICY_NAMES)}")
    return data_path("policies", f"{name}.yaml")
