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
import pyarrow.parquet as pq

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


RECORD_FILE_SUFFIXES = (".jsonl", ".parquet")


def read_record_column(path: Path, column: str) -> pa.ChunkedArray:
    """`column` of a JSON Lines or Parquet file as text, parsed by Arrow; nulls where rows lack it."""
    try:
        if path.suffix == ".parquet":
            if column not in pq.read_schema(path).names:
                return pa.chunked_array([pa.nulls(pq.ParquetFile(path).metadata.num_rows, pa.string())])
            values = pq.read_table(path, columns=[column]).column(column)
        else:
            options = pa_json.ParseOptions(
                explicit_schema=pa.schema([(column, pa.string())]), unexpected_field_behavior="ignore"
            )
            values = pa_json.read_json(path, parse_options=options).column(column)
    except pa.ArrowException as exc:
        raise DistillGuardError(f"{path}: cannot read column '{column}': {exc}") from None
    if not pa.types.is_string(values.type):
        raise DistillGuardError(f"{path}: column '{column}' holds {values.type}; expected generator ids as text")
    _refuse_hidden_characters(path, column, values)
    return values


def _refuse_hidden_characters(path: Path, column: str, values: pa.ChunkedArray) -> None:
    """A generator id with terminal escapes, bidi overrides or zero-width characters reads as another id."""
    try:
        values.validate(full=True)
    except pa.ArrowInvalid:
        raise DistillGuardError(f"{path}: '{column}' holds bytes that are not UTF-8 text") from None
    hidden = pc.invert(pc.utf8_is_printable(values)).fill_null(False)
    if pc.any(hidden).as_py():
        row = int(np.flatnonzero(hidden.to_numpy(zero_copy_only=False))[0])
        shown = values[row].as_py().encode("unicode_escape").decode("ascii")
        raise DistillGuardError(
            f"{path}: row {row + 1}: '{column}' value '{shown}' holds control or invisible characters; "
            "generator ids must be plain visible text"
        )


def file_records(paths: list[Path], column: str) -> pa.Table:
    """The provenance column of the data files, rows in file order; no column when no row has one."""
    parts = [read_record_column(p, column) for p in paths if p.suffix in RECORD_FILE_SUFFIXES and p.is_file()]
    if all(part.null_count == len(part) for part in parts):
        return pa.table({})
    return pa.table({column: pa.chunked_array([c for part in parts for c in part.chunks], type=pa.string())})
