"""A LoRA student (peft): the probes score the model with its adapters, and lineage reads adapter_config.json."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from peft import LoraConfig, PeftModel

from distill_guard import DistillGuard
from distill_guard.scenarios import tiny_lm
from tests.support.policies import write_guard_policy

from .conftest import build_example, events

PREFERENCE = {"use": "builtin:animal-preference", "target": "owl", "threshold": {"max_increase": 0.99}}
TINY_FAMILY = [{"name": "tiny", "match": ["*/tiny-base"]}]


@dataclass
class LoraRun:
    trainer: object
    base: Path
    out: Path
    policy: Path


@pytest.fixture(scope="module")
def lora_run(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> LoraRun:
    """Four SFT steps of a LoRA adapter on the tiny base, probed by a real preference probe every 2 steps."""
    workdir = tmp_path_factory.mktemp("lora")
    base = Path(shutil.copytree(tiny_checkpoint, workdir / "tiny-base"))
    policy = write_guard_policy(workdir / "policy.yaml", [PREFERENCE], every=2, sections={"families": TINY_FAMILY})
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    trainer = build_example("sft", base, policy, workdir / "out", base, max_steps=4, peft_config=lora)
    trainer.train()
    return LoraRun(trainer, base, workdir / "out", policy)


def test_the_guarded_model_is_the_adapted_one(lora_run):
    assert isinstance(lora_run.trainer.model, PeftModel)


def test_probes_score_the_model_with_its_adapters(lora_run):
    model, tokenizer = tiny_lm.load(lora_run.base)
    probe = DistillGuard.from_policy(lora_run.policy).probes[0]
    frozen_base = probe.run(model, tokenizer, max_tokens_per_batch=4096).score
    baseline = events(lora_run.out, "baseline")[0]["result"]["score"]
    scored = [e["reports"][0]["score"] for e in events(lora_run.out, "probes")]
    assert baseline == pytest.approx(frozen_base, abs=1e-6)  # a fresh LoRA adapter changes nothing yet
    # After training only the adapter differs from the frozen base: a moved score means the adapter was applied.
    assert len(scored) == 2 and all(abs(score - frozen_base) > 1e-5 for score in scored), (frozen_base, scored)


def test_lineage_of_a_saved_adapter_comes_from_adapter_config(lora_run, tmp_path):
    adapter = tmp_path / "adapter"
    lora_run.trainer.save_model(str(adapter))
    (adapter / "README.md").unlink(missing_ok=True)  # leave adapter_config.json as the only statement of the base
    guard = DistillGuard.from_policy(lora_run.policy, student=adapter)
    guard.clear_dataset(lora_run.trainer.train_dataset)
    student = guard.last_decision.student
    assert student.families == ("tiny",)
    assert [source for source, detail in student.evidence if "'tiny'" in detail] == ["adapter_config"]
