"""Content digests that tie the data a trainer iterates to the data the gate cleared.

A content digest is the row count plus one sha256 per column over the column's *logical* content
(values, lengths and nulls; never raw Arrow buffers, whose slicing and padding vary). Per-column
hashes are what make Hugging Face Trainer work: it removes unused columns before the dataloader
exists, so the dataset seen at `on_train_begin` is a column subset of the cleared one. Matching
rule: same kind, same row count, at least one column, and every observed column was cleared with
the same hash. New rows, removed rows, reordered rows or changed values all fail the match.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

BATCH_ROWS = 65_536


@dataclass(frozen=True)
class ContentDigest:
    kind: Literal["arrow", "rows"]
    num_rows: int
    columns: tuple[tuple[str, str], ...]

    def describe(self) -> str:
        names = ", ".join(name for name, _ in self.columns)
        return f"{self.num_rows} rows, columns [{names}]"

    def mismatch(self, observed: ContentDigest) -> str | None:
        """Why `observed` is not (a column subset of) this cleared dataset; None when it is."""
        if observed.kind != self.kind:
            return f"cleared a {self.kind} dataset, the trainer iterates a {observed.kind} dataset"
        if observed.num_rows != self.num_rows:
            return f"cleared {self.num_rows} rows, the trainer iterates {observed.num_rows}"
        if not observed.columns:
            return "the trainer's dataset has no columns to compare"
        cleared = dict(self.columns)
        unknown = [name for name, _ in observed.columns if name not in cleared]
        if unknown:
            return f"columns never cleared: {', '.join(unknown)}"
        changed = [name for name, digest in observed.columns if cleared[name] != digest]
        if changed:
            return f"content differs in columns: {', '.join(changed)}"
        return None


def _frame(h: Any, tag: bytes, payload: bytes) -> None:
    h.update(tag + len(payload).to_bytes(8, "little") + payload)


def feed_array(h: Any, arr: pa.Array) -> None:
    """Hash an array's logical content; equal values give equal bytes whatever the buffer layout."""
    kind = arr.type
    _frame(h, b"T", str(kind).encode())
    _frame(h, b"L", len(arr).to_bytes(8, "little"))
    if arr.null_count:
        _frame(h, b"V", np.packbits(arr.is_valid().to_numpy(zero_copy_only=False)).tobytes())
    if pa.types.is_dictionary(kind):
        feed_array(h, arr.dictionary_decode())
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
        _frame(h, b"O", pc.list_value_length(arr).fill_null(0).to_numpy(zero_copy_only=False).tobytes())
        feed_array(h, arr.flatten())
    elif pa.types.is_fixed_size_list(kind):
        feed_array(h, arr.flatten())
    elif pa.types.is_struct(kind):
        for child in arr.flatten():
            feed_array(h, child)
    elif (
        pa.types.is_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_large_binary(kind)
    ):
        width = np.int64 if pa.types.is_large_string(kind) or pa.types.is_large_binary(kind) else np.int32
        offsets = np.frombuffer(arr.buffers()[1], dtype=width)[arr.offset : arr.offset + len(arr) + 1]
        _frame(h, b"O", np.diff(offsets).astype(np.int64).tobytes())
        data = arr.buffers()[2]
        _frame(h, b"D", b"" if data is None else data.to_pybytes()[int(offsets[0]) : int(offsets[-1])])
    elif pa.types.is_boolean(kind):
        _frame(h, b"B", np.packbits(arr.fill_null(False).to_numpy(zero_copy_only=False)).tobytes())
    elif pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_temporal(kind):
        _frame(h, b"N", arr.fill_null(0).to_numpy(zero_copy_only=False).tobytes())
    else:
        _frame(h, b"J", json.dumps(arr.to_pylist(), default=str).encode())


def _arrow_digest(table_slice: Any, num_rows: int, names: list[str]) -> ContentDigest:
    hashers = {name: hashlib.sha256() for name in names}
    for start in range(0, num_rows, BATCH_ROWS):
        batch: pa.Table = table_slice(start, min(start + BATCH_ROWS, num_rows))
        for name in names:
            feed_array(hashers[name], batch.column(name).combine_chunks())
    return ContentDigest("arrow", num_rows, tuple(sorted((n, h.hexdigest()) for n, h in hashers.items())))


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot content-hash a value of type {type(value).__name__}")


def _rows_digest(dataset: Any) -> ContentDigest:
    hashers: dict[str, Any] = {}
    for i in range(len(dataset)):
        row = dataset[i]
        items = row.items() if isinstance(row, Mapping) else [("(item)", row)]
        for key, value in items:
            text = json.dumps(value, sort_keys=True, default=_plain)
            _frame(hashers.setdefault(str(key), hashlib.sha256()), i.to_bytes(8, "little"), text.encode())
    return ContentDigest("rows", len(dataset), tuple(sorted((n, h.hexdigest()) for n, h in hashers.items())))


def content_digest(dataset: Any) -> ContentDigest | None:
    """Fingerprint a `datasets.Dataset`, `pyarrow.Table` or map-style dataset; None for a stream."""
    import datasets

    if isinstance(dataset, datasets.Dataset):
        view = dataset.with_format("arrow")
        return _arrow_digest(lambda a, b: view[a:b], dataset.num_rows, list(dataset.column_names))
    if isinstance(dataset, pa.Table):
        return _arrow_digest(lambda a, b: dataset.slice(a, b - a), dataset.num_rows, dataset.column_names)
    if hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__") and not isinstance(dataset, (str, bytes)):
        return _rows_digest(dataset)
    return None
