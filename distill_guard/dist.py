"""Every question about ranks and every collective lives here, so the rest reads single-process.

"Main" means global rank 0, the process Trainer calls `is_world_process_zero`; it alone writes
files and serves metrics. Collectives exchange Python objects through `torch.distributed`'s
object collectives, which place their buffers on the device the backend needs (CUDA under NCCL,
CPU under gloo) themselves. accelerate's `gather_object` does the same through an initialised
`PartialState`; the guard also runs under plain torchrun scripts that never create one, so it uses
torch's directly and never guesses a device.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, TypeVar

from distill_guard.errors import DistillGuardError

if TYPE_CHECKING:
    import torch

T = TypeVar("T")
DEBUG_COLLECTIVES_ENV = "DISTILL_GUARD_DEBUG_COLLECTIVES"


def _process_group() -> ModuleType | None:
    """`torch.distributed` when this process belongs to a process group, else None. A process that
    never imported torch cannot belong to one, so the light commands (`check`, `clear_dataset`
    before training) answer without loading torch."""
    if "torch" not in sys.modules:
        return None
    import torch.distributed as torch_dist

    return torch_dist if torch_dist.is_available() and torch_dist.is_initialized() else None


def is_distributed() -> bool:
    return _process_group() is not None


def world_size() -> int:
    group = _process_group()
    return group.get_world_size() if group is not None else 1


def rank() -> int:
    group = _process_group()
    return group.get_rank() if group is not None else 0


def is_main_process() -> bool:
    """The one notion of "main": global rank 0 (the only process when not distributed)."""
    return rank() == 0


def launch_rank() -> int:
    """The global rank, also before torch.distributed is initialised (code run before the Trainer):
    then the launcher's RANK variable (torchrun, accelerate launch) says which process it will be."""
    if is_distributed():
        return rank()
    value = os.environ.get("RANK", "0")
    return int(value) if value.isdigit() else 0


def is_main_launch_rank() -> bool:
    return launch_rank() == 0


def gather_objects(local: T) -> list[T]:
    """Every rank's `local`, in rank order, on every rank (a list of one when not distributed)."""
    group = _process_group()
    if group is None:
        return [local]
    gathered: list[T] = [local] * group.get_world_size()
    group.all_gather_object(gathered, local)
    return gathered


def first_reported(local: T | None) -> tuple[int, T] | None:
    """(rank, value) of the lowest rank whose `local` is not None, the same on every rank, or None.

    One decision for all ranks: the first rank with something to report speaks for everyone.
    """
    for source, value in enumerate(gather_objects(local)):
        if value is not None:
            return source, value
    return None


def shard_bounds(n_items: int) -> tuple[int, int, int]:
    """(start, stop, padded_per_rank) of this rank's contiguous share of `n_items`.

    Every rank gets `padded_per_rank` slots (the last ranks may have fewer real items), so a
    caller can run the same number of forward passes on every rank, as ZeRO-3 and FSDP require.
    """
    size = world_size()
    per_rank = -(-n_items // size)
    start = min(rank() * per_rank, n_items)
    return start, min(start + per_rank, n_items), per_rank


def debug_collectives() -> bool:
    """`DISTILL_GUARD_DEBUG_COLLECTIVES=1`: check that every rank ran the same number of probe forwards."""
    return os.environ.get(DEBUG_COLLECTIVES_ENV, "").strip().lower() in {"1", "true", "yes"}


def require_equal_counts(what: str, counts: Sequence[int]) -> None:
    """Raise, naming each rank's count, when the ranks' counts (in rank order) differ.

    Under FSDP or ZeRO-3 every forward is a collective, so unequal forward counts hang the run;
    under DDP or on one device they do not, which is where this check turns that hang into an error.
    """
    if len(set(counts)) > 1:
        per_rank = ", ".join(f"rank {r}: {n}" for r, n in enumerate(counts))
        raise DistillGuardError(
            f"{what}: ranks ran different numbers of forward passes ({per_rank}); "
            "under FSDP or ZeRO-3 this run would hang"
        )


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
