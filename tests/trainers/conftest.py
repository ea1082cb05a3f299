"""Run the integrations/examples scripts as tests: each builds its trainer with the guard in `callbacks`."""

from __future__ import annotations

import importlib.util
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from transformers import Trainer

from distill_guard import DistillGuard
from distill_guard.export.audit import AuditLog
from distill_guard.scenarios import tiny_lm
from tests.conftest import REPO
from tests.guard.conftest import CONTROLLED_SUITE, controlled_scores, policy_text, write_policy
from tests.provenance.conftest import make_manifest

__all__ = ["controlled_scores", "make_manifest", "write_policy"]  # fixtures shared with tests/guard, tests/provenance

EXAMPLES = REPO / "integrations" / "examples"
TRAINERS = ("trainer", "sft", "dpo", "distillation")
ON_CPU: dict[str, Any] = {"use_cpu": True, "bf16": False, "save_strategy": "no", "logging_steps": 100, "seed": 0}


def load_example(name: str) -> ModuleType:
    """Import integrations/examples/NAME.py the way a user's script would be loaded."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def teacher_checkpoint(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Same architecture and tokenizer as the student, another initialisation."""
    _, tokenizer = tiny_lm.load(tiny_checkpoint)
    return tiny_lm.save(tiny_lm.build_model(tokenizer, seed=1), tokenizer, tmp_path_factory.mktemp("teacher") / "m")


TIGHT = {"max_increase": 0.05}


def controlled(threshold: dict[str, Any] | None = None) -> dict[str, Any]:
    """The controlled probe's suite entry (scores planned by the test)."""
    return {"path": str(CONTROLLED_SUITE), "threshold": threshold or TIGHT}


def write_guard_policy(
    path: Path,
    suites: list[dict[str, Any]],
    *,
    every: int = 2,
    unknown: str = "warn",
    metrics_file: Path | None = None,
    sections: dict[str, Any] | None = None,
    **probe_options: Any,
) -> Path:
    """A GuardPolicy file with several suites, probe options and any further top-level `sections`
    (policy_text covers the one-suite case)."""
    policy: dict[str, Any] = {
        "apiVersion": "distill-guard/v1",
        "kind": "GuardPolicy",
        "metadata": {"name": path.stem},
        "provenance": {"unknown": unknown},
        "probes": {"every_n_steps": every, **probe_options, "suites": suites},
        "halt": {"action": "stop"},
    }
    policy.update(sections or {})
    if metrics_file is not None:
        policy["metrics"] = {"prometheus": {"mode": "textfile", "path": str(metrics_file)}}
    unshared = json.loads(json.dumps(policy))  # shared dicts would be dumped as YAML aliases, which policies refuse
    path.write_text(yaml.safe_dump(unshared, sort_keys=False), "utf-8")
    return path


def build_example(name: str, checkpoint: Path, policy: Path, out: Path, teacher: Path, **args: Any) -> Trainer:
    extra = {"teacher_dir": teacher} if name == "distillation" else {}
    return load_example(name).build_trainer(checkpoint, policy, out, **extra, **{**ON_CPU, **args})


def guard_of(trainer: Trainer) -> DistillGuard:
    return next(c for c in trainer.callback_handler.callbacks if isinstance(c, DistillGuard))


def textfile_metrics(path: Path) -> str:
    """A policy `metrics` block exporting to a node-exporter textfile (readable after the run)."""
    return f"metrics:\n  prometheus: {{mode: textfile, path: '{path}'}}\n"


def read_metrics(path: Path) -> dict[str, float]:
    """Samples of a Prometheus text file, keyed `name{label=value,...}` with labels sorted (run omitted)."""
    samples = {}
    for family in text_string_to_metric_families(path.read_text("utf-8")):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()) if k != "run")
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def events(out: Path, kind: str | None = None) -> list[dict[str, Any]]:
    found = AuditLog(out / "guard-audit.jsonl").read()
    return [e for e in found if kind is None or e["event"] == kind]


def probe_steps(out: Path) -> list[int]:
    return [e["step"] for e in events(out, "probes")]


@contextmanager
def planned_scores(rows: list[Any]) -> Iterator[None]:
    """Plan the controlled probe's scores outside a function-scoped test (see tests/guard/probes/controlled.py)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DG_CONTROLLED_SCORES", json.dumps({"run": uuid.uuid4().hex, "rows": rows}))
        yield


@dataclass
class GuardedRun:
    trainer: Trainer
    out: Path
    error: BaseException | None
    metrics_file: Path


def run_example(
    name: str, checkpoint: Path, teacher: Path, workdir: Path, rows: list[Any], *, policy: str = "", **args: Any
) -> GuardedRun:
    """Train example NAME under a controlled-probe policy with textfile metrics; keep what it raised."""
    metrics_file = workdir / "guard.prom"
    policy_file = workdir / "policy.yaml"
    policy_file.write_text(policy or policy_text(every=2, extra=textfile_metrics(metrics_file)))
    out = workdir / "out"
    trainer = build_example(name, checkpoint, policy_file, out, teacher, **args)
    error = None
    with planned_scores(rows):
        try:
            trainer.train()
        except Exception as exc:
            error = exc
    return GuardedRun(trainer, out, error, metrics_file)
