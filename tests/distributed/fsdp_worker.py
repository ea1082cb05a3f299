"""One rank of a two-process FSDP2 (torch `fully_shard`) probe run on CPU/gloo, started by torchrun.

transformers' Trainer runs FSDP only on accelerators, so this worker shards the tiny model itself, the
way FSDP2 leaves the module the Trainer hands to callbacks (sharded in place), and runs the guard's
probes on it. Each rank writes its scores, its number of probe forwards and (rank 1 alone) the model
weights digest a halt record carries to RESULTS/rank-N.json.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from pathlib import Path

import torch.distributed as torch_dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard

from distill_guard import DistillGuard
from distill_guard.model_identity import weights_digest
from distill_guard.scenarios import tiny_lm
from tests.distributed.worker import count_probe_forwards


def main(scenario_file: Path) -> None:
    scenario = json.loads(scenario_file.read_text("utf-8"))
    torch_dist.init_process_group("gloo")
    rank = int(os.environ["RANK"])
    model, tokenizer = tiny_lm.load(scenario["checkpoint"])
    mesh = init_device_mesh("cpu", (torch_dist.get_world_size(),))  # CPU even where a GPU is present
    for layer in model.model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    sharded = all(type(p).__name__ == "DTensor" for p in model.parameters())
    forwards = count_probe_forwards(model)
    guard = DistillGuard.from_policy(scenario["ranks"][rank]["policy"])
    budget = guard.policy.probes.max_tokens_per_batch
    scores = {p.label: list(p.run(model, tokenizer, max_tokens_per_batch=budget).item_scores) for p in guard.probes}
    result = {
        "rank": rank,
        "sharded": sharded,
        "scores": scores,
        "probe_forwards": forwards[0],
        # A halt record is made by the rank that tripped, alone: its weights digest must need no other rank.
        "weights_digest": weights_digest(model) if rank == 1 else None,
    }
    results = Path(scenario["results"])
    results.mkdir(parents=True, exist_ok=True)
    (results / f"rank-{rank}.json").write_text(json.dumps(result), "utf-8")
    # Drop every object that holds the process group (the sharded model, its mesh) before destroying the
    # group, so gloo's worker threads are joined now and not during interpreter teardown, where rank 0 was
    # seen to abort with "terminate called without an active exception" (about 1 CI run in 4).
    del model, mesh, guard, forwards
    gc.collect()
    torch_dist.barrier()
    torch_dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
