"""The ways a trained model leaves a run, and which of them stay open once the guard has halted it.

A halted model can leave through a checkpoint (and the Hub or tracker uploads that follow a save),
a Hub push, or a tracker's end-of-training model upload. transformers runs the reporting callbacks
(W&B, MLflow, ...) before user callbacks in every event, so the guard cannot rely on acting first in
`on_save` or `on_train_end`. What it can rely on: its `on_step_end`, `on_epoch_end` and
`on_evaluate` run before the Trainer saves, and every save and push starts from a control flag or
an `on_push_begin` the guard sees. So after a halt the guard vetoes the save (unless the policy
allows one, which is then quarantined before it is written), refuses every push, and raises
`TrainingHalted` before the Trainer reaches `on_train_end`.
"""

from __future__ import annotations

from pathlib import Path

from transformers import TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from distill_guard.atomic_files import write_json_atomically
from distill_guard.drift.halt_record import HaltRecord, quarantine_marker
from distill_guard.policy.schema import HaltPolicy
from distill_guard.quarantine import QUARANTINE_MARKER_NAME


def checkpoint_folder(args: TrainingArguments, state: TrainerState) -> Path:
    """The folder the Trainer saves this step's checkpoint into (`output_dir/checkpoint-STEP`)."""
    return Path(args.output_dir or ".") / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"


def is_last_step(state: TrainerState, control: TrainerControl) -> bool:
    """True when training ends after this step: max_steps reached, or a stop already requested."""
    return state.global_step >= state.max_steps or control.should_training_stop


def quarantine(folder: Path, record: HaltRecord) -> Path:
    """Mark `folder` as holding a halted model; the marker is the halt record plus `quarantined`."""
    marker = folder / QUARANTINE_MARKER_NAME
    write_json_atomically(marker, quarantine_marker(record))
    return marker


def close_after_halt(
    args: TrainingArguments,
    state: TrainerState,
    control: TrainerControl,
    halt: HaltPolicy,
    record: HaltRecord,
    *,
    is_main: bool,
) -> list[Path]:
    """Decide this step's save after a halt; returns the checkpoint folders quarantined now.

    Without `halt.save_halted_checkpoint` the save is vetoed (`control.should_save` is cleared).
    With it, the folder is created with its quarantine marker *before* the Trainer writes the
    weights, so every upload hook that follows (a Hub push from the checkpoint, W&B or MLflow
    artifact logging in their `on_save`) sees a quarantined folder. A checkpoint of this step
    that was saved before the halt was seen is quarantined too. Called on every rank; only the
    main process writes.
    """
    folder = checkpoint_folder(args, state)
    save_follows = control.should_save and halt.save_halted_checkpoint
    if not save_follows:
        control.should_save = False
    unmarked = not (folder / QUARANTINE_MARKER_NAME).is_file()
    if not (is_main and halt.quarantine_checkpoints and unmarked and (save_follows or folder.is_dir())):
        return []
    quarantine(folder, record)
    return [folder]
