"""dist.gather_objects under a real (one-rank, gloo) process group: accelerate's helper when Trainer set up
accelerate's state, torch's collective when accelerate never saw the group, an error when the two disagree.

The two-rank behaviour (one decision, halts on every rank) is in test_two_ranks.py; these run in-process.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import accelerate.utils
import pytest
import torch.distributed as torch_dist
from accelerate import Accelerator
from accelerate.state import AcceleratorState, PartialState

from distill_guard import dist
from distill_guard.errors import DistillGuardError


@pytest.fixture
def one_rank_group(tmp_path: Path) -> Iterator[None]:
    torch_dist.init_process_group("gloo", init_method=f"file://{tmp_path}/rendezvous", rank=0, world_size=1)
    try:
        yield
    finally:
        torch_dist.destroy_process_group()


@pytest.fixture
def fresh_accelerate_state() -> Iterator[None]:
    """No accelerate state for the test; whatever earlier tests of this process set up comes back after."""
    saved = [(shared, dict(shared)) for shared in (AcceleratorState._shared_state, PartialState._shared_state)]
    for shared, _ in saved:
        shared.clear()
    try:
        yield
    finally:
        for shared, content in saved:
            shared.clear()
            shared.update(content)


@pytest.fixture
def accelerate_calls(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    calls: list[object] = []
    real = accelerate.utils.gather_object

    def spy(value: object) -> object:
        calls.append(value)
        return real(value)

    monkeypatch.setattr(accelerate.utils, "gather_object", spy)
    return calls


def test_under_an_accelerate_state_the_gather_goes_through_accelerate(
    one_rank_group, fresh_accelerate_state, accelerate_calls
):
    Accelerator(cpu=True)  # what Trainer does before any callback runs
    assert dist.gather_objects({"halted": True}) == [{"halted": True}]
    assert accelerate_calls == [[{"halted": True}]]


def test_a_group_accelerate_never_saw_uses_torchs_collective(one_rank_group, fresh_accelerate_state, accelerate_calls):
    assert dist.gather_objects("record") == ["record"]
    assert accelerate_calls == []


def test_accelerate_seeing_other_ranks_than_the_group_is_an_error_not_a_lone_decision(
    one_rank_group, fresh_accelerate_state, monkeypatch
):
    Accelerator(cpu=True)
    monkeypatch.setitem(PartialState._shared_state, "num_processes", 2)
    with pytest.raises(DistillGuardError, match=r"rank 0 of 2, torch.distributed as rank 0 of 1"):
        dist.gather_objects("record")
