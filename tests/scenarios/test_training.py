"""The scenarios' student run: the rate schedule it names is the one the real `Trainer` steps with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset
from transformers import TrainerCallback

from distill_guard.scenarios.subliminal_lm import MiniatureSpec
from distill_guard.scenarios.training import StudentRun, train_student


class Regression(nn.Module):
    """A model whose forward returns {'loss': ...}, as plain `Trainer` wants."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        return {"loss": nn.functional.mse_loss(self.linear(x).squeeze(-1), y)}


class RecordRates(TrainerCallback):
    def __init__(self) -> None:
        self.rates: list[float] = []

    def on_step_begin(self, args: Any, state: Any, control: Any, optimizer: Any = None, **kwargs: Any) -> None:
        self.rates.append(optimizer.param_groups[0]["lr"])


class Rows(TensorDataset):
    def __getitem__(self, index: int) -> dict[str, Tensor]:
        x, y = super().__getitem__(index)
        return {"x": x, "y": y}


def rates_of(run: StudentRun, tmp_path: Path) -> list[float]:
    torch.manual_seed(0)
    record = RecordRates()
    train_student(Regression(), Rows(torch.randn(32, 4), torch.randn(32)), run, tmp_path, callbacks=[record])
    return record.rates


def test_a_linear_schedule_decays_the_rate_to_zero_and_the_default_keeps_it_constant(tmp_path: Path) -> None:
    linear = rates_of(StudentRun(max_steps=4, batch_size=8, learning_rate=1e-2, schedule="linear"), tmp_path)
    assert linear == pytest.approx([1e-2, 7.5e-3, 5e-3, 2.5e-3])
    constant = rates_of(StudentRun(max_steps=4, batch_size=8, learning_rate=1e-2), tmp_path)
    assert constant == pytest.approx([1e-2] * 4)


def test_the_miniature_refuses_an_unknown_schedule_by_name() -> None:
    with pytest.raises(ValueError, match="student_schedule 'step'"):
        MiniatureSpec(student_schedule="step")
