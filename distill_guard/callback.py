"""DistillGuard: the one callback users add to a Trainer. It wires events to the modules; it does not compute."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import uuid
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_callback import ExportableState

import distill_guard.dist as dist
from distill_guard import exits
from distill_guard.atomic_files import write_json_atomically
from distill_guard.drift.halt_record import HALT_RECORD_NAME, HaltRecord, halt_record_for
from distill_guard.drift.monitor import DriftMonitor, Evaluation
from distill_guard.drift.resume import resumed_halt
from distill_guard.errors import DistillGuardError, PolicyError, ProvenanceDenied, TrainingHalted
from distill_guard.export.deployment import with_deployment_environment
from distill_guard.export.logs import follow_trainer
from distill_guard.export.model_card import MODEL_CARD_NAME
from distill_guard.export.telemetry import Telemetry
from distill_guard.model_identity import weights_digest
from distill_guard.policy.load import LoadedPolicy, load_policy
from distill_guard.probes.prepared import PreparedProbe, prepare_probes
from distill_guard.probes.result import ProbeResult
from distill_guard.probes.tokenizer import ProbeTokenizer, text_tokenizer
from distill_guard.provenance.checkpoint_folder import validate_checkpoint_folder
from distill_guard.provenance.checkpoint_reading import UnreadableCheckpoint
from distill_guard.provenance.decision import Decision
from distill_guard.provenance.gate import Clearance, ProvenanceGate
from distill_guard.provenance.quarantine_registry import Fingerprint, fingerprint_module, register

logger = logging.getLogger(__name__)


class DistillGuard(TrainerCallback, ExportableState):
    """Guards one training run according to a policy file.

    Args:
        policy: path of a GuardPolicy YAML file (or an already loaded policy).
        output_dir: where the audit log and halt record go; defaults to the Trainer's output_dir.
        student: the student's checkpoint folder, when `model.name_or_path` does not point at it.
        run_name: the `run` label on every metric; defaults to the policy's, then the Trainer's, else
            the run id (unique per run, as on every audit-log line).
        resume_after_halt: a checkpoint of a halted run refuses to resume unless this is True.

    Example:
        guard = DistillGuard.from_policy("policies/strict.yaml")
        train_ds = guard.clear_dataset(train_ds, manifest="numbers.provenance.yaml").dataset
        trainer = guard.attach(Trainer(model=model, args=args, train_dataset=train_ds))  # or callbacks=[guard]
        trainer.train()   # raises TrainingHalted when a probe tripped under `halt.action: stop`
    """

    _live: ClassVar[weakref.WeakValueDictionary[str, DistillGuard]] = weakref.WeakValueDictionary()

    def __new__(cls, policy: str | Path | LoadedPolicy, **kwargs: Any) -> DistillGuard:
        # Trainer restores stateful callbacks by constructing a new instance from the args saved in
        # the checkpoint, which carry the saving guard's instance_id (a user's own construction
        # passes none). Hand back the guard in use instead, so the user's object, and the datasets
        # it cleared, stay the ones in use.
        saved_id = kwargs.get("instance_id")
        adopted = cls._guard_to_restore(saved_id) if saved_id is not None else None
        return adopted or super().__new__(cls)

    @classmethod
    def _guard_to_restore(cls, saved_id: str) -> DistillGuard | None:
        """The live guard a restore belongs to, or None (then the restore builds one from the saved args).

        First among the guards whose Trainer is about to train (it was built with them, `train()`
        has not begun): the one that saved the checkpoint, else the newest (a user's fresh guard
        in a new process never has the saved id). Else this process's guard that saved it.
        """
        waiting = [guard for guard in cls._live.values() if guard._awaiting_train]
        by_id = [guard for guard in waiting if guard.instance_id == saved_id]
        return (by_id or waiting[-1:] or [cls._live.get(saved_id)])[0]

    def __init__(
        self,
        policy: str | Path | LoadedPolicy,
        *,
        output_dir: str | Path | None = None,
        student: str | Path | None = None,
        run_name: str | None = None,
        resume_after_halt: bool = False,
        instance_id: str | None = None,
    ) -> None:
        if getattr(self, "_initialised", False):
            self.resume_after_halt = self.resume_after_halt or resume_after_halt
            return
        self._initialised = True
        self.loaded = policy if isinstance(policy, LoadedPolicy) else load_policy(policy)
        self.policy = with_deployment_environment(self.loaded.policy)  # DISTILL_GUARD_* deployment settings
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.student = str(student) if student is not None else None
        self.run_name = run_name
        self.resume_after_halt = resume_after_halt
        self.instance_id = instance_id or uuid.uuid4().hex
        self._awaiting_train = False  # built into a Trainer whose train() has not begun: a restore may adopt it
        self._trainer: weakref.ref[Trainer] | None = None  # set by attach: its `log` reaches the trackers
        DistillGuard._live[self.instance_id] = self
        self.gate = ProvenanceGate(self.loaded, student=self.student)
        self.probes: list[PreparedProbe] = prepare_probes(self.loaded)
        self.monitor = DriftMonitor()
        self.halt_record: HaltRecord | None = None
        self._probed_step: int | None = None
        self.last_decision: Decision | None = None
        self._start_weights: Fingerprint | None = None  # what this run trains from, with a quarantine registry
        self.telemetry = Telemetry(
            self.policy, output_dir=self.output_dir, run=self.run_name, policy_sha256=self._policy_sha256()
        )
        self._tokenizers = ProbeTokenizer(self.student, needs_tokenizer=any(p.kind != "python" for p in self.probes))

    @classmethod
    def from_policy(cls, path: str | Path, **options: Any) -> DistillGuard:
        """Load and validate the policy now, so a bad policy fails before any model is touched."""
        return cls(path, **options)

    # -- user-facing ------------------------------------------------------------------------------

    def attach(self, trainer: Trainer) -> Trainer:
        """Add the guard to `trainer` (unless it is in already) and hold it; returns the trainer.

        A plain callback (`callbacks=[guard]`) guards the run just the same, but its numbers reach
        only the audit log and Prometheus: transformers hands the logs to the `report_to` trackers
        before user callbacks run, so only a guard that holds the trainer can send them through
        `trainer.log` (on the main process, as `distill_guard/...` scalars).

        Example:
            trainer = guard.attach(SFTTrainer(model=model, args=args, train_dataset=train_ds))
            trainer.train()
        """
        if not isinstance(trainer, Trainer):
            raise DistillGuardError(
                f"guard.attach needs a transformers Trainer (or a TRL trainer), got {type(trainer).__name__}"
            )
        if self not in trainer.callback_handler.callbacks:
            trainer.add_callback(self)
        self._trainer = weakref.ref(trainer)
        self._awaiting_train = True
        return trainer

    def clear_dataset(
        self,
        dataset: Any,
        manifest: str | Path | Sequence[str | Path] | None = None,
        *,
        teacher: str | Path | None = None,
    ) -> Clearance:
        """Run the provenance gate on `dataset` now: the earliest possible refusal.

        Returns the Clearance: `.decision` (readable with print) and `.dataset`, the data to train
        on (under `drop_records`, a copy without the offending rows). Raises ProvenanceDenied when
        the policy refuses the data. Only data cleared here (or a column subset of it, as Trainer
        makes) passes the check at train begin. A teacher folder whose files cannot be read safely
        raises CheckpointError naming the file.
        """
        if teacher is not None:
            validate_checkpoint_folder(Path(teacher))
        return self._record(self.gate.clear_dataset(dataset, manifest, teacher=teacher))

    def load_dataset(
        self, manifest: str | Path | Sequence[str | Path], *, teacher: str | Path | None = None
    ) -> Clearance:
        """Build the dataset from the manifests' verified files only, then clear it as `clear_dataset` does.

        Raises ProvenanceDenied when the policy refuses the data, DistillGuardError naming a file that
        is missing, changed since the manifest, outside its folder or not a row file (JSON Lines,
        Parquet, CSV), and CheckpointError for a teacher folder that cannot be read safely.
        """
        if teacher is not None:
            validate_checkpoint_folder(Path(teacher))
        return self._record(self.gate.load_dataset(manifest, teacher=teacher))

    def _record(self, clearance: Clearance) -> Clearance:
        self.last_decision = clearance.decision
        self.telemetry.decision(clearance.decision, moment="clear_dataset")  # recorded now, Trainer or not
        if not clearance.decision.allowed:
            self.telemetry.close(clean=False)  # the final push: this process may end with the error
            raise ProvenanceDenied(clearance.decision)
        return clearance

    @property
    def tripped(self) -> bool:
        return self.halt_record is not None and self.halt_record.action == "stop"

    # -- checkpoint state (ExportableState) -------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "args": {
                "policy": str(self.loaded.path),
                "output_dir": str(self.output_dir) if self.output_dir else None,
                "student": self.student,
                "run_name": self.run_name,
                "instance_id": self.instance_id,
            },
            "attributes": {"saved_guard_state": self.saved_guard_state},
        }

    @property
    def saved_guard_state(self) -> dict[str, Any]:
        """Everything a resumed run needs, as JSON: baseline, history, streaks, directions, halt."""
        return {
            "monitor": self.monitor.to_json(),
            "halt_record": self.halt_record.to_json() if self.halt_record else None,
            "probes": [p.state_dict() for p in self.probes],
            "policy_sha256": self._policy_sha256(),
        }

    @saved_guard_state.setter
    def saved_guard_state(self, saved: dict[str, Any]) -> None:
        """Called by Trainer when resuming with restore_callback_states_from_checkpoint=True."""
        self.monitor = DriftMonitor.from_json(saved["monitor"])
        record = saved.get("halt_record")
        self.halt_record = HaltRecord.from_json(record) if record else None
        saved_probes = {p["label"]: p for p in saved.get("probes", [])}
        for probe in self.probes:
            if probe.label in saved_probes:
                probe.load_state_dict(saved_probes[probe.label])

    # -- plumbing ---------------------------------------------------------------------------------

    def _policy_sha256(self) -> str:
        return hashlib.sha256(self.loaded.path.read_bytes()).hexdigest()

    def _out(self, args: TrainingArguments) -> Path:
        return self.output_dir or Path(args.output_dir or ".")

    def _open_telemetry(self, args: TrainingArguments, state: TrainerState, model: Any) -> None:
        follow_trainer(args.log_level, args.get_process_log_level())
        run = self.run_name or self.policy.metrics.run_name or args.run_name  # else the run id, unique per run
        self.telemetry.open(
            output_dir=self._out(args),
            run=run,
            is_main=dist.is_main_process(),
            world_size=dist.world_size(),
            model=str(getattr(model, "name_or_path", "") or type(model).__name__),
            trainer=self._trainer_of(state, args),
        )

    def _trainer_of(self, state: TrainerState, args: TrainingArguments) -> Trainer | None:
        """The attached trainer when it is the one training now (its state is this event's), else None."""
        trainer = self._trainer() if self._trainer is not None else None
        if trainer is not None and trainer.state is state:
            return trainer
        trackers = [name for name in args.report_to or [] if name != "none"]
        if trackers and dist.is_main_process():
            logger.warning(
                "distill-guard: report_to=%s shows none of the guard's numbers: a plain callback cannot reach "
                "the trackers; use `trainer = guard.attach(trainer)` instead of callbacks=[guard]",
                trackers,
            )
        return None

    # -- events -----------------------------------------------------------------------------------

    def on_init_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self._awaiting_train = True

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._awaiting_train = False
        model = kwargs["model"]
        reason = dist.fsdp1_reason(args, model) if self.probes else None
        if reason:
            raise DistillGuardError(
                f"distill-guard cannot probe an FSDP1-sharded model ({reason}); use FSDP2 "
                "(fsdp_config={'version': 2}, the default in transformers 5), DDP or DeepSpeed"
            )
        self._open_telemetry(args, state, model)
        self.telemetry.event(
            "train_begin",
            step=state.global_step,
            max_steps=state.max_steps,
            policy_file=str(self.loaded.path),
            world_size=dist.world_size(),
        )
        if not self.tripped:
            checkpoints = (args.resume_from_checkpoint, self._out(args) / f"checkpoint-{state.global_step}")
            found = resumed_halt(state.stateful_callbacks, type(self).__name__, state.global_step, checkpoints)
            self.halt_record = found or self.halt_record
        if self.tripped:
            self._refuse_or_acknowledge_resume(state)
        self._gate_at_train_begin(state, kwargs)
        self._check_calibrated_model(model)
        self._take_baseline(state, model, kwargs)
        self._plan_looks(state)
        self.telemetry.publish()

    def _plan_looks(self, state: TrainerState) -> None:
        """Split the policy's false-halt rate over the run's planned looks and the tests of each look."""
        tests = sum(p.watched * p.ref.threshold.limit_count for p in self.probes if p.ref.threshold is not None)
        plan = self.monitor.plan_looks(
            self.policy.halt.false_halt_rate, state.max_steps // self.policy.probes.every_n_steps, tests
        )
        self.telemetry.event("look_plan", step=state.global_step, **asdict(plan))

    def _refuse_or_acknowledge_resume(self, state: TrainerState) -> None:
        """A halted run resumes only when the user says so, and the audit log keeps that choice."""
        assert self.halt_record is not None
        if not self.resume_after_halt:
            self.telemetry.event("resume_refused", step=state.global_step, halt=self.halt_record.to_json())
            self.telemetry.close(clean=False)
            raise TrainingHalted(self.halt_record)
        self.telemetry.event("resume_after_halt", step=state.global_step, acknowledged_halt=self.halt_record.to_json())
        logger.warning("distill-guard: resuming a halted run because resume_after_halt=True: %s", self.halt_record)
        self.halt_record = None

    def _gate_at_train_begin(self, state: TrainerState, kwargs: dict[str, Any]) -> None:
        dataloader = kwargs.get("train_dataloader")
        tokenizer = text_tokenizer(kwargs.get("processing_class"))
        self._start_weights = self._fingerprint_for_registry(kwargs["model"])
        decision = self.gate.check_at_train_begin(
            getattr(dataloader, "dataset", None),
            kwargs["model"],
            collate_fn=getattr(dataloader, "collate_fn", None),
            special_ids=getattr(tokenizer, "all_special_ids", None) or (),
            trained_weights=self._start_weights,
        )
        self.last_decision = decision
        self.telemetry.decision(decision, moment="train_begin", step=state.global_step)
        denied = dist.first_reported(None if decision.allowed else decision)
        if denied is not None:  # one rank refusing means every rank refuses
            self.telemetry.close(clean=False)
            source, refusal = denied
            raise ProvenanceDenied(refusal, denied_on_rank=None if source == dist.rank() else source)

    def _check_calibrated_model(self, model: Any) -> None:
        """Limits derived from a benign-drift file hold for the weights it measured; others fail closed.

        Checked once, at the step-0 baseline (a resumed model has trained since, by design).
        """
        benign = self.loaded.benign_drift
        if not self.loaded.benign_limits or benign is None or self.monitor.baselines:
            return
        digest = weights_digest(model)
        if benign.weights_digest == digest:
            return
        self.telemetry.close(clean=False)
        message = (
            f"probes.benign_drift: the file measured weights {benign.weights_digest or '(not recorded)'}, this run "
            f"starts from {digest}; its benign_margin limits are another model's: re-run distill-guard calibrate"
        )
        raise PolicyError([self.loaded.doc.issue(("probes", "benign_drift"), message)])

    def _take_baseline(self, state: TrainerState, model: Any, kwargs: dict[str, Any]) -> None:
        tokenizer = self._tokenizers.resolve(kwargs.get("processing_class"), model)
        for probe in self.probes:
            if self.monitor.has_baseline(probe.label):
                continue  # resumed: keep the step-0 baseline, never re-baseline a drifted model
            try:
                with self._interruption_recorded(probe, state.global_step):
                    result, recheck = probe.baseline(
                        model,
                        tokenizer,
                        max_tokens_per_batch=self.policy.probes.max_tokens_per_batch,
                        calibrate_noise=self.policy.probes.calibrate_noise,
                    )
            except DistillGuardError as exc:
                self.telemetry.close(clean=False)
                raise DistillGuardError(
                    f"baseline of probe '{probe.label}' failed; cannot guard this run: {exc}"
                ) from exc
            floor = self.monitor.set_baseline(result, recheck=recheck)
            self.telemetry.baseline(result, noise_floor=floor, step=state.global_step)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self.telemetry.step(state.global_step)
        # The last step is probed even off the cadence: it is the model that gets saved and shipped.
        if state.global_step % self.policy.probes.every_n_steps == 0 or exits.is_last_step(state, control):
            self._evaluate(args, state, control, kwargs)
        else:
            self.telemetry.publish()  # the Pushgateway exporter rate-limits itself to interval_seconds

    def on_epoch_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        # A stop requested after our on_step_end (EarlyStopping in on_evaluate, a later callback)
        # is seen here, still before the epoch's save and before on_train_end.
        if control.should_training_stop and self._probed_step != state.global_step:
            self._evaluate(args, state, control, kwargs)
        elif self.tripped:
            self._close_exits(args, state, control)  # an epoch-end save after a halt is vetoed too

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.policy.probes.on_evaluate and self._probed_step != state.global_step:
            self._evaluate(args, state, control, kwargs)

    def _evaluate(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, kwargs: dict[str, Any]
    ) -> None:
        model = kwargs["model"]
        tokenizer = self._tokenizers.resolve(kwargs.get("processing_class"), model)
        tripped: tuple[PreparedProbe, Evaluation] | None = None
        reports = []
        alpha = self.monitor.next_look()
        for probe in self.probes:
            result: ProbeResult | None = None
            try:
                with self._interruption_recorded(probe, state.global_step):
                    result = probe.run(model, tokenizer, max_tokens_per_batch=self.policy.probes.max_tokens_per_batch)
                evaluation = self.monitor.observe(
                    result,
                    probe.ref.threshold,
                    step=state.global_step,
                    alpha=alpha,
                    panel=probe.ref.panel,
                    gate=probe.ref.stand_out,
                    group=probe.ref.stand_out_group,
                    benign=self.loaded.benign_limits.get(probe.label),
                )
            except DistillGuardError as exc:
                evaluation = self.monitor.observe_failure(probe.label, probe.trait, str(exc), step=state.global_step)
            self.telemetry.evaluation(result, evaluation.report)
            reports.append(evaluation.report.to_json())
            if evaluation.tripped and tripped is None:
                tripped = (probe, evaluation)
        self._probed_step = state.global_step
        self.telemetry.evaluated(state.global_step, reports, look=self.monitor.looks, alpha=alpha)
        local = self._halt_record(*tripped, model) if tripped else None
        self._act_on_halt(args, state, control, local)
        self.telemetry.publish()
        if self.tripped:
            self._close_exits(args, state, control)

    @contextlib.contextmanager
    def _interruption_recorded(self, probe: PreparedProbe, step: int) -> Iterator[None]:
        """A probe stopped by SystemExit, KeyboardInterrupt or a crash still leaves an audit line; the
        exception then goes on as raised (a DistillGuardError is a probe failure, recorded by the caller)."""
        try:
            yield
        except DistillGuardError:
            raise
        except BaseException as exc:
            with contextlib.suppress(OSError):  # the log may be what failed; the original exception matters more
                error = f"{type(exc).__name__}: {exc}"
                self.telemetry.event("probe_interrupted", step=step, probe=probe.label, error=error)
            raise

    def _act_on_halt(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, local: HaltRecord | None
    ) -> None:
        """One decision for all ranks: the first rank that tripped speaks for everyone."""
        reported = dist.first_reported(local.to_json() if local else None)
        if reported is None:
            return
        record = HaltRecord.from_json(reported[1])
        if record.action == "stop":
            control.should_training_stop = True
            self.halt_record = record
        if dist.is_main_process():
            write_json_atomically(self._out(args) / HALT_RECORD_NAME, record.to_json())
        self.telemetry.halted(record)
        logger.warning("distill-guard: %s", record)

    def _halt_record(self, probe: PreparedProbe, evaluation: Evaluation, model: Any) -> HaltRecord:
        return halt_record_for(
            evaluation,
            probe.ref,
            halt_action=self.policy.halt.action,
            policy=self.policy.metadata.name,
            policy_file=str(self.loaded.path),
            policy_sha256=self._policy_sha256(),
            weights_digest=weights_digest(model),
        )

    def _close_exits(self, args: TrainingArguments, state: TrainerState, control: TrainerControl) -> None:
        """After a halt: veto or quarantine this step's save, then raise before the Trainer goes on."""
        assert self.halt_record is not None
        quarantined = exits.close_after_halt(
            args, state, control, self.policy.halt, self.halt_record, is_main=dist.is_main_process()
        )
        for folder in quarantined:
            self.telemetry.event("quarantine", step=state.global_step, checkpoint=str(folder))
            if (folder / MODEL_CARD_NAME).is_file():  # saved before the halt was seen: its card says not halted
                self.telemetry.model_card(folder, step=state.global_step, halt=self.halt_record)
                self._register_quarantined(folder, state.global_step)
        if not control.should_save and self.policy.halt.raise_on_train_end:
            self._end_halted(state)  # no save follows: nothing else may run, on_train_end included

    def _end_halted(self, state: TrainerState) -> None:
        assert self.halt_record is not None
        self.telemetry.event("train_end", step=state.global_step, halted=True)
        self.telemetry.close(clean=False)
        raise TrainingHalted(self.halt_record)

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        halt = self.halt_record if self.tripped else None
        folder = exits.checkpoint_folder(args, state)
        self.telemetry.model_card(folder, step=state.global_step, halt=halt)
        # Reached after a halt only for a checkpoint the policy let through, already quarantined.
        if self.tripped:
            self._register_quarantined(folder, state.global_step)
        if self.tripped and self.policy.halt.raise_on_train_end:
            self._end_halted(state)

    def _fingerprint_for_registry(self, model: Any) -> Fingerprint | None:
        """With `halt.quarantine_registry`, on the main process (whose refusal every rank follows): the
        weights about to be trained, matched against the registry and kept so that a halt registers
        only what this run changed (the base it started from must not match its entry)."""
        if self.gate.quarantine_registry is None or not dist.is_main_process() or not hasattr(model, "state_dict"):
            return None
        return fingerprint_module(model)

    def _register_quarantined(self, folder: Path, step: int) -> None:
        """`halt.quarantine_registry`: the kept checkpoint's fingerprint, written once its weights are on disk.
        A failure is logged and audited; the marker and the card still quarantine the folder."""
        registry = self.gate.quarantine_registry
        if registry is None or not dist.is_main_process() or not folder.is_dir():
            return
        try:
            entry = register(
                registry, folder, run_id=self.telemetry.run_id or "?", step=step, start=self._start_weights
            )
        except (DistillGuardError, UnreadableCheckpoint, OSError) as error:
            logger.error("distill-guard: %s was not added to the quarantine registry: %s", folder, error)
            self.telemetry.event("quarantine_registry_failed", step=step, checkpoint=str(folder), error=str(error))
            return
        self.telemetry.event(
            "quarantine_registered", step=step, checkpoint=str(folder), registry=f"{registry}:{entry.line}"
        )

    def on_push_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Every Hub push (trainer.push_to_hub, or hub_strategy pushes of checkpoints) starts here."""
        if self.tripped:
            assert self.halt_record is not None
            self.telemetry.event("push_refused", step=state.global_step, halt=self.halt_record.to_json())
            raise TrainingHalted(self.halt_record)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.probes and not self.tripped and state.global_step > 0 and self._probed_step != state.global_step:
            self.telemetry.stop_tracking()  # the trackers ended their runs in their on_train_end, before ours
            self._evaluate(args, state, control, kwargs)  # last resort: the final model is always checked
        self.telemetry.event("train_end", step=state.global_step, halted=self.tripped)
        self.telemetry.close(clean=not self.tripped)
        if self.tripped and self.policy.halt.raise_on_train_end:
            assert self.halt_record is not None
            raise TrainingHalted(self.halt_record)
