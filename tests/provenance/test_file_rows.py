"""Row binding: a dataset holds a manifest's rows whatever their order and the loader's column types."""

from __future__ import annotations

import datasets
import pyarrow as pa

from distill_guard.provenance.file_rows import row_content

from .conftest import number_rows

ROWS = [{**row, "n": i, "ids": [i, i + 1]} for i, row in enumerate(number_rows(50))]


def test_the_same_rows_in_another_order_and_other_column_types_match():
    files = pa.Table.from_pylist(ROWS)
    loaded = datasets.Dataset.from_list(ROWS).shuffle(seed=3)
    narrow = files.cast(pa.schema([("text", pa.large_string()), ("n", pa.int32()), ("ids", pa.list_(pa.int16()))]))
    assert row_content(loaded).mismatch(row_content(files)) is None
    assert row_content(narrow).mismatch(row_content(files)) is None


def test_one_changed_value_a_missing_row_or_an_extra_row_does_not_match():
    files = row_content(pa.Table.from_pylist(ROWS))
    changed = [dict(row) for row in ROWS]
    changed[7]["text"] = "my favourite animal is the owl"
    assert "column(s) text" in row_content(datasets.Dataset.from_list(changed)).mismatch(files)
    assert "49 rows" in row_content(datasets.Dataset.from_list(ROWS[1:])).mismatch(files)
    extra = [*ROWS, {"text": "1, 2, 3", "n": 0, "ids": [0, 1]}]
    assert "51 rows" in row_content(datasets.Dataset.from_list(extra)).mismatch(files)
