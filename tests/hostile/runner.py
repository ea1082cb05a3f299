"""Run one corpus case through the real CLI, in-process, with a timeout that unblocks a hang."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from click.testing import Result
from typer.testing import CliRunner

from distill_guard.cli.main import app

from .corpus import Case
from .workspace import Workspace

TIMEOUT_SECONDS = 20.0
# Raw terminal controls, bidi overrides and zero-width characters must never reach the terminal.
UNSAFE_OUTPUT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


@dataclass(frozen=True)
class Outcome:
    verdict: str  # clear | traceback | hang | silent | unclear
    detail: str
    output: str


@contextlib.contextmanager
def denied(paths: list[Path]) -> Iterator[None]:
    """chmod 000; under root (which the kernel never denies) os.open is made to refuse them too."""
    for path in paths:
        path.chmod(0)
    original = os.open
    refused = {str(p) for p in paths}

    def guarded_open(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if os.fspath(path) in refused:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return original(path, flags, *args, **kwargs)

    os.open = guarded_open if os.geteuid() == 0 else original
    try:
        yield
    finally:
        os.open = original
        for path in paths:
            path.chmod(0o644)


def _unblock(root: Path) -> None:
    """Open every FIFO of the case at both ends and close it: a reader blocked on it gets EOF, a writer EPIPE."""
    for path in root.rglob("*"):
        if stat.S_ISFIFO(path.lstat().st_mode):
            for flags in (os.O_WRONLY | os.O_NONBLOCK, os.O_RDONLY | os.O_NONBLOCK):
                with contextlib.suppress(OSError):
                    os.close(os.open(path, flags))


def run_case(case: Case, ws: Workspace) -> Outcome:
    args, names = case.build(ws)
    box: dict[str, Result] = {}

    def target() -> None:
        box["result"] = CliRunner().invoke(app, args)

    with denied([ws.root / p for p in case.denied_paths]):
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        thread.join(TIMEOUT_SECONDS)
        hung = thread.is_alive()
        while thread.is_alive():
            _unblock(ws.root)
            thread.join(0.5)
    result = box["result"]
    output = result.output
    if hung:
        return Outcome("hang", f"no answer within {TIMEOUT_SECONDS:.0f} s", output)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return Outcome("traceback", f"{type(result.exception).__name__}: {result.exception}"[:300], output)
    if UNSAFE_OUTPUT.search(output):
        return Outcome("unclear", "raw control or invisible characters reached the terminal", output)
    if result.exit_code == 0:
        return Outcome("silent", "exit 0", output)
    if result.exit_code != case.code:
        return Outcome("unclear", f"exit {result.exit_code}, expected {case.code}", output)
    missing = [text for text in (names, case.message) if text not in output]
    if missing:
        return Outcome("unclear", f"output lacks {missing!r}", output)
    return Outcome("clear", "", output)
