"""A probe ready to run during training: one per `probes.suites` entry of a policy.

`PreparedProbe.run` is the single entry point the callback and the CLI use. It hides the model's
wrappers, the distributed sharding and the state a kind keeps from its baseline (`Resumable`);
which scorer a suite gets is the kind table's business (`kinds/registry.py`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from torch import nn

from distill_guard.dist import debug_collectives, gather_objects, require_equal_counts, shard_bounds
from distill_guard.errors import DistillGuardError
from distill_guard.policy.load import LoadedPolicy
from distill_guard.policy.probe_suite import LoadedSuite
from distill_guard.policy.schema import SuiteRef
from distill_guard.policy.semantics import suite_label
from distill_guard.probes.kinds import ProbeScorer, Resumable, WholeModelScorer
from distill_guard.probes.kinds.answers import AnswerScorer, ItemAnswers
from distill_guard.probes.kinds.preference import panel_from_suite
from distill_guard.probes.kinds.registry import make_scorer
from distill_guard.probes.model_access import counting_forwards, probing, unwrap
from distill_guard.probes.result import ProbeResult
from distill_guard.probes.suite_sources import load_suite_reference


class PreparedProbe:
    """One suite, resolved and ready; `run` scores a model and leaves it exactly as found."""

    def __init__(self, ref: SuiteRef, suite: LoadedSuite, *, label: str | None = None) -> None:
        self.ref = ref
        self.suite = suite
        self.label = label or suite_label(ref)
        self.scorer = panel_from_suite(suite) if ref.panel else make_scorer(suite, ref.target)
        self.kind: str = self.scorer.kind
        self.trait: str | None = self.scorer.trait

    @property
    def watched(self) -> int:
        """How many candidates each look tests: all of a panel's, else the one target."""
        return len(getattr(self.scorer, "candidates", ())) if self.ref.panel else 1

    def run(self, model: nn.Module, tokenizer: Any, *, max_tokens_per_batch: int) -> ProbeResult:
        """Score every item; in a distributed run every rank scores a shard and gets the full result."""
        started = time.perf_counter()
        with probing(unwrap(model)) as inner, counting_forwards(inner) as forwards:
            outcome = self._guarded(inner, tokenizer, max_tokens_per_batch)
        outcomes = gather_objects((*outcome, forwards[0]))
        failures = [f"rank {r}: {o[1]}" for r, o in enumerate(outcomes) if o[0] == "error"]
        if failures:
            raise DistillGuardError(f"probe '{self.label}' failed: " + "; ".join(failures))
        if debug_collectives():
            require_equal_counts(f"probe '{self.label}'", [o[2] for o in outcomes])
        answers: list[ItemAnswers] = []
        if isinstance(self.scorer, WholeModelScorer):
            ids, scores = outcomes[0][1]  # every rank scored the whole model; rank 0's scores count
        else:
            ids = self.scorer.item_ids()
            scored = [s for o in outcomes for s in o[1]]
            answers = [s for s in scored if isinstance(s, ItemAnswers)]
            scores = [s.share if isinstance(s, ItemAnswers) else s for s in scored]
        return ProbeResult(
            suite=self.label,
            kind=self.kind,
            trait=self.trait,
            item_ids=tuple(ids),
            item_scores=tuple(scores),
            is_probability=self.scorer.is_probability,
            duration_seconds=time.perf_counter() - started,
            extra={"suite_name": self.suite.name, "source": self.ref.use or self.ref.path},
            candidates=getattr(self.scorer, "candidates", ()),
            answer_logprobs=tuple(a.logprobs for a in answers),
            answer_is_trait=tuple(a.is_trait for a in answers),
        )

    def baseline(
        self, model: nn.Module, tokenizer: Any, *, max_tokens_per_batch: int, calibrate_noise: bool
    ) -> tuple[ProbeResult, ProbeResult | None]:
        """The step-0 result, and with `calibrate_noise` a second run under another batch layout.

        The two differ only by numerical jitter (padding, batch composition), which is what the
        drift monitor's noise floor is measured from.
        """
        result = self.run(model, tokenizer, max_tokens_per_batch=max_tokens_per_batch)
        if not calibrate_noise:
            return result, None
        return result, self.run(model, tokenizer, max_tokens_per_batch=max(64, max_tokens_per_batch // 4))

    def _guarded(self, model: nn.Module, tokenizer: Any, budget: int) -> tuple[str, Any]:
        """Score this rank's part; a failure is returned, not raised, so no rank is left waiting."""
        try:
            if isinstance(self.scorer, WholeModelScorer):
                return ("ok", self.scorer.score_whole_model(model, tokenizer))
            return ("ok", self._score_shard(self.scorer, model, tokenizer, budget))
        except DistillGuardError as exc:
            return ("error", str(exc))
        except Exception as exc:  # any crash must reach every rank, or the others hang in the gather
            return ("error", f"{type(exc).__name__}: {exc}")

    @staticmethod
    def _score_shard(
        scorer: ProbeScorer, model: nn.Module, tokenizer: Any, budget: int
    ) -> list[float] | list[ItemAnswers]:
        """This rank's items, padded by repeating one so every rank runs the same forwards.

        Candidate-answer kinds return each item's candidate log-probabilities too (specific drift).
        """
        n = len(scorer.item_ids())
        start, stop, per_rank = shard_bounds(n)
        local = list(range(start, stop))
        padded = local + [local[-1] if local else n - 1] * (per_rank - len(local))
        if isinstance(scorer, AnswerScorer):
            return scorer.score_answers(model, tokenizer, padded, max_tokens_per_batch=budget)[: len(local)]
        return scorer.score(model, tokenizer, padded, max_tokens_per_batch=budget)[: len(local)]

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state (e.g. the activation direction) for trainer_state.json."""
        state = self.scorer.state_dict() if isinstance(self.scorer, Resumable) else {}
        return {"label": self.label, "kind": self.kind, **state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("kind", self.kind) != self.kind:
            raise DistillGuardError(f"probe '{self.label}': saved state is for a {state['kind']} probe")
        if isinstance(self.scorer, Resumable):
            self.scorer.load_state_dict({k: v for k, v in state.items() if k not in {"label", "kind"}})


def prepare_probe(ref: SuiteRef, *, relative_to: Path | None = None) -> PreparedProbe:
    source = ref.use if ref.use is not None else ref.path
    assert source is not None
    return PreparedProbe(ref, load_suite_reference(source, relative_to=relative_to))


def prepare_probes(loaded: LoadedPolicy) -> list[PreparedProbe]:
    """One PreparedProbe per `probes.suites` entry, in policy order."""
    return [prepare_probe(ref, relative_to=loaded.path.parent) for ref in loaded.policy.probes.suites]
