"""Row files (JSON Lines, JSON, Parquet, CSV) read as Arrow tables, and SFT prompt/completion rows from them.

One reader for every untrusted row file: the gate's manifest data files, the screen's data and its
trusted reference, so each is parsed, and refused, the same way.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from distill_guard.errors import DistillGuardError

ROW_FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")


def parse_rows(data: bytes | Path, suffix: str, where: Path) -> pa.Table:
    """One data file's rows; DistillGuardError naming the file when it is not a row file or is malformed."""
    source: Any = io.BytesIO(data) if isinstance(data, bytes) else str(data)
    try:
        if suffix == ".parquet":
            return pq.read_table(source)
        if suffix == ".csv":
            return pa_csv.read_csv(source)
        if suffix in (".jsonl", ".json"):
            return pa_json.read_json(source)
    except (pa.ArrowException, OSError) as exc:
        raise DistillGuardError(f"{where}: cannot read its rows: {exc}") from None
    kinds = ", ".join(ROW_FILE_SUFFIXES)
    raise DistillGuardError(f"{where}: not a row file ({kinds}), so data cannot be matched to it row by row")


def concat_rows(tables: list[pa.Table]) -> pa.Table:
    """Files in listed order as one table; columns missing from a file become nulls there."""
    if not tables:
        return pa.table({})
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except pa.ArrowException as exc:
        raise DistillGuardError(f"the data files' columns cannot be combined: {exc}") from None


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
