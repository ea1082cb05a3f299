"""FSDP1 hands callbacks flat shards that no probe can run on: the guard refuses it plainly, before any step."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from transformers import AutoModelForCausalLM, TrainerControl, TrainerState

from distill_guard import DistillGuard, DistillGuardError
from distill_guard.dist import fsdp1_reason


def test_fsdp_version_1_is_named(tiny_checkpoint) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    assert fsdp1_reason(SimpleNamespace(fsdp="full_shard", fsdp_config={"version": 1}), model)
    assert fsdp1_reason(SimpleNamespace(fsdp="full_shard", fsdp_config={"version": 2}), model) is None
    assert fsdp1_reason(SimpleNamespace(fsdp="", fsdp_config={}), model) is None


def test_guard_refuses_fsdp1_at_train_begin_with_advice(tiny_checkpoint, tmp_path, write_policy) -> None:
    guard = DistillGuard.from_policy(write_policy())
    args = SimpleNamespace(fsdp="full_shard", fsdp_config={"version": 1}, output_dir=str(tmp_path), run_name=None)
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    with pytest.raises(DistillGuardError, match="use FSDP2"):
        guard.on_train_begin(args, TrainerState(), TrainerControl(), model=model)
    assert not (tmp_path / "guard-audit.jsonl").exists()
