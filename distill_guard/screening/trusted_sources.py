"""Checks on distinct trusted sources before the canary trains on them (docs/screening.md, fifth note).

The rank test's bound, P(flag) <= 1/(n+1) per probe for data exchangeable with the sources, needs
n sources that are independent draws like the data: a source that *is* the data (or mostly) ties
with it and can never be beaten, so it would silently turn a flag into a pass; two copies of one
source count as one; a source smaller than the sample the data's canary trains on is cycled more
and is not drawn like it. Each is refused with the source's number, so the screen fails closed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from distill_guard.errors import DistillGuardError
from distill_guard.screening.report import ScreenSettings

MAX_SHARED = 0.5  # a source sharing this share of its rows with the data or another source is not distinct


def check_sources(dataset: Any, trusted: Any, sources: Sequence[Any], settings: ScreenSettings) -> None:
    """Refuse sources the rank test cannot use: fewer than 2, with a single trusted dataset, without a canary,
    too small, or sharing most of their rows with the data or with each other."""
    if not sources:
        return
    if len(sources) < 2:
        raise DistillGuardError("trusted sources: at least 2 distinct datasets (one trusted dataset is `trusted`)")
    if trusted is not None:
        raise DistillGuardError("give either one trusted dataset or distinct trusted sources, not both")
    if not settings.canary_steps:
        raise DistillGuardError("trusted sources are a null for the canary: set canary_steps > 0")
    needed = min(len(dataset), settings.minibatches * settings.batch_size)
    for number, source in enumerate(sources, 1):
        if len(source) < needed:
            raise DistillGuardError(
                f"trusted source {number} has {len(source)} rows; the data's canary trains on {needed} "
                "(minibatches x batch size): a smaller source is cycled more and is not drawn like the data"
            )
    data_rows = _rows(dataset)
    source_rows = [_rows(s) for s in sources]
    for number, rows in enumerate(source_rows, 1):
        if rows is not None and data_rows is not None and _shared(rows, data_rows) >= MAX_SHARED:
            raise DistillGuardError(
                f"trusted source {number} shares {_shared(rows, data_rows):.0%} of its rows with the data: "
                "a source must be independent of the data it is a null for (it would tie with it and never be beaten)"
            )
        for other, earlier in enumerate(source_rows[: number - 1], 1):
            if rows is not None and earlier is not None and _shared(rows, earlier) >= MAX_SHARED:
                raise DistillGuardError(
                    f"trusted sources {other} and {number} share {_shared(rows, earlier):.0%} of their rows: "
                    "they are not distinct (the same source twice weakens the test's bound)"
                )


def _rows(data: Any) -> Counter[tuple[str, str]] | None:
    """The prompt/completion rows of row data as a multiset; None for data without text rows (digits)."""
    rows = getattr(data, "rows", None)
    return None if rows is None else Counter((r["prompt"], r["completion"]) for r in rows)


def _shared(rows: Counter[tuple[str, str]], other: Counter[tuple[str, str]]) -> float:
    return sum((rows & other).values()) / max(1, sum(rows.values()))
