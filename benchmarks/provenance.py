"""Provenance gate benchmark: prints ratios, never asserts.

1. Manifest verification throughput (streaming re-hash) vs `sha256sum` on the same >= 1 GiB file,
   both reading from a warm page cache.
2. Per-record checking rate on >= 1M rows: counting rows per generator and keeping the rows whose
   generator is not dropped. Every contender does that same work with its input in the same state:
   from a JSON Lines file (parsing inside the timer on every side: a `json.loads` loop, pyarrow's
   JSON reader plus pyarrow compute, and our path), and from a `datasets.Dataset` already in
   memory (no parsing on any side: a Python loop over the Arrow column, `Dataset.filter`, pyarrow
   compute on the dataset's table, and our path), each ending with the kept rows as a Dataset.

All contenders of a group run in turn, round after round (interleaved); printed are the median
and the range over the rounds. Run:
    .venv/bin/python benchmarks/provenance.py [--gib 1] [--rows 1000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from benchmarks.timing import interleaved, median_ratio, spread
from distill_guard.policy.dataset_manifest import DatasetId, DatasetProvenance, Generator, LoadedManifest
from distill_guard.provenance.content_digest import content_digest
from distill_guard.provenance.file_rows import row_content
from distill_guard.provenance.hashing import describe_file
from distill_guard.provenance.integrity import verify_files
from distill_guard.provenance.record_column import (
    file_records,
    generator_counts,
    provenance_column,
    rows_to_keep,
    select_rows,
)

GENERATORS = ("other-lab/teacher-7b", "distill-guard/tiny-teacher", "acme/numbers-writer")
DROP = {"distill-guard/tiny-teacher"}


def write_big_file(path: Path, gib: float) -> int:
    block = os.urandom(64 * 1024 * 1024)
    total = int(gib * 1024**3)
    with path.open("wb") as handle:
        written = 0
        while written < total:
            chunk = block[: total - written]
            handle.write(chunk)
            written += len(chunk)
    return total


def bench_manifest(folder: Path, gib: float, rounds: int) -> None:
    data = folder / "big.bin"
    size = write_big_file(data, gib)
    manifest = DatasetProvenance(
        dataset=DatasetId(name="bench", version="1"),
        files=[describe_file(data, folder)],
        generators=[Generator(model=GENERATORS[0])],
    )
    loaded = LoadedManifest(manifest, folder / "m.yaml")
    times = interleaved(
        rounds,
        {
            "manifest verify": lambda: verify_files(loaded),
            "sha256sum": lambda: subprocess.run(["sha256sum", str(data)], check=True, capture_output=True),
        },
    )
    mib = size / 1024**2
    print(f"manifest verification of one {mib:.0f} MiB file (warm page cache), {rounds} interleaved rounds")
    for name, seconds in times.items():
        print(f"  {name:18s} {mib / statistics.median(seconds):6.0f} MiB/s   {spread(seconds)}")
    ratio = median_ratio(times["sha256sum"], times["manifest verify"])
    print(f"  ratio: {ratio:.2f}x sha256sum's throughput (median of per-round ratios)")
    data.unlink()


def write_rows(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for i in range(rows):
            record = {"text": f"{i % 997}, {i % 313}, {i % 71}", "provenance": GENERATORS[i % 3]}
            handle.write(json.dumps(record) + "\n")


Outcome = tuple[dict[str, int], int]  # rows per generator, rows kept


def json_loop(path: Path) -> Outcome:
    """What a hand-written filter does: parse each line, count its generator, test it."""
    counts: Counter[str] = Counter()
    keep = []
    with path.open(encoding="utf-8") as handle:
        for i, line in enumerate(handle):
            generator = json.loads(line).get("provenance")
            counts[generator] += 1
            if generator not in DROP:
                keep.append(i)
    return dict(counts), len(keep)


def arrow_on_file(path: Path) -> Outcome:
    """pyarrow's JSON reader for the one column, then pyarrow compute to count and filter."""
    options = pa_json.ParseOptions(
        explicit_schema=pa.schema([("provenance", pa.string())]), unexpected_field_behavior="ignore"
    )
    return arrow_compute(pa_json.read_json(path, parse_options=options).column("provenance"))


def arrow_compute(values: pa.ChunkedArray) -> Outcome:
    counts = {entry["values"]: entry["counts"] for entry in pc.value_counts(values).to_pylist()}
    keep = np.flatnonzero(pc.invert(pc.is_in(values, value_set=pa.array(sorted(DROP)))).to_numpy(zero_copy_only=False))
    return counts, len(keep)


