"""Weight test: does a checkpoint share its initialisation with another one?

Fine-tuning moves weights a little; two independent initialisations are uncorrelated. An adversary
who wants a same-base teacher to pass renames tensors, permutes hidden units, adds noise or tokens,
re-labels the architecture, or hides the real weights behind a decoy file, so the test uses
statistics that survive those disguises (provenance/weight_statistics.py) on weights read without
trusting the folder (provenance/checkpoint_reading.py): same initialisation when either the
unit-pairing margin or the sampled-row correlation says so. When nothing comparable can be
read the relation is "unknown" with the reason, never silently absent.
Thresholds come from `benchmarks/weight_evidence.py` (table in docs/provenance.md).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import torch

from distill_guard.provenance import weight_statistics as stats
from distill_guard.provenance.checkpoint_reading import (
    CheckpointWeights,
    UnreadableCheckpoint,
    WeightSet,
    module_weights,
    read_checkpoint,
    read_vocabulary,
)

UNITS_SAME_INIT_AT_LEAST = 0.05
UNITS_INDEPENDENT_AT_MOST = 0.03
SAME_INIT_AT_LEAST = 0.1
INDEPENDENT_AT_MOST = 0.05
MIN_TENSORS = 2
MIN_SHARED_TOKENS = 64

InitRelation = Literal["same_init", "independent", "inconclusive", "unknown"]
_WORDS = {
    "same_init": "same initialisation",
    "independent": "independently initialised",
    "inconclusive": "inconclusive",
    "unknown": "unknown",
}
_PRECEDENCE: tuple[InitRelation, ...] = ("same_init", "unknown", "inconclusive", "independent")


@dataclass(frozen=True)
class WeightComparison:
    relation: InitRelation
    median_correlation: float | None
    tensors_compared: int
    unit_margin: float | None = None
    shared_tokens: int = 0
    reason: str | None = None
    seed: int | None = None

    def describe(self) -> str:
        if self.reason is not None and self.unit_margin is None and self.median_correlation is None:
            return f"weight test unknown: {self.reason}"
        units = "n/a" if self.unit_margin is None else f"{self.unit_margin:.3f}"
        rows = "n/a" if self.median_correlation is None else f"{self.median_correlation:.3f}"
        text = (
            f"weight test: {_WORDS[self.relation]} (unit-pairing margin {units} over "
            f"{self.shared_tokens} shared tokens; median sampled-row correlation {rows} over "
            f"{self.tensors_compared} weight matrices; seed {self.seed})"
        )
        return f"{text}; {self.reason}" if self.reason else text


@dataclass(frozen=True)
class TensorSource:
    """A model's weight sets (several when a folder's files disagree) and its vocabulary, if known."""

    sets: tuple[WeightSet, ...]
    vocabulary: dict[str, int] | None = None

    @classmethod
    def from_module(cls, module: torch.nn.Module) -> TensorSource:
        """The live module's weights; its vocabulary from the folder it was loaded from, when that is readable."""
        loaded_from = getattr(module, "name_or_path", None)
        vocabulary = None
        if isinstance(loaded_from, str) and loaded_from and Path(loaded_from).is_dir():
            try:
                vocabulary = read_vocabulary(Path(loaded_from))
            except UnreadableCheckpoint:
                vocabulary = None
        return cls((module_weights(module),), vocabulary)

    @classmethod
    def from_dir(cls, directory: Path) -> TensorSource | None:
        """None when the folder holds no readable full weights (e.g. a PEFT adapter only)."""
        source = read_source(directory)
        return source if isinstance(source, TensorSource) else None


def read_source(directory: Path) -> TensorSource | str:
    """The folder's weights and vocabulary, or why they cannot be compared."""
    return _source(directory, read_checkpoint(directory))


def _source(directory: Path, checkpoint: CheckpointWeights) -> TensorSource | str:
    if checkpoint.problem is not None:
        return checkpoint.problem
    try:
        vocabulary = read_vocabulary(directory)
    except UnreadableCheckpoint as error:
        return str(error)
    return TensorSource(checkpoint.sets, vocabulary)


