"""Print the corpus verdicts per kind: `python -m tests.hostile.measure` (what the report quotes)."""

from __future__ import annotations

import collections
import sys
import tempfile
from pathlib import Path

import torch

from distill_guard.scenarios.tiny_lm import make_tiny_checkpoint

from . import runner
from .corpus import CASES
from .runner import run_case
from .workspace import Workspace


def main() -> None:
    torch.set_num_threads(1)
    runner.TIMEOUT_SECONDS = float(sys.argv[sys.argv.index("--timeout") + 1]) if "--timeout" in sys.argv else 20.0
    verdicts: collections.Counter[tuple[str, str]] = collections.Counter()
    with tempfile.TemporaryDirectory() as tmp:
        tiny = make_tiny_checkpoint(Path(tmp) / "tiny", seed=0)
        for i, case in enumerate(CASES):
            root = Path(tmp) / f"case{i}"
            root.mkdir()
            outcome = run_case(case, Workspace(root, tiny))
            verdicts[(case.kind, outcome.verdict)] += 1
            if outcome.verdict != "clear" or "-v" in sys.argv:
                print(f"{outcome.verdict:<10} {case.id}: {outcome.detail}", flush=True)
    kinds = sorted({k for k, _ in verdicts})
    names = ["clear", "traceback", "hang", "silent", "unclear"]
    print(f"\n{'kind':<12}" + "".join(f"{n:>11}" for n in names) + f"{'total':>8}")
    for kind in kinds:
        row = [verdicts[(kind, n)] for n in names]
        print(f"{kind:<12}" + "".join(f"{v:>11}" for v in row) + f"{sum(row):>8}")
    totals = [sum(verdicts[(k, n)] for k in kinds) for n in names]
    print(f"{'all':<12}" + "".join(f"{v:>11}" for v in totals) + f"{sum(totals):>8}")


if __name__ == "__main__":
    main()
