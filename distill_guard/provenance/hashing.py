"""Streaming file hashes (constant memory for files of any size, with a progress hook for the CLI)
and the manifest entry of one data file."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from distill_guard.policy.dataset_manifest import DataFile

CHUNK_BYTES = 8 * 1024 * 1024

ProgressHook = Callable[[int], None]


def sha256_file(path: str | Path, *, on_bytes: ProgressHook | None = None) -> str:
    """Hex sha256 of a file, read in fixed chunks into one reused buffer (no per-chunk allocation)."""
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK_BYTES)
    view = memoryview(buffer)
    with Path(path).open("rb", buffering=0) as handle:
        while True:
            n = handle.readinto(buffer)
            if not n:
                break
            digest.update(view[:n])
            if on_bytes is not None:
                on_bytes(n)
    return digest.hexdigest()


def count_jsonl_records(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def describe_file(path: Path, base: Path, *, on_bytes: ProgressHook | None = None) -> DataFile:
    """Size, sha256 and (for JSON Lines) the record count of one data file, named relative to `base`."""
    relative = Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()
    records = count_jsonl_records(path) if path.suffix == ".jsonl" else None
    return DataFile(
        path=relative, size=path.stat().st_size, sha256=sha256_file(path, on_bytes=on_bytes), records=records
    )
