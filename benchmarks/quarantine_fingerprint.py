"""How far a disguised halted checkpoint, its base, another init and washed copies are from the registry entry.

The unit is one weight matrix of the entry: for each candidate folder, each entry matrix's distance
(norm_profile.ProfileIndex.closest) to the closest matrix of the candidate, in either orientation,
then the share of entry matrices within TOLERANCE (a folder matches at MATCH_FRACTION). The entry is what a halt writes:
`register` with the run's starting weights, so matrices the halt left near the base are not kept.

Cases, each built from real saved checkpoints by distill_guard.scenarios.disguises:
- halted: the base fine-tuned a few AdamW steps (the tiny model: 2 steps at lr 1e-3, what the
  registry tests halt after; SmolLM2-135M: 4 steps at the lrs given);
- disguised: halted with hidden units permuted, 1e-3 relative noise, converted to bfloat16 / float16;
- base: the checkpoint the halt was fine-tuned from; another init: the same config, other seed;
- washed k: halted fine-tuned k more steps at the halt's lr (an adversary washing it).

Also the CPU time of a registry check (reading and profiling every matrix) against singular values.

    nice -n 10 python benchmarks/quarantine_fingerprint.py               # tiny model, then SmolLM2 (about 5 min)
    nice -n 10 python benchmarks/quarantine_fingerprint.py --tiny-only   # seconds
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from distill_guard.provenance.checkpoint_reading import UnreadableCheckpoint, read_checkpoint
from distill_guard.provenance.norm_profile import TOLERANCE, norm_profile
from distill_guard.provenance.quarantine_registry import (
    MATCH_FRACTION,
    RegistryEntry,
    fingerprint_folder,
    register,
)
from distill_guard.provenance.weight_statistics import finite
from distill_guard.scenarios import disguises, smollm2, tiny_lm


def _in_dtype(folder: Path, out: Path, dtype: torch.dtype) -> Path:
    AutoModelForCausalLM.from_pretrained(folder).to(dtype).save_pretrained(out)
    AutoTokenizer.from_pretrained(folder).save_pretrained(out)
    return out


def _row(entry: RegistryEntry, name: str, folder: Path) -> str:
    theirs = fingerprint_folder(folder).index
    distances = sorted(theirs.closest(mine) for mine in entry.matrices)  # type: ignore[arg-type]
    share = sum(d <= TOLERANCE for d in distances) / len(distances)
    quartiles = statistics.quantiles(distances, n=4) if len(distances) > 1 else distances * 3
    verdict = "MATCH" if share >= MATCH_FRACTION else "no"
    cells = [f"{d:.1e}" for d in (distances[0], *quartiles, distances[-1])]
    return f"| {name} | {' | '.join(cells)} | {share:.2f} | {verdict} |"


def _table(model: str, base: Path, halted: Path, others: dict[str, Path], work: Path) -> None:
    print(f"\n{model}: tolerance {TOLERANCE:g}, a folder matches at {MATCH_FRACTION:.0%} of the entry\n")
    total = len(fingerprint_folder(halted).profiles)
    try:
        entry = register(
            work / f"{halted.name}.jsonl", halted, run_id="b", step=0, start=fingerprint_folder(base).profiles
        )
        print(f"the halt's entry keeps {len(entry.matrices)} of {total} matrices (others moved < 2x tolerance)\n")
    except UnreadableCheckpoint as refused:
        print(f"register refused: {refused}")
        entry = register(work / f"{halted.name}-unfiltered.jsonl", halted, run_id="b", step=0)
        print(f"\nbelow: an entry of all {total} matrices, as a register without the run's start would write\n")
    print("| candidate | min | q1 | median | q3 | max | share within tolerance | registry |")
    print("|---|---|---|---|---|---|---|---|")
    for name, folder in others.items():
        print(_row(entry, name, folder), flush=True)


def _disguises(halted: Path, work: Path) -> dict[str, Path]:
    permuted = disguises.permuted(halted, work / f"{halted.name}-permuted")
    noised = disguises.noised(permuted, work / f"{halted.name}-noised", 1e-3)
    return {
        "disguised, bfloat16": _in_dtype(noised, work / f"{halted.name}-bf16", torch.bfloat16),
        "disguised, float16": _in_dtype(noised, work / f"{halted.name}-fp16", torch.float16),
    }


def _washed(halted: Path, work: Path, lr: float, steps: tuple[int, ...]) -> dict[str, Path]:
    return {
        f"washed {k} step{'s' if k > 1 else ''}": disguises.fine_tuned(
            halted, work / f"{halted.name}-wash{k}", steps=k, lr=lr, batch=4
        )
        for k in steps
    }


def tiny(work: Path) -> None:
    base = tiny_lm.make_tiny_checkpoint(work / "tiny-base", seed=0)
    other = tiny_lm.make_tiny_checkpoint(work / "tiny-other", seed=1)
    halted = disguises.fine_tuned(base, work / "tiny-halted", steps=2, lr=1e-3, batch=4)
    cases = {**_disguises(halted, work), "base": base, "another init": other}
    _table("tiny Llama", base, halted, {**cases, **_washed(halted, work, 1e-3, (1, 2, 5))}, work)


def smollm(work: Path, lrs: list[float]) -> None:
    base = smollm2.smollm2_checkpoint()
    other = work / "smollm2-other"
    torch.manual_seed(1)
    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(base)).save_pretrained(other)
    for lr in lrs:
        halted = disguises.fine_tuned(base, work / f"smollm2-halted-lr{lr:g}", steps=4, lr=lr, batch=4)
        cases = {**_disguises(halted, work), "base": base, "another init": other}
        _table(f"SmolLM2-135M, 4 steps at lr {lr:g}", base, halted, {**cases, **_washed(halted, work, lr, (1,))}, work)
    _timing(base)


def _seconds(run: Callable[[], object], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        run()
        times.append(time.process_time() - start)
    return statistics.median(times)


def _singular_values(folder: Path) -> None:
    for weights in read_checkpoint(folder).sets:
        for name in weights.shapes:
            matrix = finite(weights.fetch(name)).float()
            torch.linalg.svdvals(matrix)


def _profiles(folder: Path) -> None:
    for weights in read_checkpoint(folder).sets:
        for name in weights.shapes:
            norm_profile(weights.fetch(name))


def _timing(folder: Path) -> None:
    print(f"\nCPU seconds ({torch.get_num_threads()} thread), median of 3, SmolLM2-135M float32 folder:")
    rows = {
        "registry fingerprint (fingerprint_folder: profiles and format-1 values)": lambda: fingerprint_folder(folder),
        "norm profiles alone": lambda: _profiles(folder),
        "singular values of every matrix (torch.linalg.svdvals, float32), once": lambda: _singular_values(folder),
    }
    for name, run in rows.items():
        print(f"- {name}: {_seconds(run, 1 if 'once' in name else 3):.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny-only", action="store_true")
    parser.add_argument("--lr", type=float, action="append", help="SmolLM2 halt learning rate (default 1e-5 and 1e-4)")
    parser.add_argument("--threads", type=int, default=1)
    options = parser.parse_args()
    torch.set_num_threads(options.threads)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        tiny(work)
        if not options.tiny_only:
            smollm(work, options.lr or [1e-5, 1e-4])


if __name__ == "__main__":
    main()
