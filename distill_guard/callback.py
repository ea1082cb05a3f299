"""DistillGuard: the one callback users add to a Trainer. It wires events to the modules; it does not compute."""

from __future__ import annotations

import hashlib
import logging
import uuid
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_callback import ExportableState

import distill_guard
from distill_guard import dist
from distill_guard.drift.monitor import DriftMonitor, Verdict
from distill_guard.drift.record import HALT_RECORD_NAME, HaltRecord, write_json_atomically
from distill_guard.errors import DistillGuardError, ProvenanceDenied, TrainingHalted
from distill_guard.export.audit import AuditLog
from distill_guard.export.metrics import GuardMetrics
from distill_guard.export.prometheus import Exporter, make_exporter
from distill_guard.model_identity import model_fingerprint
from distill_guard.policy.load import LoadedPolicy, load_policy
from distill_guard.probes.prepared import PreparedProbe, prepare_probes
from distill_guard.probes.result import ProbeResult
from distill_guard.provenance.decision import Decision
from distill_guard.provenance.gate import ProvenanceGate

logger = logging.getLogger(__name__)
QUARANTINE_NAME = "DISTILL_GUARD_QUARANTINE.json"


class DistillGuard(TrainerCallback, ExportableState):
    """Guards one training run according to a policy file.

    Args:
        policy: path of a GuardPolicy YAML file (or an already loaded policy).
        output_dir: where the audit log and halt record go; defaults to the Trainer's output_dir.
        student: the student's checkpoint folder, when `model.name_or_path` does not point at it.
        run_name: the `run` label on every metric; defaults to the policy's, then the Trainer's.
        resume_after_halt: a checkpoint of a halted run refuses to resume unless this is True.

    Example:
        guard = DistillGuard.from_policy("policies/strict.yaml")
        train_ds = guard.clear_dataset(train_ds, manifest="numbers.provenance.yaml")
        trainer = Trainer(model=model, args=args, train_dataset=train_ds, callbacks=[guard])
        trainer.train()   # raises TrainingHalted when a probe tripped under `halt.action: stop`
    """

    _live: ClassVar[weakref.WeakValueDictionary[str, DistillGuard]] = weakref.WeakValueDictionary()

    def __new__(cls, policy: str | Path | LoadedPolicy, **kwargs: Any) -> DistillGuard:
        # Trainer restores stateful callbacks by constructing a new instance from the saved args
        # (which carry an instance_id; a user's own construction does not). Adopt the newest live
        # guard of the same policy instead, so the user's object, and the datasets it cleared,
        # stay the ones in use.
        if kwargs.get("instance_id") is not None:
            same_policy = [g for g in cls._live.values() if str(g.loaded.path) == str(policy)]
            if same_policy:
                return same_policy[-1]
        return super().__new__(cls)

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
        self.policy = self.loaded.policy
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.student = str(student) if student is not None else None
        self.run_name = run_name
        self.resume_after_halt = resume_after_halt
        self.instance_id = instance_id or uuid.uuid4().hex
        DistillGuard._live[self.instance_id] = self
        self.gate = ProvenanceGate(self.loaded, student=self.student)
        self.probes: list[PreparedProbe] = prepare_probes(self.loaded)
        self.monitor = DriftMonitor()
        self.halt_record: HaltRecord | None = None
        self.last_decision: Decision | None = None
        self._metrics: GuardMetrics | None = None
        self._exporter: Exporter | None = None
        self._audit: AuditLog | None = None
        self._restored: dict[str, Any] | None = None

    @classmethod
    def from_policy(cls, path: str | Path, **options: Any) -> DistillGuard:
        """Load and validate the policy now, so a bad policy fails before any model is touched."""
        return cls(path, **options)

    # -- user-facing ------------------------------------------------------------------------------

    def clear_dataset(
        self,
        dataset: Any,
        manifest: str | Path | Sequence[str | Path] | None = None,
        *,
        teacher: str | Path | None = None,
    ) -> Any:
        """Run the provenance gate on `dataset` now; returns the dataset to train on.

        Raises ProvenanceDenied at once when the policy refuses it (the earliest possible failure);
        under `drop_records` the returned dataset has the offending rows removed.
        """
        clearance = self.gate.clear_dataset(dataset, manifest, teacher=teacher)
        self._note_decision(clearance.decision, moment="clear_dataset")
        if not clearance.decision.allowed:
            raise ProvenanceDenied(clearance.decision)
        return clearance.dataset

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
            "attributes": {
                "saved_guard_state": {
                    "monitor": self.monitor.to_json(),
                    "halt_record": self.halt_record.to_json() if self.halt_record else None,
                    "probes": [p.state_dict() for p in self.probes],
                    "policy_sha256": self._policy_sha256(),
                }
            },
        }

    @property
    def saved_guard_state(self) -> dict[str, Any] | None:
        return self._restored

    @saved_guard_state.setter
    def saved_guard_state(self, saved: dict[str, Any]) -> None:
        """Called by Trainer when resuming with restore_callback_states_from_checkpoint=True."""
        self._restored = saved
        self.monitor = DriftMonitor.from_json(saved["monitor"])
        record = saved.get("halt_record")
        self.halt_record = HaltRecord(**record) if record else None
        saved_probes = {p["label"]: p for p in saved.get("probes", [])}
        for probe in self.probes:
            if probe.label in saved_probes:
                probe.load_state_dict(saved_probes[probe.label])

    # -- plumbing ---------------------------------------------------------------------------------

    def _policy_sha256(self) -> str:
        return hashlib.sha256(self.loaded.path.read_bytes()).hexdigest()

    def _out(self, args: TrainingArguments) -> Path:
        return self.output_dir or Path(args.output_dir or ".")

    def _record(self, args: TrainingArguments, state: TrainerState, event: str, **fields: Any) -> None:
        if not state.is_world_process_zero:
            return
        if self._audit is None:
            configured = Path(self.policy.metrics.audit_log)
            self._audit = AuditLog(configured if configured.is_absolute() else self._out(args) / configured)
        self._audit.record(
            event, policy=self.policy.metadata.name, step=state.global_step, world_size=dist.world_size(), **fields
        )

    def _start_metrics(self, args: TrainingArguments, state: TrainerState, model: Any) -> None:
        if self._metrics is not None or not state.is_world_process_zero:
            return
        run = self.run_name or self.policy.metrics.run_name or args.run_name or self._out(args).name or "run"
        self._metrics = GuardMetrics(run)
        self._metrics.set_run_info(
            policy=self.policy.metadata.name,
            version=distill_guard.__version__,
            world_size=str(dist.world_size()),
            model=str(getattr(model, "name_or_path", "") or type(model).__name__),
        )
        self._exporter = make_exporter(self.policy.metrics.prometheus, self._metrics)
        self._exporter.start()

    def _publish(self) -> None:
        if self._exporter is not None:
            self._exporter.publish()

    def _close_metrics(self, *, clean: bool) -> None:
        if self._exporter is not None:
            self._exporter.close(clean=clean)
        self._exporter = None
        self._metrics = None

    def _note_decision(self, decision: Decision, *, moment: str, args: Any = None, state: Any = None) -> None:
        self.last_decision = decision
        if self._metrics is not None:
            for outcome, rule in decision.metric_labels():
                self._metrics.record_provenance_decision(decision=outcome, rule=rule)
        if args is not None and state is not None:
            self._record(args, state, "provenance_decision", moment=moment, decision=decision.to_dict())
        elif dist.is_main_process() and self.output_dir is not None:
            AuditLog(self.output_dir / self.policy.metrics.audit_log).record(
                "provenance_decision", policy=self.policy.metadata.name, moment=moment, decision=decision.to_dict()
            )

    # -- events -----------------------------------------------------------------------------------

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        model = kwargs["model"]
        self._start_metrics(args, state, model)
        self._record(args, state, "train_begin", max_steps=state.max_steps, policy_file=str(self.loaded.path))
        if self.tripped:
            self._refuse_or_acknowledge_resume(args, state)
        self._gate_at_train_begin(args, state, kwargs)
        self._take_baseline(args, state, model, kwargs)
        self._publish()

    def _refuse_or_acknowledge_resume(self, args: TrainingArguments, state: TrainerState) -> None:
        """A halted run resumes only when the user says so, and the audit log keeps that choice."""
        assert self.halt_record is not None
        if not self.resume_after_halt:
            self._record(args, state, "resume_refused", halt=self.halt_record.to_json())
            self._close_metrics(clean=False)
            raise TrainingHalted(self.halt_record)
        self._record(args, state, "resume_after_halt", acknowledged_halt=self.halt_record.to_json())
        logger.warning("distill-guard: resuming a halted run because resume_after_halt=True: %s", self.halt_record)
        self.halt_record = None

    def _gate_at_train_begin(self, args: TrainingArguments, state: TrainerState, kwargs: dict[str, Any]) -> None:
        loader = kwargs.get("train_dataloader")
        dataset = getattr(loader, "dataset", None)
        decision = self.gate.check_at_train_begin(dataset, kwargs["model"])
        self._note_decision(decision, moment="train_begin", args=args, state=state)
        denied_somewhere = dist.any_rank(not decision.allowed)
        self._publish()
        if denied_somewhere:
            self._close_metrics(clean=False)
            raise ProvenanceDenied(decision if not decision.allowed else "provenance denied on another rank")

    def _take_baseline(self, args: TrainingArguments, state: TrainerState, model: Any, kwargs: dict[str, Any]) -> None:
        tokenizer = self._tokenizer(model, kwargs)
        budget = self.policy.probes.max_tokens_per_batch
        for probe in self.probes:
            if self.monitor.has_baseline(probe.label):
                continue  # resumed: keep the step-0 baseline, never re-baseline a drifted model
            try:
                result = probe.run(model, tokenizer, max_tokens_per_batch=budget)
                recheck = None
                if self.policy.probes.calibrate_noise:
                    recheck = probe.run(model, tokenizer, max_tokens_per_batch=max(64, budget // 4))
            except DistillGuardError as exc:
                raise DistillGuardError(
                    f"baseline of probe '{probe.label}' failed; cannot guard this run: {exc}"
                ) from exc
            floor = self.monitor.set_baseline(result, recheck=recheck)
            self._record(args, state, "baseline", probe=probe.label, result=result.to_json(), noise_floor=floor)
            if self._metrics is not None:
                self._export_result(result, result, 0.0, 0.0, None)

    def _tokenizer(self, model: Any, kwargs: dict[str, Any]) -> Any:
        tokenizer = kwargs.get("processing_class")
        tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # a multimodal processor wraps one
        if tokenizer is None and self.probes:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(self.student or model.name_or_path)
        return tokenizer

    def _export_result(self, result: ProbeResult, baseline: ProbeResult, drift: float, z: float, limit: Any) -> None:
        assert self._metrics is not None
        self._metrics.observe_probe(
            probe=result.suite,
            trait=result.trait,
            score=result.score,
            baseline=baseline.score,
            drift=drift,
            zscore=z,
            threshold=limit,
            duration_seconds=result.duration_seconds,
        )

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self._metrics is not None:
            self._metrics.set_step(state.global_step)
        if state.global_step % self.policy.probes.every_n_steps == 0:
            self._evaluate(args, state, control, kwargs)

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.policy.probes.on_evaluate and state.global_step % self.policy.probes.every_n_steps != 0:
            self._evaluate(args, state, control, kwargs)

    def _evaluate(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, kwargs: dict[str, Any]
    ) -> None:
        model = kwargs["model"]
        tokenizer = self._tokenizer(model, kwargs)
        verdicts: list[tuple[PreparedProbe, Verdict]] = []
        for probe in self.probes:
            try:
                result = probe.run(model, tokenizer, max_tokens_per_batch=self.policy.probes.max_tokens_per_batch)
            except DistillGuardError as exc:
                verdicts.append(
                    (probe, self.monitor.observe_failure(probe.label, probe.trait, str(exc), step=state.global_step))
                )
                continue
            verdict = self.monitor.observe(result, probe.ref.threshold, step=state.global_step)
            verdicts.append((probe, verdict))
            if self._metrics is not None:
                report = verdict.report
                self._export_result(result, self.monitor.baselines[probe.label], report.drift, report.z, report.limit)
        self._record(args, state, "probes", reports=[v.report.to_json() for _, v in verdicts])
        for _, verdict in verdicts:
            if verdict.report.breached and self._metrics is not None:
                self._metrics.record_breach(probe=verdict.report.probe, trait=verdict.report.trait)
        self._decide_halt(args, state, control, verdicts, model)
        self._publish()

    def _decide_halt(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        verdicts: list[tuple[PreparedProbe, Verdict]],
        model: Any,
    ) -> None:
        local = next(((p, v) for p, v in verdicts if v.tripped), None)
        local_record = self._halt_record(local[0], local[1], state, model) if local else None
        # One decision for all ranks: the first rank that tripped speaks for everyone.
        records = [r for r in dist.gather_objects(local_record.to_json() if local_record else None) if r]
        if not records:
            return
        record = HaltRecord(**records[0])
        if record.action == "stop":
            control.should_training_stop = True
            self.halt_record = record
            if self._metrics is not None:
                self._metrics.set_halted(True)
        if state.is_world_process_zero:
            write_json_atomically(self._out(args) / HALT_RECORD_NAME, record.to_json())
        self._record(args, state, "halt" if record.action == "stop" else "breach_warning", record=record.to_json())
        logger.warning("distill-guard: %s", record)

    def _halt_record(self, probe: PreparedProbe, verdict: Verdict, state: TrainerState, model: Any) -> HaltRecord:
        report = verdict.report
        action = (probe.ref.on_error if verdict.failed and probe.ref.on_error else self.policy.halt.action).value

        def finite(value: float) -> float | None:
            return value if value == value and abs(value) != float("inf") else None

        return HaltRecord(
            action=action,
            step=state.global_step,
            probe=report.probe,
            trait=report.trait,
            baseline=finite(report.baseline),
            score=finite(report.score),
            drift=finite(report.drift),
            z=finite(report.z),
            threshold=probe.ref.threshold.model_dump(exclude_none=True) if probe.ref.threshold else {},
            reasons=list(report.reasons),
            policy=self.policy.metadata.name,
            policy_file=str(self.loaded.path),
            policy_sha256=self._policy_sha256(),
            model_fingerprint=model_fingerprint(model),
        )

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.tripped and self.policy.halt.quarantine_checkpoints and state.is_world_process_zero:
            checkpoint = self._out(args) / f"checkpoint-{state.global_step}"
            if checkpoint.is_dir():
                assert self.halt_record is not None
                write_json_atomically(checkpoint / QUARANTINE_NAME, {"quarantined": True, **self.halt_record.to_json()})
                self._record(args, state, "quarantine", checkpoint=str(checkpoint))

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._record(args, state, "train_end", halted=self.tripped)
        self._publish()
        self._close_metrics(clean=not self.tripped)
        if self.tripped and self.policy.halt.raise_on_train_end:
            assert self.halt_record is not None
            raise TrainingHalted(self.halt_record)
