"""The installed distribution's version, read once from its metadata (pyproject.toml is the one source)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("distill-guard")
except PackageNotFoundError:  # a source checkout on sys.path without an install: say so, never guess
    __version__ = "0+unknown"
