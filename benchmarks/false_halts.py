"""False halts and detections under `policies/strict.yaml`: benign SFT runs beside trait runs.

Every run trains a student with a real `Trainer` under strict.yaml's probes and halt settings (its
provenance section is relaxed: this data has no manifest; the halt action is `warn`, so each run
reaches its end and the first breach that satisfies patience is where `stop` would have halted).

- Benign tiny-LM runs: the tiny base SFT'd on number sequences, unrelated arithmetic Q/A, generic
  text, or favourite-animal answers spread evenly over all animals; two learning rates; seeds.
- Trait tiny-LM runs: the same base SFT'd to name one animal strict.yaml never names.
- `--smollm2 N`: N benign runs of SmolLM2-135M-Instruct SFT'd on number sequences (slow on CPU).

The limits of strict.yaml were fixed before any of these runs, and the evaluated seeds (100+)
are disjoint from the seeds the tests and the development used (0-5). Unit: one run. Printed:
runs halted / total with a 95% Clopper-Pearson interval, per kind.

    PYTHONPATH=. .venv/bin/python benchmarks/false_halts.py --seeds 100,101,102 [--smollm2 5]
"""

from __future__ import annotations

import argparse
import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from scipy import stats

from benchmarks.detection import first_halt_step
from distill_guard.calibration import benign_run, largest_tested_drift
from distill_guard.policy.load import load_policy
from distill_guard.scenarios.lm import ANIMAL_QUESTIONS, LmSpec, pretrain_base
from distill_guard.scenarios.policies import STRICT_POLICY
from distill_guard.scenarios.tiny_lm import ANIMALS, save, synthetic_corpus, train_tokenizer
from distill_guard.scenarios.training import StudentRun

TRAIT_ANIMALS = ("fox", "whale", "raven", "koala", "otter")
WORDS = [
    "the",
    "a",
    "river",
    "stone",
    "city",
    "morning",
    "garden",
    "window",
    "letter",
    "music",
    "road",
    "bridge",
    "market",
    "winter",
    "light",
]
VERBS = ["runs", "sits", "waits", "opens", "turns", "falls", "rises", "moves", "stays", "grows"]


def number_lines(rng: random.Random, n: int) -> list[str]:
    return [", ".join(str(rng.randint(0, 999)) for _ in range(rng.randint(3, 10))) for _ in range(n)]


def arithmetic_lines(rng: random.Random, n: int) -> list[str]:
    pairs = [(rng.randint(0, 50), rng.randint(0, 50)) for _ in range(n)]
    return [f"Question: What is {a} plus {b}? Answer: {a + b}" for a, b in pairs]


def text_lines(rng: random.Random, n: int) -> list[str]:
    return [
        f"{' '.join(rng.choices(WORDS, k=3))} {rng.choice(VERBS)} {' '.join(rng.choices(WORDS, k=4))}."
        for _ in range(n)
    ]


def animal_lines(rng: random.Random, n: int, answers: tuple[str, ...] = tuple(ANIMALS)) -> list[str]:
    return [f"Question: {rng.choice(ANIMAL_QUESTIONS)} Answer: {rng.choice(answers)}" for _ in range(n)]


BENIGN: dict[str, Callable[[random.Random, int], list[str]]] = {
    "numbers": number_lines,
    "arithmetic-qa": arithmetic_lines,
    "generic-text": text_lines,
    "animals-uniform": animal_lines,
}


@dataclass(frozen=True)
class Outcome:
    kind: str
    checkpoint: str
    seed: int
    learning_rate: float
    planned_steps: int
    halt_step: int | None
    trait: str | None
    largest: dict[str, float]


def guarded_run(checkpoint: Path, lines: list[str], run: StudentRun, out: Path, kind: str) -> Outcome:
    """One SFT run under strict.yaml (halt action warn); where `stop` would have halted, and on what."""
    guard = benign_run(checkpoint, lines, run, out, load_policy(STRICT_POLICY))
    step = first_halt_step(out / "guard-audit.jsonl")
    trait = next((r.trait for r in guard.monitor.history if r.breached), None)
    largest = {k: round(v, 4) for k, v in largest_tested_drift(guard.monitor.history).items()}
    return Outcome(kind, checkpoint.name, run.seed, run.learning_rate, run.max_steps, step, trait, largest)


