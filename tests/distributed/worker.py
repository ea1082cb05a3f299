"""One rank of a two-process guarded run, started by torchrun or accelerate launch (see launch.py).

Every rank reads the scenario file, takes its own policy and planned controlled-probe scores (handed to
the registered `controlled` kind, tests/support/controlled.py), trains the
integrations/examples/trainer.py run (on gloo unless the scenario's `training_args` say otherwise),
and writes what happened to RESULTS/rank-N.json.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch.distributed as torch_dist
from torch import nn

from distill_guard import DistillGuardError, TrainingHalted, dist
from distill_guard.model_identity import weights_digest
from tests.support.controlled import PLAN
from tests.trainers.conftest import build_example


def count_probe_forwards(model: nn.Module) -> list[int]:
    """Forward passes made in eval mode: during training those are the guard's probes."""
    calls = [0]

    def count(module: nn.Module, _args: Any) -> None:
        if not module.training:
            calls[0] += 1

    model.register_forward_pre_hook(count)
    return calls


def outcome_of(error: BaseException | None) -> dict[str, Any]:
    if error is None:
        return {"outcome": "completed"}
    record = error.record.to_json() if isinstance(error, TrainingHalted) else None
    return {"outcome": type(error).__name__, "message": str(error)[:2000], "halt_record": record}


def join_deepspeed() -> None:
    """On CPU, accelerate sets up gloo itself (`use_cpu=True`) but not DeepSpeed's communicator, which
    ZeRO-3's `zero.Init` (run inside `from_pretrained`) sizes the world with: join it to that group."""
    import deepspeed

    deepspeed.init_distributed(dist_backend="gloo")


def main(scenario_file: Path) -> None:
    scenario = json.loads(scenario_file.read_text("utf-8"))
    rank = int(os.environ["RANK"])
    mine = scenario["ranks"][rank]
    PLAN.plan(mine["scores"])
    if "deepspeed" in scenario.get("training_args", {}):
        join_deepspeed()
    trainer = build_example(
        "trainer",
        Path(scenario["checkpoint"]),
        Path(mine["policy"]),
        Path(scenario["output_dir"]),
        teacher=Path(scenario["checkpoint"]),
        **{"max_steps": scenario["max_steps"], "ddp_backend": "gloo", **scenario.get("training_args", {})},
    )
    forwards = count_probe_forwards(trainer.model)
    error: BaseException | None = None
    try:
        trainer.train()
    except DistillGuardError as exc:
        error = exc
    result = {
        "rank": rank,
        "world_size": dist.world_size(),
        "global_step": trainer.state.global_step,
        "probe_forwards": forwards[0],
        "deepspeed": trainer.is_deepspeed_enabled,
        "zero3_partitioned": any(hasattr(p, "ds_tensor") for p in trainer.model.parameters()),
        "weights_digest": weights_digest(trainer.model),
        "guard_logs": [e for e in trainer.state.log_history if any(k.startswith("distill_guard/") for k in e)],
        **outcome_of(error),
    }
    results = Path(scenario["results"])
    results.mkdir(parents=True, exist_ok=True)
    (results / f"rank-{rank}.json").write_text(json.dumps(result), "utf-8")
    if dist.is_distributed():  # leave together, and close gloo before the interpreter tears its threads down
        # Drop the trainer first (its model, its DeepSpeed engine hold the process group), so gloo's worker
        # threads are joined here and not during interpreter teardown, where a ZeRO-3 rank was seen to abort
        # with "terminate called without an active exception" (as fsdp_worker.py found for FSDP).
        del trainer, forwards
        gc.collect()
        torch_dist.barrier()
        torch_dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
