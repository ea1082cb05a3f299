"""Files a reader must see whole or not at all: halt records, quarantine markers, manifests, keys."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from distill_guard.errors import DistillGuardError


class OutputFileError(DistillGuardError, OSError):
    """A file could not be written; `path` names it and nothing half-written is left behind.

    Still an OSError, so code that handled a failed write before keeps handling it."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        super().__init__(f"{path}: cannot write: {reason}")


def _blocking_ancestor(path: Path) -> Path | None:
    """The nearest existing ancestor of `path` when it is not a folder (so no folder can be made there)."""
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            return None if parent.is_dir() else parent
    return None


def refuse_unwritable(path: Path) -> None:
    """Fail before any work when `path` can never be written as a file (checked again on write)."""
    if path.is_dir():
        raise OutputFileError(path, "it is a directory; give a file name")
    blocker = _blocking_ancestor(path)
    if blocker is not None:
        raise OutputFileError(path, f"{blocker} is a file, not a directory")


def write_atomically(path: Path, text: str | bytes, *, mode: int = 0o644, overwrite: bool = True) -> None:
    """Write `text` (bytes as they are) via a temp file in the same folder and rename: never half a file.

    Raises OutputFileError naming `path` when it is a folder, lies under a file, or the disk refuses.
    With `overwrite=False` the temp file is hard-linked into place instead, which raises
    FileExistsError when `path` exists, even if another process creates it meanwhile.
    """
    refuse_unwritable(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_then_rename(path, text, mode, overwrite)
    except OSError as exc:
        if isinstance(exc, FileExistsError) and not overwrite:
            raise
        raise OutputFileError(path, exc.strerror or str(exc)) from None


def _write_then_rename(path: Path, text: str | bytes, mode: int, overwrite: bool) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8") if isinstance(text, str) else text)
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