def _units(a: WeightSet, b: WeightSet, vocab_a: dict | None, vocab_b: dict | None, seed: int) -> tuple[float, int]:
    """The highest unit-pairing margin over the vocabulary-sized matrices of each side, and the token count."""
    best: tuple[float, int] = (float("-inf"), 0)
    for name_a in stats.vocabulary_matrices(a.shapes):
        for name_b in stats.vocabulary_matrices(b.shapes):
            ids_a, ids_b = stats.shared_token_rows(vocab_a, vocab_b, a.shapes[name_a][0], b.shapes[name_b][0], seed)
            if len(ids_a) < MIN_SHARED_TOKENS:
                continue
            value = stats.unit_pairing_margin(a.rows(name_a, ids_a), b.rows(name_b, ids_b), seed)
            if value is not None and value > best[0]:
                best = (value, len(ids_a))
    return best


def _sampled_rows(a: WeightSet, b: WeightSet, seed: int) -> Iterator[float]:
    for position, (name_a, name_b) in enumerate(stats.matched_matrices(a.shapes, b.shapes)):
        rows = stats.sampled_rows(a.shapes[name_a], seed + position)
        value = stats.pearson(a.rows(name_a, rows), b.rows(name_b, rows))
        if value is not None:
            yield value


def _verdict(units: float | None, median: float | None, *, by_token_strings: bool) -> InitRelation:
    """Same when either statistic says so; independent only when both do and tokens were matched by string.

    Without both vocabularies, rows are aligned by token id: a match still proves a shared origin, but
    a miss may only mean the ids were shuffled (and the tokenizer withheld), so it cannot read independent.
    """
    votes = []
    if units is not None:
        votes.append((units >= UNITS_SAME_INIT_AT_LEAST, by_token_strings and units <= UNITS_INDEPENDENT_AT_MOST))
    if median is not None:
        votes.append((median >= SAME_INIT_AT_LEAST, median <= INDEPENDENT_AT_MOST))
    if not votes:
        return "unknown"
    if any(same for same, _ in votes):
        return "same_init"
    return "independent" if all(independent for _, independent in votes) else "inconclusive"


def _compare_sets(
    a: WeightSet, b: WeightSet, vocab_a: dict | None, vocab_b: dict | None, seed: int
) -> WeightComparison:
    units, tokens = _units(a, b, vocab_a, vocab_b, seed)
    units_value = units if tokens else None
    values = list(_sampled_rows(a, b, seed))
    median = stats.median(values) if len(values) >= MIN_TENSORS else None
    relation = _verdict(units_value, median, by_token_strings=vocab_a is not None and vocab_b is not None)
    reason = None
    if relation == "unknown":
        reason = (
            "no comparable weights: no two vocabulary matrices over enough shared tokens and fewer than "
            f"{MIN_TENSORS} matrices matched by name or shape, with varying values"
        )
    return WeightComparison(relation, median, len(values), units_value, tokens, reason, seed)


def compare_weights(a: TensorSource, b: TensorSource, seed: int | None = None) -> WeightComparison:
    """Every weight set of `a` against every one of `b`; a set that matches decides, so a decoy cannot."""
    seed = secrets.randbits(31) if seed is None else seed
    results = [
        (set_a.label, _compare_sets(set_a, set_b, a.vocabulary, b.vocabulary, seed))
        for set_a in a.sets
        for set_b in b.sets
    ]
    label, worst = min(results, key=lambda item: _PRECEDENCE.index(item[1].relation))
    if len(a.sets) > 1:
        labels = " and ".join(s.label for s in a.sets)
        note = f"{labels} hold different weights; each was compared, this is {label}"
        worst = replace(worst, reason=f"{worst.reason}; {note}" if worst.reason else note)
    return worst


def compare_checkpoint(
    teacher_dir: Path, student: TensorSource | None, seed: int | None = None, *, follow_adapter: bool = True
) -> WeightComparison:
    """The weight test of a teacher folder; "unknown" with the reason when either side cannot be read.

    An adapter-only folder is judged by its base when the base is a folder on this machine.
    """
    if student is None:
        return WeightComparison("unknown", None, 0, reason="the student's weights are not available to compare")
    checkpoint = read_checkpoint(teacher_dir)
    teacher = _source(teacher_dir, checkpoint)
    if not isinstance(teacher, str):
        return compare_weights(teacher, student, seed)
    base = checkpoint.adapter_base
    if follow_adapter and base is not None and Path(base).is_dir():
        through_base = compare_checkpoint(Path(base), student, seed, follow_adapter=False)
        note = f"{teacher}; its base folder was compared"
        return replace(through_base, reason=f"{note}: {through_base.reason}" if through_base.reason else note)
    if base is not None:
        teacher = f"{teacher}, which is not a folder here: pass the base checkpoint to compare it"
    return WeightComparison("unknown", None, 0, reason=teacher)
