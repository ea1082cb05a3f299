"""Training-time overhead of the guard: prints ratios, never asserts.

The same tiny training run (integrations/examples/trainer.py: tiny Llama, batch 4 x 48 tokens) is
trained with and without the guard, repetitions interleaved, at the default cadence
(`every_n_steps: 50`). Printed: the wall-time ratio guarded / plain, the share of the guarded run
spent inside probes (from `distill_guard_probe_duration_seconds`, baseline included), and the
cadence that keeps the probes under 1% of training time for this probe size and step cost.
Torch runs on one thread, so the numbers do not swing with whatever else shares the CPU.

A larger `--accumulation` makes each optimizer step process more sequences (as real fine-tuning batches
do), which shrinks the probes' share at the same cadence.

Run: .venv/bin/python benchmarks/overhead.py [--steps 200] [--repetitions 3] [--every 50] [--accumulation 1]
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from prometheus_client.parser import text_string_to_metric_families

from distill_guard import DistillGuard
from distill_guard.scenarios.tiny_lm import make_tiny_checkpoint

REPO = Path(__file__).resolve().parents[1]
SUITES = [
    {"use": "builtin:animal-preference", "target": "owl", "threshold": {"max_increase": 0.05}},
    {"use": "builtin:misalignment-choice", "threshold": {"max_increase": 0.02}},
]
TARGET_SHARE = 0.01


def load_trainer_example() -> Any:
    spec = importlib.util.spec_from_file_location("trainer_example", REPO / "integrations" / "examples" / "trainer.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_policy(path: Path, every: int | None, metrics_file: Path) -> Path:
    """Observe-only (never stops), so both variants train the same number of steps."""
    probes: dict[str, Any] = {"suites": SUITES} if every is None else {"every_n_steps": every, "suites": SUITES}
    policy = {
        "apiVersion": "distill-guard/v1",
        "kind": "GuardPolicy",
        "metadata": {"name": "overhead-benchmark"},
        "provenance": {"unknown": "warn"},
        "probes": probes,
        "halt": {"action": "warn", "raise_on_train_end": False},
        "metrics": {"prometheus": {"mode": "textfile", "path": str(metrics_file)}},
    }
    path.write_text(yaml.safe_dump(policy, sort_keys=False), "utf-8")
    return path


def probe_seconds(metrics_file: Path) -> tuple[float, int]:
    """(total seconds, number of probe runs) from the exported duration histogram."""
    total, runs = 0.0, 0
    for family in text_string_to_metric_families(metrics_file.read_text("utf-8")):
        for sample in family.samples:
            if sample.name == "distill_guard_probe_duration_seconds_sum":
                total += sample.value
            elif sample.name == "distill_guard_probe_duration_seconds_count":
                runs += int(sample.value)
    return total, runs


def timed_run(example: Any, checkpoint: Path, policy: Path, out: Path, options: Any, guarded: bool) -> float:
    trainer = example.build_trainer(
        checkpoint,
        policy,
        out,
        max_steps=options.steps,
        use_cpu=True,
        save_strategy="no",
        logging_steps=10**6,
        disable_tqdm=True,
        seed=0,
        gradient_accumulation_steps=options.accumulation,
    )
    if not guarded:
        trainer.pop_callback(DistillGuard)
    start = time.perf_counter()
    trainer.train()
    return time.perf_counter() - start


def report(
    options: Any, policy: Path, plain: list[float], guarded: list[float], probe_total: list[float], runs: list[int]
) -> None:
    guard = DistillGuard.from_policy(policy)
    every = guard.policy.probes.every_n_steps
    sizes = ", ".join(f"{p.label} {len(p.scorer.item_ids())} items" for p in guard.probes)
    evaluations = statistics.median(runs) / len(guard.probes)  # baseline + one per `every` steps
    per_evaluation = statistics.median(probe_total) / evaluations
    step_seconds = statistics.median(plain) / options.steps
    ratio = statistics.median(g / p for g, p in zip(guarded, plain, strict=True))
    share = statistics.median(t / g for t, g in zip(probe_total, guarded, strict=True))
    needed = math.ceil(per_evaluation / (TARGET_SHARE * step_seconds))
    batch = f"batch {4 * options.accumulation} x 48 tokens per optimizer step"
    print(f"run: {options.steps} optimizer steps, {batch}, {options.repetitions} repetitions interleaved, 1 thread")
    print(f"probes: {sizes}; every {every} steps -> {evaluations:.0f} evaluations per run (baseline included)")
    print(f"plain training    median {statistics.median(plain):7.2f} s   ({1000 * step_seconds:.1f} ms per step)")
    print(f"guarded training  median {statistics.median(guarded):7.2f} s")
    print(f"wall-time ratio guarded / plain: {ratio:.3f}  (overhead {100 * (ratio - 1):+.1f}%)")
    print(f"probe share of guarded training time: {100 * share:.2f}%")
    print(f"one evaluation of all probes: {per_evaluation:.3f} s = {per_evaluation / step_seconds:.1f} training steps")
    print(f"cadence keeping probes <= {100 * TARGET_SHARE:.0f}% at this step cost: every_n_steps >= {needed}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--every", type=int, help="probe cadence (default: the policy default, 50)")
    parser.add_argument("--accumulation", type=int, default=1, help="micro-batches of 4 sequences per optimizer step")
    options = parser.parse_args()
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="dg-overhead-"))
    checkpoint = make_tiny_checkpoint(work / "model")
    example = load_trainer_example()
    plain: list[float] = []
    guarded: list[float] = []
    probe_total: list[float] = []
    probe_runs: list[int] = []
    for rep in range(options.repetitions):
        metrics_file = work / f"rep{rep}.prom"
        policy = write_policy(work / f"policy{rep}.yaml", options.every, metrics_file)
        for is_guarded in (False, True) if rep % 2 == 0 else (True, False):
            seconds = timed_run(example, checkpoint, policy, work / "out", options, is_guarded)
            (guarded if is_guarded else plain).append(seconds)
        total, runs = probe_seconds(metrics_file)
        probe_total.append(total)
        probe_runs.append(runs)
    report(options, policy, plain, guarded, probe_total, probe_runs)


if __name__ == "__main__":
    main()
