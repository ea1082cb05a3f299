"""Prompt/completion rows for the screen: from a dataset in memory, or from row files (data, a trusted reference)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from distill_guard.errors import DistillGuardError
from distill_guard.provenance.file_rows import ROW_FILE_SUFFIXES, concat_rows, parse_rows

ROW_COLUMNS = ("prompt", "completion")


def prompt_completion_rows(dataset: Any) -> list[dict[str, str]]:
    """The rows of a datasets.Dataset (or a list of dicts) with text `prompt` and `completion` columns."""
    columns = getattr(dataset, "column_names", None)
    if columns is not None:
        missing = [c for c in ROW_COLUMNS if c not in columns]
        if missing:
            raise DistillGuardError(
                f"screening needs text columns prompt and completion; missing: {', '.join(missing)}"
            )
        prompts, completions = (_values(dataset[c]) for c in ROW_COLUMNS)
        rows = [{"prompt": p, "completion": c} for p, c in zip(prompts, completions, strict=True)]
    elif isinstance(dataset, Sequence):
        rows = [dict(r) for r in dataset]
    else:
        raise DistillGuardError(f"screening cannot read rows from a {type(dataset).__name__}")
    for i, row in enumerate(rows):
        if not all(isinstance(row.get(c), str) for c in ROW_COLUMNS):
            raise DistillGuardError(f"row {i}: screening needs text 'prompt' and 'completion' values")
    return rows


def _values(column: Any) -> list[Any]:
    """A column as Python values (an Arrow column converts; a datasets column already iterates as values)."""
    return column.to_pylist() if hasattr(column, "to_pylist") else list(column)


def read_row_files(paths: Sequence[Path]) -> list[dict[str, str]]:
    """The prompt/completion rows of row files, in order; a bad file is a DistillGuardError naming it."""
    for path in paths:
        if path.suffix not in ROW_FILE_SUFFIXES:
            raise DistillGuardError(f"{path}: not a row file ({', '.join(ROW_FILE_SUFFIXES)})")
    try:
        return prompt_completion_rows(concat_rows([parse_rows(p, p.suffix, p) for p in paths]))
    except DistillGuardError as exc:
        raise DistillGuardError(f"{', '.join(map(str, paths))}: {exc}") from None
