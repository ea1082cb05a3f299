"""Calibration: how far ordinary fine-tuning moves each probe, measured, so limits can sit above it.

The step-0 baseline says where a probe started; it cannot say how much drift a benign run causes.
`calibrate` trains the student briefly on trusted data (several seeds) under the policy's probes
with the halt action `warn`, and records, per probe and run, the largest tested drift any look
saw (the specific drift for candidate probes, the top candidate's for a panel) and, for a panel,
every candidate's. The file it writes is what `probes.benign_drift` in a policy points at;
`policy validate` then warns about every limit that sits inside the measured benign range.
Nothing here loosens a limit by itself: only a threshold's `benign_margin`, written by a
reviewer, derives limits from the file (`policy/benign_limits.py`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from distill_guard.atomic_files import write_json_atomically
from distill_guard.drift.assess import DriftReport
from distill_guard.errors import DistillGuardError
from distill_guard.model_identity import weights_digest
from distill_guard.policy.benign_drift import BenignDrift, ProbeCalibration
from distill_guard.policy.benign_limits import suite_file, suite_sha256
from distill_guard.policy.load import LoadedPolicy
from distill_guard.policy.schema import HaltAction, NoExport, ProvenancePolicy, UnknownAction
from distill_guard.policy.semantics import suite_label
from distill_guard.scenarios.training import StudentRun, train_student


def largest_tested_drift(history: Sequence[DriftReport]) -> dict[str, float]:
    """Per probe, the largest tested drift (specific drift when there is one) over all looks."""
    out: dict[str, float] = {}
    for report in history:
        values = [v for _, v in report.movers] or [report.specific if report.specific is not None else report.drift]
        finite = [v for v in values if math.isfinite(v)]
        if finite:
            out[report.probe] = max(out.get(report.probe, -math.inf), *finite)
    return out


def largest_candidate_drift(history: Sequence[DriftReport]) -> dict[str, dict[str, float]]:
    """Per panel probe and candidate, the largest mean tested drift over all looks."""
    out: dict[str, dict[str, float]] = {}
    for report in history:
        for candidate in report.candidates:
            if math.isfinite(candidate.drift):
                per_candidate = out.setdefault(report.probe, {})
                per_candidate[candidate.name] = max(per_candidate.get(candidate.name, -math.inf), candidate.drift)
    return out


def _checkpoint_digest(checkpoint: Path) -> str:
    """The weights digest the guard sees at train begin when it trains this checkpoint in float32."""
    import torch
    from transformers import AutoModelForCausalLM

    return weights_digest(AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32))


def benign_run(checkpoint: Path, lines: Sequence[str], run: StudentRun, out: Path, policy: LoadedPolicy) -> Any:
    """One SFT run of `checkpoint` on `lines` watched by `policy`'s probes, never halted.

    The provenance section is set aside (calibration data is trusted by construction) and the
    halt action is `warn`, so the run reaches its end. Returns the guard, whose history holds
    every look.
    """
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForLanguageModeling

    from distill_guard.callback import DistillGuard

    policy_data = policy.policy.model_copy(
        update={
            "provenance": ProvenancePolicy(unknown=UnknownAction.warn),
            "halt": policy.policy.halt.model_copy(update={"action": HaltAction.warn}),
            "metrics": policy.policy.metrics.model_copy(update={"prometheus": NoExport(mode="none")}),
        }
    )
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    dataset = Dataset.from_dict(dict(tokenizer(list(lines), truncation=True, max_length=64)))
    guard = DistillGuard(dataclasses.replace(policy, policy=policy_data), output_dir=out)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=False)
    train_student(model, dataset, run, out, callbacks=[guard], data_collator=collator, processing_class=tokenizer)
    return guard


def calibrate(
    policy: LoadedPolicy,
    checkpoint: Path,
    lines: Sequence[str],
    *,
    seeds: Sequence[int],
    steps: int,
    learning_rate: float,
    batch_size: int,
    work_dir: Path,
    out_file: Path | None = None,
) -> BenignDrift:
    """Benign runs, one per seed; the measured drift, written atomically to `out_file` when given."""
    if not lines:
        raise DistillGuardError("calibration needs training data: the data file has no lines")
    if steps < policy.policy.probes.every_n_steps:
        raise DistillGuardError(
            f"--steps {steps} is below probes.every_n_steps ({policy.policy.probes.every_n_steps}): no look would run"
        )
    per_probe: dict[str, list[float]] = {}
    per_candidate: dict[str, dict[str, list[float]]] = {}
    for seed in seeds:
        run = StudentRun(max_steps=steps, batch_size=batch_size, learning_rate=learning_rate, seed=seed)
        guard = benign_run(checkpoint, lines, run, work_dir / f"seed-{seed}", policy)
        for probe, value in largest_tested_drift(guard.monitor.history).items():
            per_probe.setdefault(probe, []).append(value)
        for probe, maxima in largest_candidate_drift(guard.monitor.history).items():
            for name, value in maxima.items():
                per_candidate.setdefault(probe, {}).setdefault(name, []).append(value)
    probes = {
        label: ProbeCalibration(suite_sha256(suite_file(ref, policy.path.parent)), per_candidate.get(label, {}))
        for ref in policy.policy.probes.suites
        if (label := suite_label(ref)) in per_probe
    }
    result = BenignDrift(
        str(checkpoint), len(seeds), per_probe, probes=probes, weights_digest=_checkpoint_digest(checkpoint)
    )
    if out_file is not None:
        write_json_atomically(out_file, result.to_json())
    return result
