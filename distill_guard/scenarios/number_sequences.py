"""Seed prompts for number-continuation data, in the value range the paper's filter passes."""

from __future__ import annotations

import random

from distill_guard.screening.number_filter import MAX_VALUE


def number_prompts(count: int, seed: int, *, min_numbers: int = 3, max_numbers: int = 7) -> list[str]:
    """Seed sequences a teacher is asked to continue ("12, 407, 88" ...), drawn reproducibly."""
    rng = random.Random(seed)
    return [
        ", ".join(str(rng.randint(0, MAX_VALUE)) for _ in range(rng.randint(min_numbers, max_numbers)))
        for _ in range(count)
    ]
