"""The rows of a manifest's data files, and an order-free digest of what a dataset holds, to bind the two.

A clearance is only as good as the link between the data shown to the gate and the files whose
hashes the manifest lists. This module takes those files as rows (read by `row_files`) and
digests every column as a *multiset* of its values: shuffling rows keeps the digest, while a changed,
added or removed value changes it. Text and numbers are cast to one type per kind and sorted in
Arrow (integer widths and string types that differ between loaders do not matter); other values
are compared as sorted JSON.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from distill_guard.provenance.content_digest import feed_array
from distill_guard.provenance.record_column import is_hf_dataset

BATCH_ROWS = 65_536


@dataclass(frozen=True)
class RowContent:
    """Row count plus, per column, a digest of the sorted JSON values (independent of row order)."""

    num_rows: int
    columns: tuple[tuple[str, str], ...]

    def mismatch(self, files: RowContent) -> str | None:
        """Why these rows are not the files' rows; None when every column both have agrees."""
        if self.num_rows != files.num_rows:
            return f"the dataset has {self.num_rows} rows, the manifest's verified files hold {files.num_rows}"
        theirs = dict(files.columns)
        changed = [name for name, digest in self.columns if name in theirs and theirs[name] != digest]
        if changed:
            return f"values of column(s) {', '.join(changed)} differ from the manifest's verified files"
        return None

    def shared_columns(self, files: RowContent) -> list[str]:
        theirs = dict(files.columns)
        return [name for name, _ in self.columns if name in theirs]


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _canonical(kind: pa.DataType) -> pa.DataType | None:
    """The one type values of this kind are compared as, or None when they go through JSON."""
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return pa.large_string()
    if pa.types.is_integer(kind):
        return pa.int64()
    if pa.types.is_floating(kind):
        return pa.float64()
    return pa.bool_() if pa.types.is_boolean(kind) else None


def _sorted_digest(column: pa.ChunkedArray, kind: pa.DataType) -> str:
    values = column.combine_chunks().cast(kind)
    digest = hashlib.sha256(b"sorted-arrow")
    feed_array(digest, pc.take(values, pc.sort_indices(values)))
    return digest.hexdigest()


def _column_digest(values: Iterable[Any]) -> str:
    encoded = sorted(json.dumps(v, sort_keys=True, default=_plain) for v in values)
    digest = hashlib.sha256()
    for item in encoded:
        raw = item.encode("utf-8")
        digest.update(len(raw).to_bytes(8, "little") + raw)
    return digest.hexdigest()


def _arrow_columns(table: pa.Table) -> Iterator[tuple[str, str]]:
    for name in table.column_names:
        column = table.column(name)
        kind = _canonical(column.type)
        if kind is not None:
            yield name, _sorted_digest(column, kind)
        else:
            batches = (column.slice(start, BATCH_ROWS).to_pylist() for start in range(0, len(column), BATCH_ROWS))
            yield name, _column_digest(v for batch in batches for v in batch)


def _rows_table(dataset: Any) -> pa.Table:
    """The Arrow rows a `datasets.Dataset` holds, in one take: after `select`/`shuffle` its rows are
    an indices mapping over the stored table (row-by-row slicing would be 100x slower)."""
    table = dataset.data.table.select(dataset.column_names)
    indices = dataset._indices  # the mapping select/shuffle keep; datasets has no public accessor
    return table if indices is None else table.take(indices.column(0))


def row_content(dataset: Any) -> RowContent | None:
    """Row content of a `datasets.Dataset`, `pyarrow.Table` or map-style dataset; None for a stream.

    A `datasets.Dataset` is read in Arrow format, so a format transform cannot hide what it holds.
    """
    if is_hf_dataset(dataset):
        return RowContent(dataset.num_rows, tuple(sorted(_arrow_columns(_rows_table(dataset)))))
    if isinstance(dataset, pa.Table):
        return RowContent(dataset.num_rows, tuple(sorted(_arrow_columns(dataset))))
    if hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__") and not isinstance(dataset, (str, bytes)):
        items = [dataset[i] for i in range(len(dataset))]
        names = dict.fromkeys(k for item in items if isinstance(item, Mapping) for k in item)
        columns = [(str(n), [item.get(n) if isinstance(item, Mapping) else None for item in items]) for n in names]
        return RowContent(len(items), tuple(sorted((name, _column_digest(values)) for name, values in columns)))
    return None
