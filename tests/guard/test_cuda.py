"""The guard on a CUDA device: same probe scores as on CPU, and a halt inside a bf16 GPU run.

CI has no GPU, so these run only where CUDA is present (they ran on a lent H200; see the README).
"""

from __future__ import annotations

import pytest
import torch

from distill_guard import DistillGuard, TrainingHalted
from distill_guard.policy.load import load_policy
from distill_guard.probes.prepared import prepare_probes
from distill_guard.scenarios.tiny_lm import load
from tests.guard.conftest import make_trainer

OWL_SUITE = {"use": "builtin:animal-preference", "target": "owl", "threshold": {"max_increase": 0.5}}

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_probe_scores_on_gpu_match_cpu(tiny_checkpoint, tmp_path, write_policy) -> None:
    policy = write_policy([OWL_SUITE])
    probe = prepare_probes(load_policy(policy))[0]
    model, tokenizer = load(tiny_checkpoint)
    on_cpu = probe.run(model, tokenizer, max_tokens_per_batch=4096)
    on_gpu = probe.run(model.to("cuda"), tokenizer, max_tokens_per_batch=4096)
    assert on_gpu.item_ids == on_cpu.item_ids
    assert max(abs(a - b) for a, b in zip(on_gpu.item_scores, on_cpu.item_scores, strict=True)) < 1e-4
    assert next(model.parameters()).device.type == "cuda"  # left where it was found


def test_halt_in_a_bf16_gpu_run(tiny_checkpoint, tmp_path, write_policy, controlled_scores) -> None:
    controlled_scores([[0.10, 0.12, 0.11, 0.09], [0.10, 0.12, 0.11, 0.09], [0.40, 0.45, 0.42, 0.41]])
    guard = DistillGuard.from_policy(write_policy(every=2))
    trainer = make_trainer(tiny_checkpoint, tmp_path / "out", guard, max_steps=10, use_cpu=False, bf16=True)
    with pytest.raises(TrainingHalted) as info:
        trainer.train()
    assert info.value.record.step == 4 and trainer.state.global_step == 4
    assert next(trainer.model.parameters()).device.type == "cuda"


def test_builtin_probe_during_gpu_training(tiny_checkpoint, tmp_path, write_policy) -> None:
    policy = write_policy([OWL_SUITE], every=2)
    guard = DistillGuard.from_policy(policy)
    make_trainer(tiny_checkpoint, tmp_path / "out", guard, max_steps=4, use_cpu=False, bf16=True).train()
    assert [r.step for r in guard.monitor.history] == [2, 4]
    assert all(0 < r.score < 1 for r in guard.monitor.history)
