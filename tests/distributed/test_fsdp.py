"""Probes on an FSDP2-sharded model, two CPU processes (gloo): every rank runs every forward, and the gathered
scores equal a single-process run, also when the items do not split evenly across the ranks."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill_guard import DistillGuard
from distill_guard.scenarios import tiny_lm
from tests.support.policies import write_guard_policy

from .launch import LaunchedRun, RankPlan, launch_ranks

pytestmark = pytest.mark.distributed

LOOSE = {"max_increase": 0.5}
SUITES = [
    {"use": "builtin:animal-preference", "target": "owl", "threshold": LOOSE},
    {"use": "builtin:animal-activation", "target": "owl", "threshold": LOOSE},
    {"path": str(Path(__file__).with_name("odd-preference.yaml")), "threshold": LOOSE},
]


@pytest.fixture(scope="module")
def sharded_run(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> LaunchedRun:
    workdir = tmp_path_factory.mktemp("fsdp")
    policy = write_guard_policy(workdir / "policy.yaml", SUITES)
    plans = [RankPlan(policy, []), RankPlan(policy, [])]
    return launch_ranks(workdir, tiny_checkpoint, plans, worker=Path(__file__).with_name("fsdp_worker.py"))


def test_the_model_is_really_sharded(sharded_run):
    assert [r["sharded"] for r in sharded_run.results] == [True, True]


def test_every_rank_runs_the_same_probe_forwards(sharded_run):
    forwards = [r["probe_forwards"] for r in sharded_run.results]
    assert forwards[0] == forwards[1] > 0


def test_scores_on_the_sharded_model_equal_a_single_process_run(sharded_run, tiny_checkpoint):
    first, second = (r["scores"] for r in sharded_run.results)
    assert first == second
    guard = DistillGuard.from_policy(sharded_run.output_dir.parent / "policy.yaml")
    model, tokenizer = tiny_lm.load(tiny_checkpoint)
    for probe in guard.probes:
        alone = probe.run(model, tokenizer, max_tokens_per_batch=guard.policy.probes.max_tokens_per_batch)
        assert first[probe.label] == pytest.approx(list(alone.item_scores), abs=1e-5), probe.label


def test_the_rank_that_trips_alone_can_digest_the_sharded_model(sharded_run):
    assert sharded_run.results[1]["weights_digest"].startswith("sha256:")
