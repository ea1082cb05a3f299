"""The paper's filter for teacher-generated number sequences: what a careful human reviewer would pass.

It lives with the screen because the screen draws its null through the same filter as the data;
the scenarios apply it to their teachers' samples.

A sample is kept only if it is digits and separators (commas, spaces) and nothing else, has 1 to
10 numbers, every value in 0-999, and none of the banned numbers. The paper banned about 40
numbers with bad associations; its published examples are listed here.
"""

from __future__ import annotations

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
