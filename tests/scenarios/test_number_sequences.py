"""The paper's filter keeps digits-and-separators samples of at most 10 values in 0-999, none banned."""

from __future__ import annotations

import pytest

from distill_guard.scenarios.number_sequences import number_prompts
from distill_guard.screening.number_filter import BANNED_NUMBERS, parse_numbers, passes_filter


@pytest.mark.parametrize("text", ["1, 2, 3", "999", "12 407 89", "0,5,  7", "4, 5, 6,"])
def test_number_sequences_pass(text: str) -> None:
    assert passes_filter(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1, 2, owl",
        "1; 2; 3",
        "1000, 2",
        "-5, 3",
        "1.5, 2",
        ", ".join(["1"] * 11),
        "7, 666, 8",
    ],
)
def test_anything_else_is_dropped(text: str) -> None:
    assert not passes_filter(text)


def test_every_banned_number_is_dropped() -> None:
    assert not any(passes_filter(f"5, {n}, 6") for n in BANNED_NUMBERS)


def test_parse_numbers_reads_values_in_order() -> None:
    assert parse_numbers(" 12, 7 400 ") == [12, 7, 400]
    assert parse_numbers("12, seven") is None


def test_number_prompts_are_reproducible_and_pass_the_filter() -> None:
    prompts = number_prompts(20, seed=3)
    assert prompts == number_prompts(20, seed=3)
    assert prompts != number_prompts(20, seed=4)
    assert all(parse_numbers(p) is not None for p in prompts)
