"""Append-only JSONL audit log: one line per event, flushed at once so a crash loses nothing."""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

from distill_guard.atomic_files import OutputFileError, refuse_unwritable


class AuditLog:
    """Writes events as single JSON lines; each line is one `write()` that lands whole or not at all.

    A full disk or an I/O error raises OutputFileError naming the log, after cutting the file back
    to its length before the write, so a reader never meets half a JSON line.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def record(self, event: str, **fields: Any) -> dict[str, Any]:
        entry = {"time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"), "event": event, **fields}
        line = (json.dumps(entry, sort_keys=False, default=str) + "\n").encode("utf-8", "backslashreplace")
        refuse_unwritable(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Non-blocking so a FIFO with no reader fails at once instead of hanging the run.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            reason = "a FIFO with no reader" if exc.errno == errno.ENXIO else exc.strerror or str(exc)
            raise OutputFileError(self.path, reason) from None
        try:
            self._append(fd, line)
        finally:
            os.close(fd)
        return entry

    def _append(self, fd: int, line: bytes) -> None:
        info = os.fstat(fd)
        try:
            written = os.write(fd, line)
        except OSError as exc:
            raise OutputFileError(self.path, exc.strerror or str(exc)) from None
        if written != len(line):
            if stat.S_ISREG(info.st_mode):
                os.ftruncate(fd, info.st_size)
            raise OutputFileError(self.path, f"only {written} of {len(line)} bytes written (disk full?); line removed")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text("utf-8").splitlines() if line.strip()]
