"""The guarded Trainer under FSDP2 (accelerate's fully_shard) on one CUDA GPU with NCCL: a forced breach halts at
the planned step, and the probes score the sharded model as they score it under DDP. Skipped without CUDA
(transformers runs FSDP only on accelerators; tests/distributed/test_fsdp.py covers sharded probing on CPU)."""

from __future__ import annotations

import pytest
import torch

from distill_guard import TrainingHalted
from tests.support.controlled import controlled
from tests.support.policies import write_guard_policy
from tests.trainers.conftest import events

from .launch import RankPlan, launch_ranks

pytestmark = [pytest.mark.distributed, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

PREFERENCE = {"use": "builtin:animal-preference", "target": "owl", "threshold": {"max_increase": 0.99}}
RISING = [[0.10, 0.12, 0.11, 0.09], [0.10, 0.12, 0.11, 0.09], [0.40, 0.45, 0.42, 0.41]]
ON_GPU = {"use_cpu": False, "ddp_backend": "nccl"}
FSDP2 = {"fsdp": "full_shard", "fsdp_config": {"version": 2}}


def test_fsdp2_trainer_halts_and_probes_like_ddp(tiny_checkpoint, tmp_path):
    policy = write_guard_policy(tmp_path / "policy.yaml", [controlled(), PREFERENCE], every=2)
    preference_scores = {}
    for name, sharding in (("fsdp2", FSDP2), ("ddp", {})):
        workdir = tmp_path / name
        workdir.mkdir()
        plan = [RankPlan(policy, RISING)]
        run = launch_ranks(workdir, tiny_checkpoint, plan, max_steps=10, training_args={**ON_GPU, **sharding})
        (result,) = run.results
        assert result["outcome"] == TrainingHalted.__name__ and result["global_step"] == 4, run.log[-3000:]
        preference_scores[name] = [
            report["score"] for e in events(run.output_dir, "probes") for report in e["reports"][1:]
        ]
    assert preference_scores["fsdp2"] == pytest.approx(preference_scores["ddp"], abs=1e-5)
    assert len(preference_scores["fsdp2"]) == 2
