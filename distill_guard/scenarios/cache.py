"""A folder built once and reused: the scenarios' expensive artefacts (converted or pre-trained models).

A folder is written into a temporary sibling and renamed into place, so an interrupted build never
leaves a half-written folder that a later call would trust.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

CACHE_ENV = "DISTILL_GUARD_CACHE"


def cache_root() -> Path:
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "distill-guard"


def built_once(folder: Path, build: Callable[[Path], None], *, marker: str = "model.safetensors") -> Path:
    """`folder` if it holds `marker`, else `build(staging)` and rename the staging folder to `folder`."""
    if (folder / marker).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        build(staging)
        try:
            staging.rename(folder)
        except OSError:  # another process finished first: keep its folder
            if not (folder / marker).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