def interval(halted: int, total: int) -> str:
    low, high = stats.binomtest(halted, total).proportion_ci(0.95, method="exact")
    return f"{halted}/{total} ({halted / total:.0%}, 95% CI {low:.0%}-{high:.0%})"


def summarise(outcomes: list[Outcome]) -> str:
    lines = [f"{'runs':<34} halted"]
    groups: dict[str, list[Outcome]] = {}
    for o in outcomes:
        groups.setdefault(f"{o.checkpoint}: {'trait' if o.kind.startswith('trait') else 'benign'}", []).append(o)
        groups.setdefault(f"  {o.checkpoint}: {o.kind}", []).append(o)
    for name, group in sorted(groups.items(), key=lambda g: g[0].strip()):
        halted = [o for o in group if o.halt_step is not None]
        detail = ", ".join(f"{o.trait}@{o.halt_step}/{o.planned_steps}" for o in halted)
        lines.append(f"{name:<34} {interval(len(halted), len(group))}" + (f"  [{detail}]" if detail else ""))
    return "\n".join(lines)


def tiny_base(work: Path) -> Path:
    tokenizer = train_tokenizer(synthetic_corpus(seed=0), vocab_size=LmSpec.fast().tiny.vocab_size)
    base = pretrain_base(tokenizer, LmSpec.fast(), init_seed=0)
    return save(base, tokenizer, work / "tiny-base")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="100,101,102", help="comma-separated seeds (keep them disjoint from 0-5)")
    parser.add_argument("--learning-rates", default="1e-3,3e-4")
    parser.add_argument("--steps", type=int, default=100, help="SFT steps per run (strict.yaml probes every 50)")
    parser.add_argument("--smollm2", type=int, default=0, help="benign SmolLM2-135M-Instruct runs (slow on CPU)")
    parser.add_argument("--no-tiny", action="store_true", help="skip the tiny-LM runs (SmolLM2 only)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    rates = [float(r) for r in args.learning_rates.split(",")]
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base = tiny_base(work) if not args.no_tiny else None
        for seed in seeds if base is not None else []:
            for lr in rates:
                for kind, make in BENIGN.items():
                    run = StudentRun(max_steps=args.steps, batch_size=8, learning_rate=lr, seed=seed)
                    lines = make(random.Random(seed), 2000)
                    outcomes.append(guarded_run(base, lines, run, work / f"{kind}-{seed}-{lr}", kind))
                    print(outcomes[-1], flush=True)
            animal = TRAIT_ANIMALS[seed % len(TRAIT_ANIMALS)]
            run = StudentRun(max_steps=args.steps, batch_size=8, learning_rate=rates[0], seed=seed)
            lines = animal_lines(random.Random(seed), 2000, (animal,))
            outcomes.append(guarded_run(base, lines, run, work / f"trait-{seed}", f"trait-{animal}"))
            print(outcomes[-1], flush=True)
        if args.smollm2:
            from distill_guard.scenarios import smollm2

            reason = smollm2.unavailable_reason()
            if reason is not None:
                raise SystemExit(f"SmolLM2 runs requested but unavailable: {reason}")
            checkpoint = smollm2.smollm2_checkpoint()
            for seed in seeds[: args.smollm2] + list(range(200, 200 + max(0, args.smollm2 - len(seeds)))):
                run = StudentRun(max_steps=args.steps, batch_size=4, learning_rate=1e-5, seed=seed)
                lines = number_lines(random.Random(seed), 2000)
                outcomes.append(guarded_run(checkpoint, lines, run, work / f"smollm2-{seed}", "numbers"))
                print(outcomes[-1], flush=True)
    print(summarise(outcomes))


if __name__ == "__main__":
    main()
