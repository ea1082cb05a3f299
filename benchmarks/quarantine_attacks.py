"""Function-preserving and near-function-preserving edits of a halted checkpoint against its registry entry.

The unit is one weight matrix of the entry (what a halt registers: 2 AdamW steps at lr 1e-3 on the
tiny Llama, matrices that moved from the base). For each edited copy: how many of the entry's
matrices still find a matrix within TOLERANCE (a folder matches at MATCH_FRACTION), and the largest
logit difference from the halted model on fixed token ids (how much the edit changed the function).

    nice -n 10 python benchmarks/quarantine_attacks.py   # about 20 s
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    Phi3Config,
    Phi3ForCausalLM,
    PreTrainedModel,
)

from distill_guard.provenance.quarantine_registry import (
    MATCH_FRACTION,
    RegistryEntry,
    fingerprint_module,
    register,
)
from distill_guard.provenance.quarantine_registry import fingerprint_folder as fingerprint
from distill_guard.scenarios import disguises, tiny_lm

Edit = Callable[[PreTrainedModel], PreTrainedModel]
GENERATOR = torch.Generator().manual_seed(disguises.DISGUISE_SEED)


def _factors(count: int) -> torch.Tensor:
    """Per-unit scales in [0.5, 2]."""
    return 0.5 + 1.5 * torch.rand(count, generator=GENERATOR)


@torch.no_grad()
def _rows_against_columns(
    model: PreTrainedModel, pick: Callable[[torch.nn.Module], tuple[Any, Any]]
) -> PreTrainedModel:
    """Each row of the first matrix x c, the column of the second it feeds / c, in every layer."""
    for layer in model.model.layers:
        rows, columns = pick(layer)
        c = _factors(rows.weight.shape[0])
        rows.weight *= c[:, None]
        columns.weight /= c[None, :]
    return model


def mlp_rescaled(model: PreTrainedModel) -> PreTrainedModel:
    """Each MLP unit's up-projection row x c, its down-projection column / c."""
    return _rows_against_columns(model, lambda layer: (layer.mlp.up_proj, layer.mlp.down_proj))


def value_rescaled(model: PreTrainedModel) -> PreTrainedModel:
    """Each value row x c, the output-projection column it feeds / c."""
    return _rows_against_columns(model, lambda layer: (layer.self_attn.v_proj, layer.self_attn.o_proj))


