"""Provenance gate benchmark: prints ratios, never asserts.

1. Manifest verification throughput (streaming re-hash) vs `sha256sum` on the same >= 1 GiB file,
   both reading from a warm page cache, best of a few runs.
2. Per-record checking rate on >= 1M rows: counting generators, deciding rules and computing the
   rows to keep, from JSON Lines and from a `datasets.Dataset`; compared with a plain Python loop
   that parses each line and tests its generator (what a hand-written filter would do).

Run: .venv/bin/python benchmarks/provenance.py [--gib 1] [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import datasets

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


def best_of(runs: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


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


def bench_manifest(folder: Path, gib: float) -> None:
    data = folder / "big.bin"
    size = write_big_file(data, gib)
    manifest = DatasetProvenance(
        dataset=DatasetId(name="bench", version="1"),
        files=[describe_file(data, folder)],
        generators=[Generator(model=GENERATORS[0])],
    )
    loaded = LoadedManifest(manifest, folder / "m.yaml")
    ours = best_of(3, lambda: verify_files(loaded))
    theirs = best_of(3, lambda: subprocess.run(["sha256sum", str(data)], check=True, capture_output=True))
    mib = size / 1024**2
    print(
        f"manifest verify  {mib / ours:8.0f} MiB/s   sha256sum {mib / theirs:8.0f} MiB/s   "
        f"ratio {theirs / ours:.2f}x sha256sum throughput  ({mib:.0f} MiB file)"
    )
    data.unlink()


def write_rows(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for i in range(rows):
            record = {"text": f"{i % 997}, {i % 313}, {i % 71}", "provenance": GENERATORS[i % 3]}
            handle.write(json.dumps(record) + "\n")


def naive_loop(path: Path) -> list[int]:
    keep = []
    with path.open(encoding="utf-8") as handle:
        for i, line in enumerate(handle):
            if json.loads(line).get("provenance") not in DROP:
                keep.append(i)
    return keep


def check_jsonl(path: Path) -> int:
    column = provenance_column(file_records([path], "provenance"), "provenance")
    generator_counts(column)
    return len(rows_to_keep(column, DROP))


def check_dataset(dataset: datasets.Dataset) -> int:
    column = provenance_column(dataset, "provenance")
    generator_counts(column)
    return select_rows(dataset, rows_to_keep(column, DROP)).num_rows


def bench_records(folder: Path, rows: int) -> None:
    path = folder / "rows.jsonl"
    write_rows(path, rows)
    dataset = datasets.Dataset.from_json(str(path), cache_dir=str(folder / "cache"))
    naive = best_of(1, lambda: naive_loop(path))
    jsonl = best_of(2, lambda: check_jsonl(path))
    arrow = best_of(2, lambda: check_dataset(dataset))
    hashed = best_of(1, lambda: content_digest(dataset))
    shuffled = dataset.shuffle(seed=0)
    bound = best_of(1, lambda: row_content(shuffled))
    assert check_jsonl(path) == check_dataset(dataset) == len(naive_loop(path))
    print(f"per-record, JSONL       {rows / jsonl:12,.0f} rows/s   ratio {naive / jsonl:6.1f}x a Python json loop")
    print(f"per-record, Dataset     {rows / arrow:12,.0f} rows/s   ratio {naive / arrow:6.1f}x a Python json loop")
    print(f"python json loop        {rows / naive:12,.0f} rows/s   (baseline, {rows:,} rows)")
    print(f"dataset content digest {rows / hashed:12,.0f} rows/s   (clear_dataset binding, all columns)")
    print(f"row binding to files   {rows / bound:12,.0f} rows/s   (order-free, shuffled dataset, all columns)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0, help="size of the file to verify (>= 1 for the report)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows for the per-record check")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="distill-guard-bench-"))
    try:
        bench_manifest(folder, args.gib)
        bench_records(folder, args.rows)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
