"""What a missing test dependency means: a skip on a developer's machine, a failure under CI=true."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"true", "1"}


def missing(message: str, *, required_in_ci: bool = True) -> NoReturn:
    """Skip the test, or under CI=true (where `./dev test` installed everything) fail it."""
    if in_ci() and required_in_ci:
        pytest.fail(f"{message}; CI=true requires it", pytrace=False)
    pytest.skip(message)
