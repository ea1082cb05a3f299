"""Two CPU processes (gloo), one decision: a breach, a probe crash or a provenance denial seen on one rank only
stops both ranks together, never hangs, and only rank 0 exports metrics.

Each rank trains integrations/examples/trainer.py with its own policy file, so a threshold can be tight on one
rank and loose on the other: the only way both stop at the same step is the guard's collective decision.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from distill_guard.drift.halt_record import HALT_RECORD_NAME
from distill_guard.policy.load import load_policy
from distill_guard.probes.prepared import prepare_probes
from distill_guard.scenarios import tiny_lm
from tests.support.controlled import TIGHT, controlled
from tests.support.policies import write_guard_policy
from tests.trainers.conftest import events, read_metrics

from .launch import LaunchedRun, RankPlan, launch_ranks

pytestmark = pytest.mark.distributed

FLAT = [0.10, 0.12, 0.11, 0.09]
RISEN = [0.40, 0.45, 0.42, 0.41]
LOOSE = {"max_increase": 0.9}
SHARDED_SUITE = {"use": "builtin:animal-preference", "target": "owl", "threshold": {"max_increase": 0.99}}


def rank_policy(path: Path, *, threshold: dict[str, Any], unknown: str = "warn", sharded: bool = False) -> Path:
    """One rank's policy: the controlled probe, optionally a real sharded probe, textfile metrics beside it."""
    suites = [controlled(threshold), SHARDED_SUITE] if sharded else [controlled(threshold)]
    return write_guard_policy(path, suites, unknown=unknown, metrics_file=path.with_suffix(".prom"))


def assert_same_halt_on_both(run: LaunchedRun, step: int) -> None:
    first, second = run.results
    assert first["outcome"] == second["outcome"] == "TrainingHalted", run.log[-3000:]
    assert first["global_step"] == second["global_step"] == step
    assert first["halt_record"] == second["halt_record"]
    assert first["halt_record"]["step"] == step


@pytest.fixture(scope="module")
def breach_on_rank_1(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> LaunchedRun:
    """Both ranks see the same rise at step 4; only rank 1's policy calls it a breach."""
    workdir = tmp_path_factory.mktemp("breach")
    scores = [FLAT, FLAT, RISEN]
    plans = [
        RankPlan(rank_policy(workdir / "rank0.yaml", threshold=LOOSE, sharded=True), scores),
        RankPlan(rank_policy(workdir / "rank1.yaml", threshold=TIGHT, sharded=True), scores),
    ]
    return launch_ranks(workdir, tiny_checkpoint, plans, max_steps=10)


def test_breach_seen_on_one_rank_halts_both_at_the_same_step(breach_on_rank_1):
    assert [r["world_size"] for r in breach_on_rank_1.results] == [2, 2]
    assert_same_halt_on_both(breach_on_rank_1, step=4)
    assert breach_on_rank_1.results[0]["halt_record"]["policy"] == "rank1"


def test_only_the_main_process_logs_the_guards_numbers_to_the_trainer(breach_on_rank_1):
    """One log line per moment for the trackers, from rank 0, carrying the halt rank 1 decided."""
    main, other = (r["guard_logs"] for r in breach_on_rank_1.results)
    assert other == []
    assert [e["step"] for e in main if "distill_guard/controlled/score" in e] == [0, 2, 4]
    assert main[-1]["distill_guard/halted"] == 1.0


def assert_rank_0_alone_writes_and_exports(run: LaunchedRun, step: int) -> None:
    """The halt record, one train_begin in the audit log, probes at steps 2..`step`, and rank 0's metrics only."""
    assert (run.output_dir / HALT_RECORD_NAME).is_file()
    assert [e["world_size"] for e in events(run.output_dir, "train_begin")] == [2]
    assert [e["step"] for e in events(run.output_dir, "probes")] == list(range(2, step + 1, 2))
    workdir = run.output_dir.parent
    assert not (workdir / "rank1.prom").exists()
    metrics = read_metrics(workdir / "rank0.prom")
    assert metrics["distill_guard_halted{}"] == 1 and metrics["distill_guard_training_step{}"] == step


def assert_every_rank_runs_every_probe_forward(run: LaunchedRun) -> None:
    forwards = [r["probe_forwards"] for r in run.results]
    assert forwards[0] == forwards[1] > 0


def test_rank_0_alone_writes_the_halt_record_and_the_audit_log_and_exports(breach_on_rank_1):
    assert_rank_0_alone_writes_and_exports(breach_on_rank_1, step=4)


def test_probe_items_are_split_so_every_rank_runs_every_forward(breach_on_rank_1):
    assert_every_rank_runs_every_probe_forward(breach_on_rank_1)


def probe_scores_equal_a_single_process(run: LaunchedRun, checkpoint: Path) -> None:
    """The baseline the ranks gathered (on the saved weights, before any step) equals one process probing them."""
    policy = load_policy(run.output_dir.parent / "rank0.yaml")
    sharded = next(p for p in prepare_probes(policy) if p.kind == "preference")
    model, tokenizer = tiny_lm.load(checkpoint)
    single = sharded.run(model, tokenizer, max_tokens_per_batch=policy.policy.probes.max_tokens_per_batch)
    gathered = next(e["result"] for e in events(run.output_dir, "baseline") if e["probe"] == sharded.label)
    assert gathered["item_ids"] == list(single.item_ids)
    assert gathered["item_scores"] == pytest.approx(list(single.item_scores), abs=1e-5)


def test_gathered_scores_equal_a_single_process_run(breach_on_rank_1, tiny_checkpoint):
    probe_scores_equal_a_single_process(breach_on_rank_1, tiny_checkpoint)


def test_probe_crash_on_one_rank_stops_both_without_a_hang(tiny_checkpoint, tmp_path):
    policy = rank_policy(tmp_path / "policy.yaml", threshold=TIGHT)
    plans = [RankPlan(policy, [FLAT]), RankPlan(policy, [FLAT, "raise"])]
    run = launch_ranks(tmp_path, tiny_checkpoint, plans, max_steps=6)
    assert_same_halt_on_both(run, step=2)
    assert "rank 1: RuntimeError: controlled probe failure" in run.results[0]["halt_record"]["reasons"][0]


def test_provenance_denied_on_one_rank_refuses_on_both(tiny_checkpoint, tmp_path):
    plans = [
        RankPlan(rank_policy(tmp_path / "rank0.yaml", threshold=TIGHT), [FLAT]),
        RankPlan(rank_policy(tmp_path / "rank1.yaml", threshold=TIGHT, unknown="deny"), [FLAT]),
    ]
    run = launch_ranks(tmp_path, tiny_checkpoint, plans, max_steps=6, launcher="accelerate")
    assert [r["world_size"] for r in run.results] == [2, 2]
    assert [r["outcome"] for r in run.results] == ["ProvenanceDenied", "ProvenanceDenied"], run.log[-3000:]
    assert [r["global_step"] for r in run.results] == [0, 0]
    assert "another rank" in run.results[0]["message"] and "never cleared" in run.results[1]["message"]
