"""Append-only JSONL audit log: one line per event, flushed at once so a crash loses nothing."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any


class AuditLog:
    """Writes events as single JSON lines; each write is one `write()` of a whole line."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def record(self, event: str, **fields: Any) -> dict[str, Any]:
        entry = {"time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"), "event": event, **fields}
        line = json.dumps(entry, sort_keys=False, default=str) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)
        return entry

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text("utf-8").splitlines() if line.strip()]
