"""Streaming file hashes: constant memory for files of any size, with a progress hook for the CLI."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

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