def ours_on_file(path: Path) -> Outcome:
    column = provenance_column(file_records([path], "provenance"), "provenance")
    return generator_counts(column), len(rows_to_keep(column, DROP))


def column_loop(dataset: datasets.Dataset) -> Outcome:
    """A Python loop over the dataset's Arrow column, then `Dataset.select` of the kept rows."""
    counts: Counter[str] = Counter()
    keep = []
    for i, generator in enumerate(dataset.data.column("provenance").to_pylist()):
        counts[generator] += 1
        if generator not in DROP:
            keep.append(i)
    return dict(counts), dataset.select(keep).num_rows


def dataset_filter(dataset: datasets.Dataset) -> Outcome:
    """`Dataset.filter` over the one column, batched, in memory, counting as it goes."""
    counts: Counter[str] = Counter()

    def kept(generators: list[str]) -> list[bool]:
        counts.update(generators)
        return [g not in DROP for g in generators]

    filtered = dataset.filter(
        kept, input_columns="provenance", batched=True, keep_in_memory=True, load_from_cache_file=False
    )
    return dict(counts), filtered.num_rows


def arrow_on_dataset(dataset: datasets.Dataset) -> Outcome:
    values = dataset.data.column("provenance")
    counts, _ = arrow_compute(values)
    keep = np.flatnonzero(pc.invert(pc.is_in(values, value_set=pa.array(sorted(DROP)))).to_numpy(zero_copy_only=False))
    return counts, dataset.select(keep).num_rows


def ours_on_dataset(dataset: datasets.Dataset) -> Outcome:
    column = provenance_column(dataset, "provenance")
    return generator_counts(column), select_rows(dataset, rows_to_keep(column, DROP)).num_rows


def compare(title: str, rows: int, rounds: int, contenders: dict[str, Callable[[], Outcome]]) -> None:
    """Check every contender computes the same counts and kept rows, then time them interleaved."""
    outcomes = {name: run() for name, run in contenders.items()}  # also warms every side
    assert len(set(map(repr, ((sorted(c.items()), k) for c, k in outcomes.values())))) == 1, outcomes
    times = interleaved(rounds, contenders)
    ours = times["distill-guard"]
    print(f"{title}: {rows:,} rows, {rounds} interleaved rounds")
    for name, seconds in times.items():
        versus = "" if name == "distill-guard" else f"   its time / ours {median_ratio(seconds, ours):5.2f}"
        print(f"  {name:24s} {rows / statistics.median(seconds):11,.0f} rows/s   {spread(seconds)}{versus}")


def bench_records(folder: Path, rows: int, rounds: int) -> None:
    path = folder / "rows.jsonl"
    write_rows(path, rows)
    compare(
        "per-record check from a JSON Lines file (parsing inside every timer)",
        rows,
        rounds,
        {
            "json.loads loop": lambda: json_loop(path),
            "pyarrow json + compute": lambda: arrow_on_file(path),
            "distill-guard": lambda: ours_on_file(path),
        },
    )
    dataset = datasets.Dataset.from_json(str(path), cache_dir=str(folder / "cache"))
    compare(
        "per-record check on a datasets.Dataset in memory (no parsing on any side; ends in a Dataset)",
        rows,
        rounds,
        {
            "loop over Arrow column": lambda: column_loop(dataset),
            "Dataset.filter (batched)": lambda: dataset_filter(dataset),
            "pyarrow compute": lambda: arrow_on_dataset(dataset),
            "distill-guard": lambda: ours_on_dataset(dataset),
        },
    )
    hashed = interleaved(rounds, {"digest": lambda: content_digest(dataset)})["digest"]
    shuffled = dataset.shuffle(seed=0)
    bound = interleaved(1, {"binding": lambda: row_content(shuffled)})["binding"]
    digest_rate = rows / statistics.median(hashed)
    print(f"dataset content digest  {digest_rate:11,.0f} rows/s   (clear_dataset binding, all columns)")
    print(
        f"row binding to files    {rows / bound[0]:11,.0f} rows/s   (order-free, shuffled dataset, all columns, 1 run)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0, help="size of the file to verify (>= 1 for the report)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows for the per-record check")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per comparison")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="distill-guard-bench-"))
    try:
        bench_manifest(folder, args.gib, args.rounds)
        bench_records(folder, args.rows, args.rounds)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
