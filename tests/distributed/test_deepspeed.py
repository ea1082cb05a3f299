"""DeepSpeed ZeRO-3 and ZeRO-2 under a guarded HF Trainer, two CPU processes (DeepSpeed's CPU accelerator, gloo):
probes score the gathered parameters, one rank's breach or denial stops both ranks together, one exporter.

Under ZeRO-3 every probe forward is a collective (each rank holds a partition of every weight, and DeepSpeed's
module hooks all-gather it for the forward), so a rank that skipped one would hang the other: the launch timeout
turns that into a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from distill_guard.drift.halt_record import HALT_RECORD_NAME
from tests.support.controlled import TIGHT
from tests.trainers.conftest import events

from .launch import LaunchedRun, RankPlan, launch_ranks
from .test_two_ranks import (
    FLAT,
    LOOSE,
    RISEN,
    assert_every_rank_runs_every_probe_forward,
    assert_rank_0_alone_writes_and_exports,
    assert_same_halt_on_both,
    probe_scores_equal_a_single_process,
    rank_policy,
)

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

ON_CPU = {"DS_ACCELERATOR": "cpu"}
SHM_BUILD_TIMEOUT_SECONDS = 600


def zero(stage: int) -> dict[str, Any]:
    """TrainingArguments for ZeRO-`stage`; "auto" lets the Trainer fill the batch sizes it computes."""
    batch = {
        key: "auto" for key in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "train_batch_size")
    }
    return {"deepspeed": {"zero_optimization": {"stage": stage}, **batch}}


@pytest.fixture(scope="module", autouse=True)
def shared_memory_op() -> None:
    """DeepSpeed's CPU communicator JIT-compiles its shared-memory op on first use (minutes on a 2-core machine,
    cached under ~/.cache/torch_extensions); build it once here, under its own timeout, not inside a launch."""
    build = "from deepspeed.comm.torch import build_shm_op; build_shm_op()"
    env = {**os.environ, **ON_CPU}
    subprocess.run([sys.executable, "-c", build], env=env, check=True, timeout=SHM_BUILD_TIMEOUT_SECONDS)


def launch(workdir: Path, checkpoint: Path, plans: list[RankPlan], stage: int, max_steps: int) -> LaunchedRun:
    return launch_ranks(workdir, checkpoint, plans, max_steps=max_steps, training_args=zero(stage), env=ON_CPU)


def breach_plans(workdir: Path) -> list[RankPlan]:
    """Both ranks see the same rise at step 4; only rank 1's policy calls it a breach."""
    scores = [FLAT, FLAT, RISEN]
    return [
        RankPlan(rank_policy(workdir / "rank0.yaml", threshold=LOOSE, sharded=True), scores),
        RankPlan(rank_policy(workdir / "rank1.yaml", threshold=TIGHT, sharded=True), scores),
    ]


@pytest.fixture(scope="module")
def zero3_breach(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> LaunchedRun:
    workdir = tmp_path_factory.mktemp("zero3")
    return launch(workdir, tiny_checkpoint, breach_plans(workdir), stage=3, max_steps=10)


def test_zero3_really_partitions_the_model(zero3_breach):
    assert [(r["deepspeed"], r["zero3_partitioned"], r["world_size"]) for r in zero3_breach.results] == [
        (True, True, 2)
    ] * 2


def test_zero3_breach_seen_on_one_rank_halts_both_at_the_same_step(zero3_breach):
    assert_same_halt_on_both(zero3_breach, step=4)
    assert zero3_breach.results[0]["halt_record"]["policy"] == "rank1"


def test_zero3_rank_0_alone_writes_and_exports(zero3_breach):
    assert_rank_0_alone_writes_and_exports(zero3_breach, step=4)


def test_zero3_every_rank_runs_every_probe_forward(zero3_breach):
    assert_every_rank_runs_every_probe_forward(zero3_breach)


def test_zero3_probes_score_the_gathered_weights_like_a_single_process(zero3_breach, tiny_checkpoint):
    probe_scores_equal_a_single_process(zero3_breach, tiny_checkpoint)


def test_zero3_weights_digest_reads_each_ranks_partition(zero3_breach):
    """Under ZeRO-3 a parameter's own tensor is empty; a digest of it would not change with training."""
    first, second = (r["weights_digest"] for r in zero3_breach.results)
    assert first.startswith("sha256:") and first != second


def test_zero3_clean_run_finishes_on_both_ranks(tiny_checkpoint, tmp_path):
    policy = rank_policy(tmp_path / "policy.yaml", threshold=LOOSE)
    run = launch(tmp_path, tiny_checkpoint, [RankPlan(policy, [FLAT] * 3)] * 2, stage=3, max_steps=4)
    assert [(r["outcome"], r["global_step"]) for r in run.results] == [("completed", 4)] * 2, run.log[-3000:]
    assert [e["step"] for e in events(run.output_dir, "probes")] == [2, 4]
    assert not (run.output_dir / HALT_RECORD_NAME).exists()


def test_zero3_provenance_denied_on_one_rank_refuses_on_both(tiny_checkpoint, tmp_path):
    plans = [
        RankPlan(rank_policy(tmp_path / "rank0.yaml", threshold=TIGHT), [FLAT]),
        RankPlan(rank_policy(tmp_path / "rank1.yaml", threshold=TIGHT, unknown="deny"), [FLAT]),
    ]
    run = launch(tmp_path, tiny_checkpoint, plans, stage=3, max_steps=6)
    assert [r["outcome"] for r in run.results] == ["ProvenanceDenied", "ProvenanceDenied"], run.log[-3000:]
    assert [r["global_step"] for r in run.results] == [0, 0]


def test_zero2_breach_seen_on_one_rank_halts_both_at_the_same_step(tiny_checkpoint, tmp_path):
    run = launch(tmp_path, tiny_checkpoint, breach_plans(tmp_path), stage=2, max_steps=10)
    assert [(r["deepspeed"], r["zero3_partitioned"]) for r in run.results] == [(True, False)] * 2
    assert_same_halt_on_both(run, step=4)
    probe_scores_equal_a_single_process(run, tiny_checkpoint)
