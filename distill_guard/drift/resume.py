"""Halts stay halted: find the halt a resumed checkpoint carries, whatever the Trainer restores.

Trainer only hands saved callback states back under `restore_callback_states_from_checkpoint=True`;
without it a fresh guard would re-baseline on the drifted model and train on. So at train begin the
guard reads the evidence itself: the halt record saved in `trainer_state.json` (the guard's own
`saved_guard_state`, which Trainer loads into `state.stateful_callbacks` either way) and the
quarantine marker of the checkpoint being resumed.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from distill_guard.drift.halt_record import HaltRecord, read_quarantine_marker


def _saved_halt_records(stateful_callbacks: Any, callback_name: str) -> Iterable[HaltRecord]:
    saved = stateful_callbacks.get(callback_name) if isinstance(stateful_callbacks, dict) else None
    for entry in saved if isinstance(saved, list) else [saved]:
        attributes = entry.get("attributes") if isinstance(entry, dict) else None
        guard_state = attributes.get("saved_guard_state") if isinstance(attributes, dict) else None
        record = guard_state.get("halt_record") if isinstance(guard_state, dict) else None
        if isinstance(record, dict):
            yield HaltRecord.from_json(record)


def resumed_halt(
    stateful_callbacks: Any, callback_name: str, global_step: int, checkpoints: Iterable[str | Path | None]
) -> HaltRecord | None:
    """The `stop` halt of the run being resumed: from trainer_state.json, else a checkpoint's marker."""
    for record in _saved_halt_records(stateful_callbacks, callback_name):
        if record.action == "stop":
            return record
    if global_step <= 0:
        return None
    for folder in checkpoints:
        if folder is not None and Path(folder).is_dir():
            record = read_quarantine_marker(folder)
            if record is not None:
                return record
    return None
