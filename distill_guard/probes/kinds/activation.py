"""`activation`: a persona-vector style trait direction, fixed at baseline; score = position along it.

The direction is the mean difference of last-prompt-token hidden states between questions asked
under a trait-eliciting and a trait-suppressing instruction, at one layer; its sign is fixed by that
contrast (eliciting minus suppressing). It is measured once, on the model as it is before training,
and then kept (and saved with the trainer state). A raw projection has an arbitrary origin and
units that differ per model and layer, so the score is centred on the baseline (the plain questions'
mean projection before training is 0) and measured in units of the baseline contrast (1.0 = the
whole distance between the eliciting and the suppressing persona): a drift of +0.2 means "a fifth
of the way towards the persona that loves the target", on any model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from distill_guard.errors import DistillGuardError
from distill_guard.policy.probe_suite import ActivationSpec, LoadedSuite
from distill_guard.probes.engine import BatchPlan, Query, last_token_states
from distill_guard.probes.model_access import pad_token_id
from distill_guard.probes.prompting import Formatter


def layer_count(model: nn.Module) -> int:
    config = getattr(model, "config", None)
    count = getattr(config, "num_hidden_layers", None)
    if count is None:
        text_config = getattr(config, "text_config", None)
        count = getattr(text_config, "num_hidden_layers", None)
    if count is None:
        raise DistillGuardError("activation probe: the model config has no num_hidden_layers; set `layer` explicitly")
    return int(count)


class ActivationScorer:
    kind = "activation"
    is_probability = False

    def __init__(self, spec: ActivationSpec, target: str | None) -> None:
        target = target or spec.target
        needs_target = any("{target}" in p.elicit + p.suppress for p in spec.pairs)
        if needs_target and not target:
            raise DistillGuardError("this activation suite's instructions use {target}: set `target`")
        self.spec = spec
        self.trait = target
        self.pairs = [(p.elicit.format(target=target), p.suppress.format(target=target)) for p in spec.pairs]
        self.direction: torch.Tensor | None = None
        self.layer: int | None = None
        self.origin = 0.0  # baseline mean projection of the plain questions
        self.unit = 1.0  # baseline distance between the eliciting and suppressing means

    def item_ids(self) -> list[str]:
        return [f"question-{i:03d}" for i in range(len(self.spec.questions))]

    def _encode(self, formatter: Formatter, system: str | None) -> list[tuple[int, ...]]:
        return [tuple(formatter.encode_prompt(formatter.prompt_text(q, system=system))) for q in self.spec.questions]

    def _resolve_layer(self, model: nn.Module) -> int:
        count = layer_count(model)
        layer = count // 2 if self.spec.layer == "middle" else self.spec.layer
        if not -(count + 1) <= layer <= count:
            raise DistillGuardError(f"activation probe: layer {layer} is outside 0..{count} for this model")
        return layer % (count + 1)

    def _states(
        self,
        model: nn.Module,
        tokenizer: Any,
        prompts: Sequence[tuple[int, ...]],
        items: Sequence[int],
        budget: int,
    ) -> torch.Tensor:
        """States of `prompts[items]`, batched by a plan made for all `prompts` (the same on every rank)."""
        assert self.layer is not None
        plan = BatchPlan.for_queries([Query(p) for p in prompts], budget)
        return last_token_states(model, [prompts[i] for i in items], self.layer, plan, pad_token_id(tokenizer))

    def fit_direction(self, model: nn.Module, tokenizer: Any, *, max_tokens_per_batch: int) -> None:
        """Measure the trait direction, origin and unit on this model (at baseline, before any update).

        Every rank runs all of these prompts (not a shard), so the forwards match across ranks.
        """
        self.layer = self._resolve_layer(model)
        formatter = Formatter(tokenizer, self.spec.plain_template, self.spec.system)
        elicit, suppress = [], []
        for elicit_text, suppress_text in self.pairs:
            elicit.extend(self._encode(formatter, elicit_text))
            suppress.extend(self._encode(formatter, suppress_text))
        plain = self._encode(formatter, self.spec.system)
        prompts = elicit + suppress + plain
        states = self._states(model, tokenizer, prompts, range(len(prompts)), max_tokens_per_batch)
        n_elicit, n_suppress = len(elicit), len(suppress)
        difference = states[:n_elicit].mean(0) - states[n_elicit : n_elicit + n_suppress].mean(0)
        norm = difference.norm()
        if not torch.isfinite(norm) or norm == 0:
            raise DistillGuardError("activation probe: the eliciting and suppressing instructions give the same state")
        self.direction = difference / norm
        self.unit = float(norm)
        self.origin = float((states[n_elicit + n_suppress :] @ self.direction).mean())

    def score(
        self, model: nn.Module, tokenizer: Any, items: Sequence[int], *, max_tokens_per_batch: int
    ) -> list[float]:
        if self.direction is None:
            self.fit_direction(model, tokenizer, max_tokens_per_batch=max_tokens_per_batch)
        assert self.direction is not None
        questions = self._encode(Formatter(tokenizer, self.spec.plain_template, self.spec.system), self.spec.system)
        states = self._states(model, tokenizer, questions, items, max_tokens_per_batch)
        return ((states @ self.direction - self.origin) / self.unit).tolist()

    def state_dict(self) -> dict[str, Any]:
        if self.direction is None:
            return {}
        return {"layer": self.layer, "direction": self.direction.tolist(), "origin": self.origin, "unit": self.unit}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            self.direction, self.layer, self.origin, self.unit = None, None, 0.0, 1.0
            return
        if "origin" not in state or "unit" not in state:
            raise DistillGuardError(
                "activation probe: this checkpoint was saved by an older distill-guard whose activation scores "
                "were raw projections; its baseline is in other units, so resume with a fresh run"
            )
        self.layer = int(state["layer"])
        self.direction = torch.tensor([float(x) for x in state["direction"]], dtype=torch.float32)
        self.origin, self.unit = float(state["origin"]), float(state["unit"])


def activation_from_suite(suite: LoadedSuite, target: str | None) -> ActivationScorer:
    return ActivationScorer(suite.spec, target)
