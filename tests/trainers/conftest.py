"""Run the integrations/examples scripts as tests: each builds its trainer with the guard in `callbacks`."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from transformers import Trainer

from distill_guard import DistillGuard
from distill_guard.export.audit import AuditLog
from distill_guard.scenarios import tiny_lm
from tests.conftest import REPO
from tests.guard.conftest import controlled_scores, write_policy
from tests.provenance.conftest import make_manifest
from tests.support.controlled import planned_scores
from tests.support.policies import write_guard_policy

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


def build_example(name: str, checkpoint: Path, policy: Path, out: Path, teacher: Path, **args: Any) -> Trainer:
    extra = {"teacher_dir": teacher} if name == "distillation" else {}
    return load_example(name).build_trainer(checkpoint, policy, out, **extra, **{**ON_CPU, **args})


def guard_of(trainer: Trainer) -> DistillGuard:
    return next(c for c in trainer.callback_handler.callbacks if isinstance(c, DistillGuard))


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
    policy_file = write_guard_policy(workdir / "policy.yaml", name="test-policy", metrics_file=metrics_file)
    out = workdir / "out"
    trainer = build_example(name, checkpoint, policy_file, out, teacher, **args)
    error = None
    with planned_scores(rows):
        try:
            trainer.train()
        except Exception as exc:
            error = exc
    return GuardedRun(trainer, out, error, metrics_file)
