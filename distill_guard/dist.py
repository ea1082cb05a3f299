"""Every question about ranks and every collective lives here, so the rest reads single-process."""

from __future__ import annotations

import torch
import torch.distributed as torch_dist


def is_distributed() -> bool:
    return torch_dist.is_available() and torch_dist.is_initialized()


def world_size() -> int:
    return torch_dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return torch_dist.get_rank() if is_distributed() else 0


def is_main_process() -> bool:
    return rank() == 0


def _device_for_collectives() -> torch.device:
    if is_distributed() and torch_dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def any_rank(flag: bool) -> bool:
    """True on every rank when `flag` is true on at least one: one decision for all ranks."""
    if not is_distributed():
        return flag
    tensor = torch.tensor([1 if flag else 0], dtype=torch.int32, device=_device_for_collectives())
    torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.MAX)
    return bool(tensor.item())


def gather_objects(local: object) -> list[object]:
    """Every rank's `local`, in rank order, on every rank (a list of one when not distributed)."""
    if not is_distributed():
        return [local]
    gathered: list[object] = [None] * world_size()
    torch_dist.all_gather_object(gathered, local)
    return gathered


def shard_bounds(n_items: int) -> tuple[int, int, int]:
    """(start, stop, padded_per_rank) of this rank's contiguous share of `n_items`.

    Every rank gets `padded_per_rank` slots (the last ranks may have fewer real items), so a
    caller can run the same number of forward passes on every rank, as ZeRO-3 and FSDP require.
    """
    size = world_size()
    per_rank = -(-n_items // size)
    start = min(rank() * per_rank, n_items)
    return start, min(start + per_rank, n_items), per_rank


def fsdp1_reason(args: object, model: torch.nn.Module) -> str | None:
    """Why this run uses FSDP1 (which the guard cannot probe), or None.

    Trainer hands callbacks the unwrapped module; under FSDP1 its weights are flat shards, so no
    probe forward can run on it. FSDP2 (`fully_shard`, transformers' default) keeps modules whole.
    """
    fsdp = getattr(args, "fsdp", None)
    config = getattr(args, "fsdp_config", None) or {}
    if fsdp and int(config.get("version", 2)) == 1:
        return "TrainingArguments.fsdp_config['version'] is 1"
    from torch.distributed.fsdp import FullyShardedDataParallel

    if any(isinstance(module, FullyShardedDataParallel) for module in model.modules()):
        return "the model holds FSDP1 FullyShardedDataParallel modules"
    return None
