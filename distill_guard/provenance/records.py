"""Per-record provenance: a column naming each row's generator, grouped and filtered in Arrow.

Rows are never visited one by one in Python: the column is counted per distinct generator, rules
are decided once per generator, and the rows to keep become one index array (`Dataset.select`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from distill_guard.errors import DistillGuardError

MISSING = "(no provenance)"
MAX_GENERATORS = 10_000


def provenance_column(dataset: Any, column: str) -> pa.ChunkedArray | None:
    """The generator-id column of a `datasets.Dataset` or `pyarrow.Table`, or None when absent."""
    import datasets

    if isinstance(dataset, datasets.Dataset):
        if column not in dataset.column_names:
            return None
        values = dataset.select_columns([column]).with_format("arrow")[:].column(column)
    elif isinstance(dataset, pa.Table):
        if column not in dataset.column_names:
            return None
        values = dataset.column(column)
    else:
        return None
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        raise DistillGuardError(f"provenance column '{column}' holds {values.type}; expected generator ids as text")
    return values


def generator_counts(values: pa.ChunkedArray) -> dict[str, int]:
    """Rows per generator id; rows with a null or empty id are counted under MISSING."""
    distinct = pc.value_counts(values)
    if len(distinct) > MAX_GENERATORS:
        raise DistillGuardError(
            f"provenance column has {len(distinct)} distinct generator ids (limit {MAX_GENERATORS}); "
            "it should name generators, not individual records"
        )
    counts: dict[str, int] = {}
    for entry in distinct.to_pylist():
        key = entry["values"] or MISSING
        counts[key] = counts.get(key, 0) + entry["counts"]
    return counts


def rows_to_keep(values: pa.ChunkedArray, drop: set[str]) -> np.ndarray:
    """Indices of rows whose generator is not in `drop` (MISSING stands for null and empty ids)."""
    doomed = pc.is_in(values, value_set=pa.array(sorted(drop - {MISSING}), type=values.type))
    if MISSING in drop:
        blank = pc.or_kleene(pc.is_null(values), pc.equal(values, ""))
        doomed = pc.or_(pc.fill_null(doomed, False), pc.fill_null(blank, True))
    return np.flatnonzero(~doomed.fill_null(False).to_numpy(zero_copy_only=False))


def select_rows(dataset: Any, keep: np.ndarray) -> Any:
    import datasets

    if isinstance(dataset, datasets.Dataset):
        return dataset.select(keep)
    return dataset.take(pa.array(keep))


def read_jsonl_column(path: Path, column: str) -> pa.ChunkedArray | None:
    """Only `column` of a JSON Lines file, parsed by Arrow; None when no row has it."""
    options = pa_json.ParseOptions(
        explicit_schema=pa.schema([(column, pa.string())]), unexpected_field_behavior="ignore"
    )
    try:
        table = pa_json.read_json(path, parse_options=options)
    except pa.ArrowInvalid as exc:
        raise DistillGuardError(f"{path}: cannot read '{column}' from JSON Lines: {exc}") from None
    values = table.column(column)
    return None if values.null_count == len(values) else values


def jsonl_records(paths: list[Path], column: str) -> pa.Table:
    """The provenance column of all readable JSON Lines files as one table (no column if none has it)."""
    parts = [read_jsonl_column(p, column) for p in paths if p.suffix == ".jsonl" and p.is_file()]
    present = [p for p in parts if p is not None]
    if not present:
        return pa.table({})
    return pa.table({column: pa.chunked_array([c for part in present for c in part.chunks], type=pa.string())})
