"""Every question about ranks and every collective lives here, so the rest reads single-process.

"Main" means global rank 0, the process Trainer calls `is_world_process_zero`; it alone writes
files and serves metrics. Under Trainer (which sets up accelerate's state before any callback
runs) objects are exchanged through accelerate's `gather_object`, which picks the collective
each accelerator needs from that state; accelerate's view of the ranks is first checked against
the process group, and if they disagree every rank raises the same error rather than some ranks
deciding alone. A process group accelerate never saw (a plain `init_process_group` script)
uses torch's object collective, which takes its device from the backend. Nothing here guesses a
device. accelerate's trigger (`Accelerator.set_trigger`) carries one bit; a halt carries its
record, so one gather of the records is the trigger and the message at once.
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
    if _accelerate_runs(group):
        from accelerate.utils import gather_object

        return gather_object([local])  # accelerate concatenates the ranks' lists
    gathered: list[T] = [local] * group.get_world_size()
    group.all_gather_object(gathered, local)
    return gathered


def _accelerate_runs(group: ModuleType) -> bool:
    """Whether accelerate's state (set up by Trainer) drives this process group; raises when it sees other ranks."""
    from accelerate.state import PartialState, is_initialized

    if not is_initialized():
        return False
    state = PartialState()
    if (state.num_processes, state.process_index) != (group.get_world_size(), group.get_rank()):
        raise DistillGuardError(
            f"accelerate sees this process as rank {state.process_index} of {state.num_processes}, "
            f"torch.distributed as rank {group.get_rank()} of {group.get_world_size()}: the guard cannot make "
            "one decision for all ranks (launch with torchrun or accelerate launch)"
        )
    return True


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
