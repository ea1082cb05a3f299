"""DistillGuard: the one callback users add to a Trainer. It wires events to the modules; it does not compute."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from distill_guard import dist
from distill_guard.export.audit import AuditLog
from distill_guard.policy.load import LoadedPolicy, load_policy


class DistillGuard(TrainerCallback):
    """Guards one training run according to a policy file.

    Example:
        guard = DistillGuard.from_policy("policies/strict.yaml")
        trainer = Trainer(model=model, args=args, train_dataset=ds, callbacks=[guard])
        trainer.train()
    """

    def __init__(self, loaded: LoadedPolicy, *, output_dir: str | Path | None = None) -> None:
        self.loaded = loaded
        self.policy = loaded.policy
        self._output_dir = Path(output_dir) if output_dir is not None else None
        self._audit: AuditLog | None = None

    @classmethod
    def from_policy(cls, path: str | Path, *, output_dir: str | Path | None = None) -> DistillGuard:
        """Load and validate the policy now, so a bad policy fails before any model is touched."""
        return cls(load_policy(path), output_dir=output_dir)

    # -- plumbing -------------------------------------------------------------------------------

    def _audit_log(self, args: TrainingArguments) -> AuditLog:
        if self._audit is None:
            base = self._output_dir or Path(args.output_dir or ".")
            configured = Path(self.policy.metrics.audit_log)
            self._audit = AuditLog(configured if configured.is_absolute() else base / configured)
        return self._audit

    def _record(self, args: TrainingArguments, state: TrainerState, event: str, **fields: Any) -> None:
        if state.is_world_process_zero:
            self._audit_log(args).record(
                event, policy=self.policy.metadata.name, step=state.global_step, world_size=dist.world_size(), **fields
            )

    # -- events ---------------------------------------------------------------------------------

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._record(args, state, "train_begin", max_steps=state.max_steps, policy_file=str(self.loaded.path))

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if state.global_step % self.policy.probes.every_n_steps == 0:
            self._record(args, state, "step")

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._record(args, state, "train_end")