@torch.no_grad()
def query_rescaled(model: PreTrainedModel) -> PreTrainedModel:
    """Query rows x c, key rows / c, the same c for both dimensions RoPE rotates together."""
    head = model.config.hidden_size // model.config.num_attention_heads
    for layer in model.model.layers:
        attention = layer.self_attn
        pairs = _factors(attention.q_proj.weight.shape[0] // 2).reshape(-1, head // 2)
        c = torch.cat([pairs, pairs], dim=1).reshape(-1)  # rotate_half pairs dimension i with i + head/2
        attention.q_proj.weight *= c[:, None]
        attention.k_proj.weight /= c[:, None]
    return model


def unit_rescaled(model: PreTrainedModel) -> PreTrainedModel:
    return query_rescaled(value_rescaled(mlp_rescaled(model)))


@torch.no_grad()
def residual_scaled(model: PreTrainedModel, factor: float = 3.0) -> PreTrainedModel:
    """Everything written to the residual stream x factor: RMSNorm divides it out again."""
    model.model.embed_tokens.weight *= factor
    for layer in model.model.layers:
        layer.self_attn.o_proj.weight *= factor
        layer.mlp.down_proj.weight *= factor
    return model


def second_layer_from(other: Path) -> Edit:
    """The second decoder layer replaced by another init's: half of the entry's matrices kept."""

    def edit(model: PreTrainedModel) -> PreTrainedModel:
        model.model.layers[1].load_state_dict(AutoModelForCausalLM.from_pretrained(other).model.layers[1].state_dict())
        return model

    return edit


def first_layer_only(model: PreTrainedModel) -> PreTrainedModel:
    model.model.layers = model.model.layers[:1]
    model.config.num_hidden_layers = 1
    return model


@torch.no_grad()
def gains_refolded(model: PreTrainedModel) -> PreTrainedModel:
    """Each RMSNorm gain times s per channel, the input columns of the matrices it feeds divided by s."""
    body = model.model
    for layer in body.layers:
        attention, mlp = layer.self_attn, layer.mlp
        for norm, fed in (
            (layer.input_layernorm, (attention.q_proj, attention.k_proj, attention.v_proj)),
            (layer.post_attention_layernorm, (mlp.gate_proj, mlp.up_proj)),
        ):
            s = _factors(model.config.hidden_size)
            norm.weight *= s
            for linear in fed:
                linear.weight /= s[None, :]
    s = _factors(model.config.hidden_size)
    body.norm.weight *= s
    model.lm_head.weight /= s[None, :]
    return model


@torch.no_grad()
def rotated(model: PreTrainedModel) -> PreTrainedModel:
    """Norm gains folded into the next matrices, then the residual stream rotated by a random orthogonal Q."""
    body, size = model.model, model.config.hidden_size
    readers = [(layer.input_layernorm, ("q_proj", "k_proj", "v_proj"), layer.self_attn) for layer in body.layers]
    readers += [(layer.post_attention_layernorm, ("gate_proj", "up_proj"), layer.mlp) for layer in body.layers]
    q, _ = torch.linalg.qr(torch.randn(size, size, generator=GENERATOR))
    for norm, names, block in readers:
        for name in names:
            linear = getattr(block, name).weight
            linear.copy_(linear * norm.weight[None, :] @ q)
        norm.weight.fill_(1.0)
    model.lm_head.weight.copy_(model.lm_head.weight * body.norm.weight[None, :] @ q)
    body.norm.weight.fill_(1.0)
    body.embed_tokens.weight.copy_(body.embed_tokens.weight @ q)
    for layer in body.layers:
        for linear in (layer.self_attn.o_proj.weight, layer.mlp.down_proj.weight):
            linear.copy_(q.T @ linear)
    return model


@torch.no_grad()
def residual_zero_padded(model: PreTrainedModel, extra: int = 16) -> PreTrainedModel:
    """The residual stream widened by `extra` zero channels, norm gains scaled so RMSNorm sees the same."""
    config = model.config.to_dict()
    size = config["hidden_size"]
    head = size // config["num_attention_heads"]
    wide = LlamaForCausalLM(LlamaConfig(**{**config, "hidden_size": size + extra, "head_dim": head})).eval()
    writers = ("o_proj", "down_proj")
    padded = {}
    for name, tensor in model.state_dict().items():
        if tensor.dim() == 1:  # a norm gain: mean of squares over size + extra channels
            padded[name] = torch.cat([tensor * (size / (size + extra)) ** 0.5, torch.zeros(extra)])
        elif any(w in name for w in writers):
            padded[name] = torch.cat([tensor, torch.zeros(extra, tensor.shape[1])])
        else:
            padded[name] = torch.cat([tensor, torch.zeros(tensor.shape[0], extra)], dim=1)
    wide.load_state_dict(padded)
    return wide


FUSED = {"qkv_proj": ("q_proj", "k_proj", "v_proj"), "gate_up_proj": ("gate_proj", "up_proj")}
LLAMA_ONLY = ("model_type", "architectures", "head_dim", "mlp_bias", "attention_bias", "pretraining_tp")


@torch.no_grad()
def fused_as_phi3(model: PreTrainedModel) -> PreTrainedModel:
    """Re-saved as `Phi3ForCausalLM`: query, key and value in one matrix, gate and up in another."""
    fields = {k: v for k, v in model.config.to_dict().items() if k not in LLAMA_ONLY}
    phi3 = Phi3ForCausalLM(Phi3Config(**fields, resid_pdrop=0.0, embd_pdrop=0.0)).eval()
    state = model.state_dict()
    parts = {f"{n}.weight" for names in FUSED.values() for n in names}
    fused = {k: v for k, v in state.items() if not any(k.endswith(p) for p in parts)}
    for prefix in {k.rsplit(".", 2)[0] for k in state if k.endswith(tuple(parts))}:
        for name, names in FUSED.items():
            if f"{prefix}.{names[0]}.weight" in state:
                fused[f"{prefix}.{name}.weight"] = torch.cat([state[f"{prefix}.{n}.weight"] for n in names])
    phi3.load_state_dict(fused)
    return phi3


def rounded_to(dtype: torch.dtype) -> Edit:
    @torch.no_grad()
    def edit(model: PreTrainedModel) -> PreTrainedModel:
        for parameter in model.parameters():
            parameter.copy_(parameter.to(dtype).float())
        return model

    return edit


def _row(name: str, entry: RegistryEntry, model: PreTrainedModel, halted: Path) -> str:
    ids = torch.randint(4, 500, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        change = float((model(ids).logits - AutoModelForCausalLM.from_pretrained(halted)(ids).logits).abs().max())
    shared = entry.shared_with(fingerprint_module(model))
    verdict = "refused" if shared >= MATCH_FRACTION * len(entry.matrices) else "**evades**"
    return f"| {name} | {shared}/{len(entry.matrices)} | {verdict} | {change:.1e} |"


def main() -> None:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        base = tiny_lm.make_tiny_checkpoint(work / "base", seed=0)
        halted = disguises.fine_tuned(base, work / "halted", steps=2, lr=1e-3, batch=4)
        other = tiny_lm.make_tiny_checkpoint(work / "other", seed=1)
        start = fingerprint(base)
        entry = register(work / "registry.jsonl", halted, run_id="b", step=2, start=start)
        edits: dict[str, Edit] = {
            "halted, unedited": lambda m: m,
            "MLP units rescaled (up rows x c, down columns / c)": mlp_rescaled,
            "value rows x c, output columns / c": value_rescaled,
            "query x c, key / c per RoPE pair": query_rescaled,
            "the residual stream x3 (embedding, output and down projections)": residual_scaled,
            "per-unit rescaling (the three above)": unit_rescaled,
            "RMSNorm gains against the columns they feed, per channel": gains_refolded,
            "both of the above": lambda m: gains_refolded(unit_rescaled(m)),
            "gains folded, residual stream rotated (QuaRot)": rotated,
            "residual stream padded with 16 zero channels": residual_zero_padded,
            "query/key/value and gate/up fused (Phi-3 layout)": fused_as_phi3,
            "rounded to float8 e4m3": rounded_to(torch.float8_e4m3fn),
            "rounded to float8 e5m2": rounded_to(torch.float8_e5m2),
            "pruned to its first decoder layer": first_layer_only,
            "second decoder layer from another init": second_layer_from(other),
        }
        print(f"entry: {len(entry.matrices)} matrices; a copy matches at {MATCH_FRACTION:.0%}\n")
        print("| edit of the halted checkpoint | entry matrices matched | registry | max logit change |")
        print("|---|---|---|---|")
        for name, edit in edits.items():
            print(_row(name, entry, edit(AutoModelForCausalLM.from_pretrained(halted).eval()), halted), flush=True)


if __name__ == "__main__":
    main()
