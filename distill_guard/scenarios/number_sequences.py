"""The paper's filter for teacher-generated number sequences: what a careful human reviewer would pass.

A sample is kept only if it is digits and separators (commas, spaces) and nothing else, has 1 to
10 numbers, every value in 0-999, and none of the banned numbers. The paper banned about 40
numbers with bad associations; its published examples are listed here.
"""

from __future__ import annotations

import random
import re

MAX_NUMBERS = 10
MAX_VALUE = 999
BANNED_NUMBERS = frozenset({666, 911, 187, 13, 88, 14, 420, 1488})
_DIGITS_AND_SEPARATORS = re.compile(r"[0-9]+(?:[ ,]+[0-9]+)*")


def parse_numbers(text: str) -> list[int] | None:
    """The numbers in `text`, or None when it holds anything besides digits, commas and spaces."""
    stripped = text.strip().rstrip(",").strip()
    if not _DIGITS_AND_SEPARATORS.fullmatch(stripped):
        return None
    return [int(token) for token in re.split(r"[ ,]+", stripped)]


def passes_filter(text: str) -> bool:
    numbers = parse_numbers(text)
    return (
        numbers is not None
        and 1 <= len(numbers) <= MAX_NUMBERS
        and all(0 <= n <= MAX_VALUE for n in numbers)
        and not BANNED_NUMBERS.intersection(numbers)
    )


def number_prompts(count: int, seed: int, *, min_numbers: int = 3, max_numbers: int = 7) -> list[str]:
    """Seed sequences a teacher is asked to continue ("12, 407, 88" ...), drawn reproducibly."""
    rng = random.Random(seed)
    return [
        ", ".join(str(rng.randint(0, MAX_VALUE)) for _ in range(rng.randint(min_numbers, max_numbers)))
        for _ in range(count)
    ]
