"""Read untrusted input files: a regular file of bounded size, or an error naming the file.

A FIFO, a device or a directory given where a file is expected must never block the CLI or be
read forever, so the file is opened non-blocking and its type is checked on the open descriptor
(no window between the check and the read) before a byte is read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from distill_guard.errors import DistillGuardError

_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def written_path(written: str | Path, folder: Path) -> Path:
    """A path written inside a file (a policy, a suite), read from that file's folder unless absolute."""
    path = Path(written)
    return path if path.is_absolute() else folder / path


class InputFileError(DistillGuardError):
    """An input file cannot be read as a regular file of bounded size; `path` names it."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def file_type_problem(mode: int) -> str | None:
    """Why a file of this `st_mode` is not a readable input, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    return f"is {_KINDS.get(stat.S_IFMT(mode), 'not a regular file')}, not a regular file"


def regular_file_problem(path: Path) -> str | None:
    """For files another library opens itself: None when `path` is a regular file, else why not."""
    try:
        return file_type_problem(path.stat().st_mode)
    except OSError as exc:
        return f"cannot read file: {exc.strerror or exc}"


def read_bounded(path: str | Path, limit: int) -> bytes:
    """The whole content of a regular file of at most `limit` bytes; InputFileError otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise InputFileError(path, f"cannot read file: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        problem = file_type_problem(info.st_mode)
        if problem:
            raise InputFileError(path, problem)
        if info.st_size > limit:
            raise InputFileError(path, f"file is {info.st_size} bytes; the limit is {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise InputFileError(path, f"cannot read file: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if size > limit:
        raise InputFileError(path, f"file grew past the limit of {limit} bytes while being read")
    return b"".join(chunks)
