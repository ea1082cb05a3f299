"""Disguises an adversary applies to a same-base teacher checkpoint so the weight test misses it.

Each function reads a Llama-style checkpoint folder (the tiny models or SmolLM2) and writes a
disguised copy, the way an adversary with the weights would: the weight-evidence benchmark and the
provenance tests build every disguise from these, on real saved checkpoints.
"""

from __future__ import annotations

import math
import random
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer, MistralConfig, MistralForCausalLM, PreTrainedModel

from distill_guard.scenarios import tiny_lm

LEADING_ENTRIES = 16_384
# Disguise randomness must not replay a model's own init stream (torch.manual_seed(0) in tiny_lm):
# noise drawn from the init seed would itself correlate with the original weights.
DISGUISE_SEED = 104_729
ADDED_TOKENS = ("<extra_0>", "<extra_1>", "<extra_2>")
SIDE_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json")


def _load(directory: Path) -> PreTrainedModel:
    return AutoModelForCausalLM.from_pretrained(directory)


def _save(model: PreTrainedModel, source: Path, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(source).save_pretrained(out)
    return out


def fine_tuned(directory: Path, out: Path, *, steps: int = 10, lr: float = 1e-3, batch: int = 8) -> Path:
    """A few AdamW steps on the synthetic corpus with a plain torch loop, saved without a model card."""
    model, tokenizer = tiny_lm.load(directory)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    torch.manual_seed(1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    lines = tiny_lm.synthetic_corpus(seed=1, n_lines=batch * steps)
    for step in range(steps):
        encoded = tokenizer(lines[step * batch : (step + 1) * batch], return_tensors="pt", padding=True)
        model(**encoded, labels=encoded["input_ids"]).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return tiny_lm.save(model, tokenizer, out)


@torch.no_grad()
def permute_hidden_units(model: PreTrainedModel, seed: int = DISGUISE_SEED) -> PreTrainedModel:
    """Permute the residual stream and every MLP's units: the same function, every matrix reordered."""
    generator = torch.Generator().manual_seed(seed)
    body = model.model
    residual = torch.randperm(model.config.hidden_size, generator=generator)
    body.embed_tokens.weight.data = body.embed_tokens.weight.data[:, residual]
    if model.lm_head.weight is not body.embed_tokens.weight:
        model.lm_head.weight.data = model.lm_head.weight.data[:, residual]
    body.norm.weight.data = body.norm.weight.data[residual]
    for layer in body.layers:
        attention, mlp = layer.self_attn, layer.mlp
        for linear in (attention.q_proj, attention.k_proj, attention.v_proj, mlp.gate_proj, mlp.up_proj):
            linear.weight.data = linear.weight.data[:, residual]
        for linear in (attention.o_proj, mlp.down_proj):
            linear.weight.data = linear.weight.data[residual, :]
        for norm in (layer.input_layernorm, layer.post_attention_layernorm):
            norm.weight.data = norm.weight.data[residual]
        units = torch.randperm(mlp.gate_proj.weight.shape[0], generator=generator)
        mlp.gate_proj.weight.data = mlp.gate_proj.weight.data[units]
        mlp.up_proj.weight.data = mlp.up_proj.weight.data[units]
        mlp.down_proj.weight.data = mlp.down_proj.weight.data[:, units]
    return model


def permuted(directory: Path, out: Path, seed: int = DISGUISE_SEED) -> Path:
    return _save(permute_hidden_units(_load(directory), seed), directory, out)


def renamed(directory: Path, out: Path, seed: int = DISGUISE_SEED) -> Path:
    """Every tensor under an opaque name, in shuffled order: no name or position to match by."""
    state = {k: v.detach().clone().contiguous() for k, v in _load(directory).state_dict().items()}
    order = list(state)
    random.Random(seed).shuffle(order)
    out.mkdir(parents=True, exist_ok=True)
    save_file({f"w{i:04d}": state[name] for i, name in enumerate(order)}, str(out / "model.safetensors"))
    _copy_side_files(directory, out)
    return out


def _copy_side_files(directory: Path, out: Path) -> None:
    for name in SIDE_FILES:
        if (directory / name).is_file():
            shutil.copy2(directory / name, out / name)


@torch.no_grad()
def noised(directory: Path, out: Path, sigma: float, seed: int = DISGUISE_SEED) -> Path:
    """Gaussian noise of `sigma` times each matrix's own standard deviation on every matrix."""
    model = _load(directory)
    generator = torch.Generator().manual_seed(seed)
    for parameter in model.parameters():
        if parameter.dim() >= 2:
            noise = torch.randn(parameter.shape, generator=generator) * float(parameter.std()) * sigma
            parameter.add_(noise)
    return _save(model, directory, out)


@torch.no_grad()
def leading_rows_rerandomised(directory: Path, out: Path, seed: int = DISGUISE_SEED) -> Path:
    """Fresh random values in the leading ~16k entries of each matrix (what a leading-rows test reads)."""
    model = _load(directory)
    generator = torch.Generator().manual_seed(seed)
    for parameter in model.parameters():
        if parameter.dim() >= 2:
            rows = min(parameter.shape[0], math.ceil(LEADING_ENTRIES / math.prod(parameter.shape[1:])))
            fresh = torch.randn(parameter[:rows].shape, generator=generator) * float(parameter.std())
            parameter[:rows] = fresh
    return _save(model, directory, out)


def permuted_with_added_tokens(directory: Path, out: Path, seed: int = DISGUISE_SEED) -> Path:
    """Permuted, and three tokens added to the vocabulary (embedding resized), so no shape matches."""
    model = permute_hidden_units(_load(directory), seed)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    tokenizer.add_tokens(list(ADDED_TOKENS))
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def permuted_as_mistral(directory: Path, out: Path, seed: int = DISGUISE_SEED) -> Path:
    """Permuted and re-saved as `MistralForCausalLM`: another model_type in config.json."""
    llama = permute_hidden_units(_load(directory), seed)
    fields = {k: v for k, v in llama.config.to_dict().items() if k not in ("model_type", "architectures")}
    mistral = MistralForCausalLM(MistralConfig(**{**fields, "sliding_window": None}))
    mistral.load_state_dict(llama.state_dict())
    return _save(mistral, directory, out)


@torch.no_grad()
def permuted_ids_without_tokenizer(directory: Path, out: Path, seed: int = DISGUISE_SEED) -> Path:
    """Permuted hidden units and token ids, saved without a tokenizer: nothing to match rows by."""
    model = permute_hidden_units(_load(directory), seed)
    ids = torch.randperm(model.config.vocab_size, generator=torch.Generator().manual_seed(seed + 1))
    model.model.embed_tokens.weight.data = model.model.embed_tokens.weight.data[ids]
    if model.lm_head.weight is not model.model.embed_tokens.weight:
        model.lm_head.weight.data = model.lm_head.weight.data[ids]
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    return out


def bin_only(directory: Path, out: Path) -> Path:
    """The same weights saved only as `pytorch_model.bin` (transformers 5 itself writes safetensors only)."""
    model = _load(directory)
    _save(model, directory, out)
    (out / "model.safetensors").unlink()
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, out / "pytorch_model.bin")
    return out


def with_decoy(directory: Path, decoy: Path, out: Path) -> Path:
    """The real weights as `pytorch_model.bin` beside an unrelated model's `model.safetensors`."""
    bin_only(directory, out)
    shutil.copy2(decoy / "model.safetensors", out / "model.safetensors")
    return out


def adapter_only(base: str, out: Path) -> Path:
    """A PEFT-style adapter folder: adapter_config.json naming `base`, adapter weights, no full weights."""
    out.mkdir(parents=True, exist_ok=True)
    config = f'{{"peft_type": "LORA", "base_model_name_or_path": "{base}", "r": 4, "target_modules": ["q_proj"]}}'
    (out / "adapter_config.json").write_text(config, "utf-8")
    save_file(
        {"base_model.model.layers.0.q_proj.lora_A.weight": torch.zeros(4, 8)}, str(out / "adapter_model.safetensors")
    )
    return out
