"""Ray Train: a `TorchTrainer` with two CPU workers runs the guarded HF Trainer the standard way
(`RayTrainReportCallback`, `prepare_trainer`); one worker's breach halts both, and the driver sees
`TrainingHalted` with its halt record.

Each worker trains integrations/examples/trainer.py with its own policy (tight on one, loose on the
other), so both stopping at the same step can only come from the guard's collective decision.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from ray.train import RunConfig, ScalingConfig
from ray.train.huggingface.transformers import RayTrainReportCallback, prepare_trainer
from ray.train.torch import TorchTrainer

from distill_guard import DistillGuardError, TrainingHalted
from distill_guard.drift.halt_record import HALT_RECORD_NAME
from tests.conftest import REPO
from tests.support.controlled import PLAN, TIGHT
from tests.trainers.conftest import build_example, events, read_metrics

from .test_two_ranks import FLAT, LOOSE, RISEN, rank_policy
from .worker import count_probe_forwards, outcome_of

pytestmark = [pytest.mark.distributed, pytest.mark.slow, pytest.mark.timeout(400)]


def guarded_training(config: dict[str, Any]) -> None:
    """One Ray Train worker: the user's training function, with the guard inside `build_trainer`."""
    rank = ray.train.get_context().get_world_rank()
    PLAN.plan(config["scores"])
    checkpoint = Path(config["checkpoint"])
    trainer = build_example(
        "trainer", checkpoint, Path(config["policies"][rank]), Path(config["out"]), teacher=checkpoint, max_steps=10
    )
    trainer.add_callback(RayTrainReportCallback())
    trainer = prepare_trainer(trainer)
    forwards = count_probe_forwards(trainer.model)
    error: DistillGuardError | None = None
    try:
        trainer.train()
    except DistillGuardError as exc:
        error = exc
        raise
    finally:
        result = {"rank": rank, "global_step": trainer.state.global_step, "probe_forwards": forwards[0]}
        Path(config["results"], f"rank-{rank}.json").write_text(json.dumps({**result, **outcome_of(error)}), "utf-8")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    env_vars = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=80 * 1024 * 1024,
        _node_ip_address="127.0.0.1",
        runtime_env={"env_vars": env_vars},
        log_to_driver=False,
    )
    yield
    ray.shutdown()


def run_on_ray(workdir: Path, checkpoint: Path, policies: list[Path], scores: list[Any]) -> Any:
    results = workdir / "results"
    results.mkdir()
    config = {
        "scores": scores,
        "checkpoint": str(checkpoint),
        "policies": [str(p) for p in policies],
        "out": str(workdir / "out"),
        "results": str(results),
    }
    trainer = TorchTrainer(
        guarded_training,
        train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=2, use_gpu=False, resources_per_worker={"CPU": 1}),
        run_config=RunConfig(name=workdir.name, storage_path=str(workdir / "ray")),
    )
    return trainer.fit()


def rank_results(workdir: Path) -> list[dict[str, Any]]:
    return [json.loads((workdir / "results" / f"rank-{r}.json").read_text("utf-8")) for r in range(2)]


def worker_errors(error: BaseException) -> list[BaseException]:
    """The workers' exceptions inside Ray Train's failure (its `worker_failures`, else the cause chain)."""
    failures = getattr(error, "worker_failures", None)
    if failures:
        return [failures[r] for r in sorted(failures)]
    chain: list[BaseException] = []
    while error.__cause__ is not None:
        error = error.__cause__
        chain.append(error)
    return chain


def test_a_breach_on_one_worker_halts_both_and_the_driver_sees_the_record(local_ray, tiny_checkpoint, tmp_path):
    policies = [
        rank_policy(tmp_path / "rank0.yaml", threshold=LOOSE, sharded=True),
        rank_policy(tmp_path / "rank1.yaml", threshold=TIGHT, sharded=True),
    ]
    with pytest.raises(Exception) as failure:
        run_on_ray(tmp_path, tiny_checkpoint, policies, [FLAT, FLAT, RISEN])
    halted = [e for e in worker_errors(failure.value) if isinstance(e, TrainingHalted)]
    assert halted, f"no TrainingHalted in the driver's error: {failure.value!r}"
    assert halted[0].record.step == 4 and halted[0].record.policy == "rank1"
    first, second = rank_results(tmp_path)
    assert first["outcome"] == second["outcome"] == "TrainingHalted"
    assert first["global_step"] == second["global_step"] == 4
    assert first["halt_record"] == second["halt_record"] == halted[0].record.to_json()
    assert first["probe_forwards"] == second["probe_forwards"] > 0
    out = tmp_path / "out"
    assert (out / HALT_RECORD_NAME).is_file()
    assert [e["world_size"] for e in events(out, "train_begin")] == [2]  # the audit log lands once, from rank 0
    assert [e["step"] for e in events(out, "probes")] == [2, 4]
    assert not (tmp_path / "rank1.prom").exists()
    assert read_metrics(tmp_path / "rank0.prom")["distill_guard_halted{}"] == 1


def test_a_clean_run_finishes_on_both_workers(local_ray, tiny_checkpoint, tmp_path):
    policy = rank_policy(tmp_path / "policy.yaml", threshold=LOOSE)
    result = run_on_ray(tmp_path, tiny_checkpoint, [policy, policy], [FLAT])
    assert result.error is None
    assert [(r["outcome"], r["global_step"]) for r in rank_results(tmp_path)] == [("completed", 10)] * 2
    assert [e["step"] for e in events(tmp_path / "out", "probes")] == [2, 4, 6, 8, 10]
    assert not (tmp_path / "out" / HALT_RECORD_NAME).exists()
