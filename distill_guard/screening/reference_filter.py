"""Which of the student's own samples the reference keeps: the filter the screened data was produced with.

The null compares the data with the student's own samples for the same prompts. When the data went
through a filter (the paper's number filter), unfiltered self-samples differ from it by the filter
alone, which swamps any trait (docs/screening.md, LM results); the reference must be drawn through
the same filter. `auto` picks the paper's filter when every completion passes it, else none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from distill_guard.screening.number_filter import passes_filter

Accept = Callable[[str], bool]
"""accept(completion_text): whether a self-sample would have passed the data's filter."""

NAMED_FILTERS: dict[str, Accept | None] = {"none": None, "number-sequences": passes_filter}
FILTER_NAMES = ("auto", *NAMED_FILTERS)


def resolve_filter(choice: str | Accept | None, completions: Sequence[str] | None) -> tuple[str, Accept | None]:
    """(name recorded in the report, the predicate) for a filter name, a predicate, or None (no filter)."""
    if choice is None:
        return "none", None
    if callable(choice):
        return getattr(choice, "__name__", "custom"), choice
    if choice == "auto":
        numbers = completions is not None and len(completions) > 0 and all(passes_filter(c) for c in completions)
        choice = "number-sequences" if numbers else "none"
    if choice not in NAMED_FILTERS:
        raise ValueError(f"unknown reference filter {choice!r}; known: {', '.join(FILTER_NAMES)}")
    return choice, NAMED_FILTERS[choice]
