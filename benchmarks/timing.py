"""How the benchmarks time contenders fairly on a shared, noisy machine: interleaved rounds, medians, ranges."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def interleaved(rounds: int, contenders: dict[str, Callable[[], object]]) -> dict[str, list[float]]:
    """Seconds of each contender in every round; contenders alternate within a round (the order
    reversed every other round), so a change of machine load hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for r in range(rounds):
        for name in list(contenders)[:: 1 if r % 2 == 0 else -1]:
            start = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - start)
    return times


def median_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median of the per-round ratios: each round's two timings saw the same machine load."""
    return statistics.median(n / d for n, d in zip(numerator, denominator, strict=True))


def spread(seconds: list[float]) -> str:
    return f"median {statistics.median(seconds):7.3f} s  (range {min(seconds):.3f}-{max(seconds):.3f})"
