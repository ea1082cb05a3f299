"""Files a reader must see whole or not at all: halt records, quarantine markers, manifests, keys."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_atomically(path: Path, text: str, *, mode: int = 0o644, overwrite: bool = True) -> None:
    """Write via a temp file in the same folder and rename, so a reader never sees half a file.

    With `overwrite=False` the temp file is hard-linked into place instead, which fails with
    FileExistsError when `path` exists, even if another process creates it meanwhile.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_json_atomically(path: Path, payload: Any, *, indent: int = 2) -> None:
    """`payload` as indented JSON (dates and paths as text), written atomically."""
    write_atomically(path, json.dumps(payload, indent=indent, default=str) + "\n")
