"""Audit-log lines land whole or not at all, and a failed write names the log (no half JSON line)."""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path

import pytest

from distill_guard.atomic_files import OutputFileError
from distill_guard.export.audit import AuditLog


def _log_with_one_line(tmp_path: Path) -> tuple[AuditLog, bytes]:
    log = AuditLog(tmp_path / "audit.jsonl")
    log.record("first", n=1)
    return log, log.path.read_bytes()


def test_full_disk_raises_naming_the_log() -> None:
    with pytest.raises(OutputFileError, match=r"^/dev/full: cannot write: No space left on device"):
        AuditLog("/dev/full").record("decision", detail="x" * 100)


def test_short_write_is_cut_back_so_no_half_line_remains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log, before = _log_with_one_line(tmp_path)
    real_write = os.write

    def half_write(fd: int, data: bytes) -> int:
        return real_write(fd, bytes(data[: len(data) // 2]))

    monkeypatch.setattr(os, "write", half_write)
    with pytest.raises(OutputFileError, match=rf"{log.path}: cannot write: only \d+ of \d+ bytes written"):
        log.record("second", payload="y" * 1000)
    monkeypatch.undo()
    assert log.path.read_bytes() == before
    assert [e["event"] for e in log.read()] == ["first"]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO, errno.EDQUOT])
def test_write_error_names_the_log_and_leaves_earlier_lines(tmp_path: Path, monkeypatch, code: int) -> None:
    log, before = _log_with_one_line(tmp_path)

    def refuse(fd: int, data: bytes) -> int:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "write", refuse)
    with pytest.raises(OutputFileError, match=rf"{log.path}: cannot write: {os.strerror(code)}"):
        log.record("second")
    monkeypatch.undo()
    assert log.path.read_bytes() == before


def test_a_fifo_with_no_reader_fails_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "audit.jsonl"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []
    worker = threading.Thread(target=lambda: _capture(outcome, AuditLog(fifo)), daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():  # release the writer before failing, so no thread is left blocked
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        pytest.fail("writing the audit log to a FIFO blocked")
    assert isinstance(outcome[0], OutputFileError) and "a FIFO with no reader" in str(outcome[0])


def _capture(outcome: list[BaseException], log: AuditLog) -> None:
    try:
        log.record("x")
    except OutputFileError as exc:
        outcome.append(exc)


def test_every_line_is_one_whole_json_object(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    for i in range(20):
        log.record("event", i=i, text="\u202e\x1b[2K" * i)
    lines = log.path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 21
    assert [json.loads(line)["i"] for line in lines[:-1]] == list(range(20))
