"""Tiny real training runs with the guard attached: policies written per test, a real Trainer."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from datasets import Dataset
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DataCollatorForLanguageModeling,
    Trainer,
    TrainingArguments,
)

from distill_guard import DistillGuard

HERE = Path(__file__).parent
CONTROLLED_SUITE = HERE / "probes" / "controlled.yaml"


def policy_text(
    *,
    unknown: str = "warn",
    halt: str = "stop",
    every: int = 2,
    threshold: str = "{max_increase: 0.05, patience: 1}",
    suite: str | None = None,
    extra: str = "",
    probes_extra: str = "",
) -> str:
    suite_line = suite or f"path: {CONTROLLED_SUITE}"
    return f"""apiVersion: distill-guard/v1
kind: GuardPolicy
metadata: {{name: test-policy}}
provenance:
  unknown: {unknown}
probes:
  every_n_steps: {every}
{probes_extra}  suites:
    - {suite_line}
      threshold: {threshold}
halt:
  action: {halt}
{extra}"""


@pytest.fixture
def write_policy(tmp_path: Path) -> Callable[..., Path]:
    def write(**options: Any) -> Path:
        path = tmp_path / "policy.yaml"
        path.write_text(policy_text(**options))
        return path

    return write


@pytest.fixture
def controlled_scores(monkeypatch: pytest.MonkeyPatch) -> Callable[[list[Any]], None]:
    """Plan the controlled probe's scores: one entry per call (baseline first)."""

    def plan(rows: list[Any]) -> None:
        monkeypatch.setenv("DG_CONTROLLED_SCORES", json.dumps({"run": uuid.uuid4().hex, "rows": rows}))

    return plan


def text_dataset(tokenizer: Any, n: int = 32) -> Dataset:
    lines = [f"Question: What is your favorite animal? Answer: owl {i % 7}, {i % 13}" for i in range(n)]
    encoded = tokenizer(lines, truncation=True, max_length=32)
    return Dataset.from_dict({"text": lines, **encoded})


def make_trainer(
    checkpoint: Path,
    output_dir: Path,
    guard: DistillGuard,
    *,
    max_steps: int = 6,
    dataset: Dataset | None = None,
    **args: Any,
) -> Trainer:
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    defaults: dict[str, Any] = {
        "per_device_train_batch_size": 4,
        "learning_rate": 1e-3,
        "logging_steps": 100,
        "save_strategy": "no",
        "report_to": [],
        "use_cpu": True,
        "seed": 0,
    }
    training_args = TrainingArguments(output_dir=str(output_dir), max_steps=max_steps, **{**defaults, **args})
    return Trainer(
        model=model,
        args=training_args,
        train_dataset=dataset if dataset is not None else text_dataset(tokenizer),
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
        processing_class=tokenizer,
        callbacks=[guard],
    )
