"""Deployment settings from `DISTILL_GUARD_*` variables, so one reviewed policy serves a laptop, CI and a cluster.

Only where metrics and the audit log go, and what the run is called, can come from the
environment; every safety setting (provenance rules, probes, thresholds, halting) comes only from
the reviewed policy file. A `DISTILL_GUARD_*` variable that is neither a deployment setting nor
one of the package's other switches is ignored with a warning, so a hoped-for override of a
safety setting never passes silently.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from distill_guard.errors import DistillGuardError
from distill_guard.policy.schema import GuardPolicy, MetricsPolicy

logger = logging.getLogger(__name__)

METRICS_MODE = "DISTILL_GUARD_METRICS_MODE"
METRICS_HOST = "DISTILL_GUARD_METRICS_HOST"
METRICS_PORT = "DISTILL_GUARD_METRICS_PORT"
PUSHGATEWAY_URL = "DISTILL_GUARD_PUSHGATEWAY_URL"
RUN_NAME = "DISTILL_GUARD_RUN_NAME"
AUDIT_LOG = "DISTILL_GUARD_AUDIT_LOG"
DEPLOYMENT_VARIABLES = (METRICS_MODE, METRICS_HOST, METRICS_PORT, PUSHGATEWAY_URL, RUN_NAME, AUDIT_LOG)
OTHER_SWITCHES = ("DISTILL_GUARD_CACHE", "DISTILL_GUARD_DEBUG_COLLECTIVES", "DISTILL_GUARD_VENV")
"""Variables read elsewhere (the SmolLM2 cache, the collectives check, the dev script); not reported as ignored."""


def with_deployment_environment(policy: GuardPolicy, environ: Mapping[str, str] | None = None) -> GuardPolicy:
    """The policy with its `metrics` section overridden by the deployment variables that are set.

    Raises DistillGuardError naming the variable when a value is invalid (a port that is not a
    number, a Pushgateway URL without a scheme, pushgateway mode without a URL).
    """
    env = os.environ if environ is None else environ
    _warn_about_unknown(env)
    overrides = {name: env[name] for name in DEPLOYMENT_VARIABLES if env.get(name)}
    if not overrides:
        return policy
    metrics: dict[str, Any] = policy.metrics.model_dump(mode="json")
    exporter: dict[str, Any] = metrics["prometheus"]
    if METRICS_MODE in overrides and overrides[METRICS_MODE] != exporter["mode"]:
        exporter = {"mode": overrides[METRICS_MODE]}
    if METRICS_HOST in overrides:
        exporter["host"] = overrides[METRICS_HOST]
    if METRICS_PORT in overrides:
        port = overrides[METRICS_PORT].strip()
        exporter["port"] = int(port) if port.isdigit() else port  # the schema refuses anything else, named
    if PUSHGATEWAY_URL in overrides:
        exporter["url"] = overrides[PUSHGATEWAY_URL]
    metrics["prometheus"] = exporter
    if RUN_NAME in overrides:
        metrics["run_name"] = overrides[RUN_NAME]
    if AUDIT_LOG in overrides:
        metrics["audit_log"] = overrides[AUDIT_LOG]
    try:
        merged = MetricsPolicy.model_validate(metrics)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise DistillGuardError(
            f"deployment settings from {', '.join(sorted(overrides))} are invalid "
            f"(metrics section of {policy.metadata.name}): {problems}"
        ) from None
    logger.info("distill-guard: deployment settings from the environment: %s", ", ".join(sorted(overrides)))
    return policy.model_copy(update={"metrics": merged})


def _warn_about_unknown(env: Mapping[str, str]) -> None:
    known = set(DEPLOYMENT_VARIABLES) | set(OTHER_SWITCHES)
    for name in sorted(n for n in env if n.startswith("DISTILL_GUARD_") and n not in known):
        logger.warning(
            "distill-guard: %s is ignored; only deployment settings (%s) come from the environment, "
            "safety settings only from the policy file",
            name,
            ", ".join(DEPLOYMENT_VARIABLES),
        )
