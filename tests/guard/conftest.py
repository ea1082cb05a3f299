"""Tiny real training runs with the guard attached: policies written per test, a real Trainer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
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
from tests.support.controlled import PLAN
from tests.support.policies import write_guard_policy


@pytest.fixture
def write_policy(tmp_path: Path) -> Callable[..., Path]:
    """Write this test's policy to tmp_path/policy.yaml (options of tests.support.policies.guard_policy)."""

    def write(suites: list[dict[str, Any]] | None = None, **options: Any) -> Path:
        options.setdefault("name", "test-policy")
        return write_guard_policy(tmp_path / "policy.yaml", suites, **options)

    return write


@pytest.fixture
def wandb_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    pytest.importorskip("wandb", reason="wandb is in the dev extra")
    import wandb

    folder = tmp_path / "wandb-home"
    folder.mkdir()
    for name, value in {
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(folder),
        "WANDB_CACHE_DIR": str(folder / "cache"),
        "WANDB_DATA_DIR": str(folder / "data"),
        "WANDB_CONFIG_DIR": str(folder / "config"),
        "WANDB_LOG_MODEL": "end",
        "WANDB_SILENT": "true",
        "WANDB_PROJECT": "distill-guard-tests",
    }.items():
        monkeypatch.setenv(name, value)
    yield folder
    wandb.finish(exit_code=1)  # what wandb's own exit hook does when the script dies of TrainingHalted
    wandb.teardown()  # wandb keeps its first settings (WANDB_DIR) for the process otherwise


@pytest.fixture
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A local MLflow `file:` store that transformers' MLflowCallback logs into (experiment distill-guard-tests),
    checkpoint artifacts included; the run a halted training leaves open is ended afterwards."""
    pytest.importorskip("mlflow", reason="mlflow-skinny is in the dev extra")
    import mlflow

    uri = (tmp_path / "mlruns").as_uri()
    mlflow.set_tracking_uri(uri)  # MLflow keeps the first URI it was given for the whole process
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 wants a database unless told
    monkeypatch.setenv("HF_MLFLOW_LOG_ARTIFACTS", "1")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "distill-guard-tests")
    yield uri
    mlflow.end_run()


@pytest.fixture
def controlled_scores() -> Iterator[Callable[[list[Any]], None]]:
    """Plan the controlled probe's scores: one entry per call (baseline first); reset after the test."""
    yield PLAN.plan
    PLAN.reset()


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
