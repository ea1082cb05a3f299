"""The data-collator boundary, checked where it can be: do the first batches hold the cleared tokens?

The gate clears a dataset; the trainer learns from what its `data_collator` makes of it. A collator
that pads, truncates or masks only ever emits token ids of the rows it was given (plus special
tokens); one that swaps in other text emits ids those rows do not hold. At train begin the
collator is run once on the first rows of the cleared dataset, with every random generator saved
and restored, so training is not perturbed, and the token ids of every `*input_ids` field of its
output must be among those rows' token ids and the tokenizer's special ids. A collator that
tokenizes raw text itself cannot be compared this way, and the check says so instead of deciding.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

FIRST_ROWS = 8


@dataclass(frozen=True)
class BatchCheck:
    """`foreign` lists token ids the collator produced that the cleared rows do not hold."""

    comparable: bool
    detail: str
    foreign: tuple[int, ...] = ()


def _token_ids(value: Any) -> Iterable[int]:
    if isinstance(value, torch.Tensor):
        yield from (int(v) for v in value.reshape(-1).tolist())
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _token_ids(item)
    elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        yield int(value)


def _id_fields(mapping: Mapping[str, Any]) -> list[str]:
    return [key for key in mapping if str(key).endswith("input_ids")]


def _collate_in_isolation(collate_fn: Callable[[list[Any]], Any], rows: list[Any]) -> Any:
    """Run the collator without moving any random generator the trainer will use."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            return collate_fn(rows)
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def check_first_batch(
    dataset: Any, collate_fn: Callable[[list[Any]], Any] | None, special_ids: Iterable[int]
) -> BatchCheck:
    """Compare the collator's first batch with the token ids of the rows it was built from."""
    if collate_fn is None or not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
        return BatchCheck(False, "no collator or no indexable dataset: batches were not checked")
    rows = [dataset[i] for i in range(min(FIRST_ROWS, len(dataset)))]
    if not rows or not all(isinstance(row, Mapping) for row in rows):
        return BatchCheck(False, "rows are not mappings: batches were not checked")
    cleared = {t for row in rows for key in _id_fields(row) for t in _token_ids(row[key])}
    if not cleared:
        return BatchCheck(False, "the cleared rows hold no token ids (the collator tokenizes): batches not checked")
    try:
        batch = _collate_in_isolation(collate_fn, rows)
    except Exception as exc:  # a collator failing here fails in training too; report, do not decide
        return BatchCheck(False, f"the collator failed on the first rows ({type(exc).__name__}: {exc})")
    if not isinstance(batch, Mapping) or not _id_fields(batch):
        return BatchCheck(False, "the collator's batch has no *input_ids field: batches were not checked")
    allowed = cleared | set(special_ids)
    produced = {t for key in _id_fields(batch) for t in _token_ids(batch[key])}
    foreign = tuple(sorted(produced - allowed))
    if foreign:
        shown = ", ".join(map(str, foreign[:10])) + (" ..." if len(foreign) > 10 else "")
        return BatchCheck(True, f"the collator's first batch holds token ids the cleared rows do not: {shown}", foreign)
    return BatchCheck(True, f"the collator's first batch holds only the first {len(rows)} cleared rows' token ids")
