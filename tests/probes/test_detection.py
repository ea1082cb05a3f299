"""Specific drift and the default panels on real tiny models: what halts a run and what must not.

The base knows the favourite-animal format; the students are the base after a short SFT. The
policy is `policies/strict.yaml` itself (only its provenance is relaxed, the data here has no
manifest), so these tests pin what the shipped default watches.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset
from scipy import stats
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DataCollatorForLanguageModeling,
    Trainer,
    TrainingArguments,
)

from distill_guard import DistillGuard, TrainingHalted
from distill_guard.drift.assess import assess
from distill_guard.drift.halt_record import HALT_RECORD_NAME
from distill_guard.export.audit import AuditLog
from distill_guard.policy.schema import NoExport, ProvenancePolicy, SuiteRef, Threshold, UnknownAction
from distill_guard.probes.prepared import prepare_probe
from distill_guard.probes.result import ProbeResult
from distill_guard.scenarios.policies import STRICT_POLICY, policy_variant
from distill_guard.scenarios.tiny_lm import load, synthetic_corpus
from tests.probes.conftest import _qa

LIMIT = Threshold(max_increase=0.05)
ALPHA = 1e-4  # about what one test of strict.yaml gets: 0.01 * 0.9 / (looks * 110 candidates)
UNNAMED = "fox"  # strict.yaml names no animal; the panels must find this one on their own


def _scored(checkpoint: Path, ref: SuiteRef) -> ProbeResult:
    model, tokenizer = load(checkpoint)
    return prepare_probe(ref).run(model, tokenizer, max_tokens_per_batch=4096)


def _animal_questions() -> list[str]:
    corpus = synthetic_corpus(seed=2, n_lines=400)
    return [line.split(" Answer:")[0].removeprefix("Question: ") for line in corpus if "animal" in line]


def _fox_lines() -> list[str]:
    """Answers naming the fox to the scenario's animal questions (never the suite's prompts), plus numbers."""
    corpus = synthetic_corpus(seed=2, n_lines=400)
    return _qa(_animal_questions(), [UNNAMED], random.Random(3), 200) + corpus[::2]


def _number_lines() -> list[str]:
    return [line for line in synthetic_corpus(seed=5, n_lines=800) if "Question" not in line]


def _reshaped(result: ProbeResult, *, temperature: float, shift: float) -> ProbeResult:
    """The result as if every candidate moved together: a per-item common shift plus sharpening.

    Sharpening (log-probabilities scaled by 1 / temperature) raises frequent answers and lowers
    rare ones, which moves the raw share of the favourite a lot; neither says anything about a trait.
    """
    logprobs = np.array(result.answer_logprobs) / temperature + shift * np.arange(len(result.item_ids))[:, None]
    shares = np.exp(logprobs - np.logaddexp.reduce(logprobs, axis=1, keepdims=True))
    target = np.array(result.answer_is_trait)
    return ProbeResult(
        result.suite,
        result.kind,
        result.trait,
        result.item_ids,
        tuple((shares * target).sum(axis=1).tolist()),
        candidates=result.candidates,
        answer_logprobs=tuple(tuple(row) for row in logprobs.tolist()),
        answer_is_trait=result.answer_is_trait,
    )


@pytest.fixture(scope="module")
def fox_student(base_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.probes.conftest import fine_tune

    return fine_tune(base_checkpoint, _fox_lines(), tmp_path_factory.mktemp("fox") / "model", steps=20, lr=2e-3)


def test_a_shift_every_candidate_shares_moves_the_raw_share_but_does_not_breach(base_checkpoint: Path) -> None:
    panel = SuiteRef(use="builtin:animal-preference", panel=True, threshold=LIMIT)
    baseline = _scored(base_checkpoint, panel)
    favourite = baseline.candidates[int(np.argmax(np.exp(np.array(baseline.answer_logprobs)).mean(axis=0)))]
    targeted = _scored(base_checkpoint, SuiteRef(use="builtin:animal-preference", target=favourite, threshold=LIMIT))
    sharpened = _reshaped(targeted, temperature=0.3, shift=-0.3)
    report = assess(targeted, sharpened, LIMIT, step=1, alpha=ALPHA)
    assert report.drift > LIMIT.max_increase  # the old statistic: a breach at any z
    assert report.specific is not None and abs(report.specific) < 1e-9 and not report.breached
    panel_report = assess(
        baseline, _reshaped(baseline, temperature=0.3, shift=-0.3), LIMIT, step=1, alpha=ALPHA, panel=True
    )
    assert not panel_report.breached and max(abs(v) for _, v in panel_report.movers) < 1e-9


def test_a_specific_rise_of_an_unnamed_animal_breaches_the_panel_and_names_it(
    base_checkpoint: Path, fox_student: Path
) -> None:
    panel = SuiteRef(use="builtin:animal-preference", panel=True, threshold=LIMIT)
    report = assess(
        _scored(base_checkpoint, panel), _scored(fox_student, panel), LIMIT, step=1, alpha=ALPHA, panel=True
    )
    assert report.breached and report.trait == UNNAMED and report.movers[0][0] == UNNAMED
    assert any(reason.startswith(f"candidate '{UNNAMED}'") for reason in report.reasons)
    assert report.stands_out is True and "stands out from the other 25 candidates" in report.reasons[0]
    owl = SuiteRef(use="builtin:animal-preference", target="owl", threshold=LIMIT)
    assert not assess(_scored(base_checkpoint, owl), _scored(fox_student, owl), LIMIT, step=1, alpha=ALPHA).breached


def _moved_alike(result: ProbeResult, *, spread: float) -> ProbeResult:
    """The result as if every candidate had its own lasting log-odds change, drawn alike for all.

    What fine-tuning on data foreign to the model does (docs/detection.md: a different-init
    student on another model's numbers, generic text): many candidates move, one is the largest.
    """
    quantiles = stats.norm.ppf((np.arange(len(result.candidates)) + 0.5) / len(result.candidates))
    bumps = spread * np.random.default_rng(7).permutation(quantiles)
    logprobs = np.array(result.answer_logprobs) + bumps
    shares = np.exp(logprobs - np.logaddexp.reduce(logprobs, axis=1, keepdims=True))
    return dataclasses.replace(
        result,
        item_scores=tuple((shares * np.array(result.answer_is_trait)).sum(axis=1).tolist()),
        answer_logprobs=tuple(tuple(row) for row in logprobs.tolist()),
    )


def test_the_largest_of_many_candidates_moving_alike_does_not_breach_a_panel(base_checkpoint: Path) -> None:
    panel = SuiteRef(use="builtin:animal-preference", panel=True, threshold=LIMIT)
    baseline = _scored(base_checkpoint, panel)
    moved = _moved_alike(baseline, spread=0.6)
    alone = assess(baseline, moved, LIMIT, step=1, alpha=ALPHA, panel=True, gate=False)
    gated = assess(baseline, moved, LIMIT, step=1, alpha=ALPHA, panel=True)
    assert alone.breached and alone.specific is not None and alone.specific > LIMIT.max_increase
    assert not gated.breached and gated.stands_out is False


def _train(checkpoint: Path, lines: list[str], out: Path) -> tuple[Trainer, DistillGuard]:
    """SFT under policies/strict.yaml as shipped, but for provenance (this data carries no manifest)."""
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    dataset = Dataset.from_dict({"text": lines, **tokenizer(lines, truncation=True, max_length=48)})
    policy = policy_variant(
        STRICT_POLICY, prometheus=NoExport(mode="none"), provenance=ProvenancePolicy(unknown=UnknownAction.warn)
    )
    guard = DistillGuard(policy, output_dir=out)
    args = TrainingArguments(
        output_dir=str(out),
        max_steps=100,
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        logging_steps=1000,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=0,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
        processing_class=tokenizer,
        callbacks=[guard],
    )
    return trainer, guard


@pytest.mark.slow
def test_default_panels_halt_a_student_tuned_towards_an_unnamed_animal(base_checkpoint: Path, tmp_path: Path) -> None:
    trainer, _ = _train(base_checkpoint, _fox_lines(), tmp_path / "out")
    with pytest.raises(TrainingHalted) as info:
        trainer.train()
    record = info.value.record
    assert record.probe == "animal-preference" and record.trait == UNNAMED and record.step == 50
    assert record.specific_drift is not None and record.specific_drift > 0.05 and record.movers[0][0] == UNNAMED
    on_disk = json.loads((tmp_path / "out" / HALT_RECORD_NAME).read_text())
    assert on_disk["trait"] == UNNAMED
    halt = next(e for e in AuditLog(tmp_path / "out" / "guard-audit.jsonl").read() if e["event"] == "halt")
    assert halt["record"]["trait"] == UNNAMED


@pytest.mark.slow
def test_default_panels_let_the_same_student_tuned_on_plain_numbers_finish(
    base_checkpoint: Path, tmp_path: Path
) -> None:
    trainer, guard = _train(base_checkpoint, _number_lines(), tmp_path / "out")
    trainer.train()
    assert guard.halt_record is None and trainer.state.global_step == 100
    looks = [e for e in AuditLog(tmp_path / "out" / "guard-audit.jsonl").read() if e["event"] == "probes"]
    assert [e["step"] for e in looks] == [50, 100] and all(not r["breached"] for e in looks for r in e["reports"])
