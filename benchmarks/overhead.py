"""Training-time overhead of the guard: prints ratios, never asserts.

The same tiny training run (integrations/examples/trainer.py: tiny Llama, 4 sequences of 48 tokens
per micro-batch) is trained with and without the guard, repetitions interleaved, at the default
cadence (`every_n_steps: 50`) with the two built-in suites of policies/strict.yaml. Printed: the
wall-time ratio guarded / plain; one evaluation of all probes (timed apart, on the same model) and
its share of the guarded run; and the cadence that keeps probes under 1% of training time at this
probe size and step cost. Torch runs on one thread, so the numbers swing less with whatever else
shares the CPU.

`--accumulation K` puts K micro-batches in each optimizer step, as real fine-tuning batches are
larger, which shrinks the probes' share at the same cadence. `--export textfile` adds the cost of
the node-exporter textfile exporter (the default policy exports nothing).

`--model smollm2` measures SmolLM2-135M-Instruct instead (a real model, its chat template, float32,
`--batch` sequences of `--seq-len` tokens per step). A 50-step run does not fit a benchmark on
CPU, so each step is timed: a plain run and a guarded run (probes every 2 steps, so evaluation
and non-evaluation steps alternate), with the time spent inside the guard's `on_step_end` read by
timers on either side of it. The slowdown at cadence k is then measured per step:
(guard time of one evaluation step + (k - 1) non-evaluation steps) / (k plain steps).

Run: .venv/bin/python benchmarks/overhead.py [--steps 200] [--repetitions 3] [--every 50] [--accumulation 1]
     .venv/bin/python benchmarks/overhead.py --model smollm2 [--batch 4] [--seq-len 256]   # ~10 min, 1 thread
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
from transformers import TrainerCallback

from distill_guard import DistillGuard
from distill_guard.policy.schema import ProbesPolicy
from distill_guard.scenarios import smollm2, tiny_lm

REPO = Path(__file__).resolve().parents[1]
SUITES = [
    {"use": "builtin:animal-preference", "target": "owl", "threshold": {"max_increase": 0.05}},
    {"use": "builtin:misalignment-choice", "threshold": {"max_increase": 0.02}},
]
TARGET_SHARE = 0.01
PROBE_TIMINGS = 5


def load_trainer_example() -> Any:
    spec = importlib.util.spec_from_file_location("trainer_example", REPO / "integrations" / "examples" / "trainer.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_policy(work: Path, options: argparse.Namespace) -> Path:
    """Observe-only (never stops), so both variants train the same number of steps."""
    prometheus = {"mode": "textfile", "path": str(work / "guard.prom")} if options.export == "textfile" else None
    policy = {
        "apiVersion": "distill-guard/v1",
        "kind": "GuardPolicy",
        "metadata": {"name": "overhead-benchmark"},
        "provenance": {"unknown": "warn"},
        "probes": {"every_n_steps": options.every, "suites": SUITES},
        "halt": {"action": "warn", "raise_on_train_end": False},
        "metrics": {"prometheus": prometheus or {"mode": "none"}},
    }
    path = work / "policy.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False), "utf-8")
    return path


def timed_run(
    example: Any, checkpoint: Path, policy: Path, out: Path, options: argparse.Namespace, guarded: bool
) -> float:
    trainer = example.build_trainer(
        checkpoint,
        policy,
        out,
        max_steps=options.steps,
        gradient_accumulation_steps=options.accumulation,
        use_cpu=True,
        save_strategy="no",
        logging_steps=10**6,
        disable_tqdm=True,
        seed=0,
    )
    if not guarded:
        trainer.pop_callback(DistillGuard)
    start = time.perf_counter()
    trainer.train()
    return time.perf_counter() - start


def evaluation_seconds(guard: DistillGuard, checkpoint: Path) -> float:
    """Median wall time of one evaluation of every probe of the policy, the way the callback runs them."""
    model, tokenizer = tiny_lm.load(checkpoint)
    budget = guard.policy.probes.max_tokens_per_batch
    timings = []
    for _ in range(PROBE_TIMINGS):
        start = time.perf_counter()
        for probe in guard.probes:
            probe.run(model, tokenizer, max_tokens_per_batch=budget)
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def report(
    options: argparse.Namespace, guard: DistillGuard, plain: list[float], guarded: list[float], probe: float
) -> None:
    sizes = ", ".join(f"{p.label} {len(p.scorer.item_ids())} items" for p in guard.probes)
    evaluations = 1 + options.steps // options.every  # the baseline, then one every `every` steps
    step_seconds = statistics.median(plain) / options.steps
    ratio = statistics.median(g / p for g, p in zip(guarded, plain, strict=True))
    share = evaluations * probe / statistics.median(guarded)
    batch = f"{4 * options.accumulation} x 48 tokens per optimizer step"
    print(f"run: {options.steps} optimizer steps of {batch}; {options.repetitions} repetitions interleaved; 1 thread")
    print(f"guard: {sizes}; every {options.every} steps ({evaluations} evaluations with the baseline)")
    print(f"metrics export: {options.export}")
    print(f"plain training    median {statistics.median(plain):7.2f} s   ({1000 * step_seconds:.1f} ms per step)")
    print(f"guarded training  median {statistics.median(guarded):7.2f} s")
    print(
        f"measured slowdown, guarded / plain wall time (median of per-repetition ratios, baseline included): "
        f"{ratio:.3f} ({100 * (ratio - 1):+.1f}%)"
    )
    print(f"one evaluation of all probes: {probe:.3f} s = {probe / step_seconds:.1f} optimizer steps")
    print(f"derived, not measured: evaluations x one evaluation / guarded time = {100 * share:.1f}%")
    needed = math.ceil(probe / (TARGET_SHARE * step_seconds))
    print(f"cadence keeping probes <= {100 * TARGET_SHARE:.0f}% at this step cost: every_n_steps >= {needed}")


class Stopwatch(TrainerCallback):
    """Timestamps of every step's begin and end; two of them around the guard time its on_step_end."""

    def __init__(self) -> None:
        self.begins: list[float] = []
        self.ends: list[float] = []
        self.train_begin = math.nan

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.train_begin = time.perf_counter()

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.begins.append(time.perf_counter())

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.ends.append(time.perf_counter())


def smollm2_trainer(checkpoint: Path, policy: Path | None, out: Path, options: argparse.Namespace, steps: int) -> Any:
    """SmolLM2 fine-tuned on packed text: `--batch` rows of `--seq-len` tokens per optimizer step."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments, default_data_collator

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    stream = tokenizer(" ".join(tiny_lm.synthetic_corpus(seed=1)))["input_ids"]
    length = options.seq_len
    rows = [stream[i : i + length] for i in range(0, len(stream) - length, length)][: steps * options.batch]
    data = Dataset.from_dict({"input_ids": rows, "labels": rows})
    args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=options.batch,
        learning_rate=1e-5,
        max_steps=steps,
        use_cpu=True,
        save_strategy="no",
        logging_steps=10**6,
        disable_tqdm=True,
        report_to=[],
        seed=0,
    )
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    callbacks = [DistillGuard.from_policy(policy)] if policy is not None else []
    return Trainer(
        model=model,
        args=args,
        train_dataset=data,
        data_collator=default_data_collator,
        processing_class=tokenizer,
        callbacks=callbacks,
    )


def timed_steps(trainer: Any) -> tuple[list[float], list[float], float]:
    """Per step: its whole duration and the time inside the guard's on_step_end; and the time before
    the first step (the guard's baseline evaluation, when guarded)."""
    before, after = Stopwatch(), Stopwatch()
    trainer.callback_handler.callbacks.insert(0, before)
    trainer.add_callback(after)
    trainer.train()
    steps = [e - b for b, e in zip(before.begins, after.ends, strict=True)]
    inside = [a - b for b, a in zip(before.ends, after.ends, strict=True)]
    return steps, inside, before.begins[0] - before.train_begin


def smollm2_overhead(options: argparse.Namespace) -> None:
    reason = smollm2.unavailable_reason()
    if reason is not None:
        raise SystemExit(reason)
    checkpoint = smollm2.smollm2_checkpoint()
    work = Path(tempfile.mkdtemp(prefix="dg-overhead-smollm2-"))
    cadence = options.every
    options.every = 2  # evaluation and non-evaluation steps alternate in the guarded run
    policy = write_policy(work, options)
    plain_steps, _, plain_start = timed_steps(smollm2_trainer(checkpoint, None, work / "a", options, 3))
    steps, inside, baseline = timed_steps(smollm2_trainer(checkpoint, policy, work / "b", options, 4))
    plain = statistics.median(plain_steps[1:])  # the first step of a run warms allocators up
    evaluating, quiet = [inside[1], inside[3]], [inside[2]]
    guard_eval, guard_quiet = statistics.median(evaluating), statistics.median(quiet)
    training_guarded = statistics.median([steps[i] - inside[i] for i in (1, 2, 3)])
    guard = DistillGuard.from_policy(policy)
    sizes = ", ".join(f"{p.label} {len(p.scorer.item_ids())} items" for p in guard.probes)

    def slowdown(k: int) -> float:
        return (guard_eval + (k - 1) * guard_quiet) / (k * plain)

    print(f"SmolLM2-135M-Instruct, float32, 1 torch thread; {options.batch} x {options.seq_len} tokens per step")
    print(f"guard: {sizes}; evaluation and non-evaluation steps alternate (probes every 2 steps)")
    print(f"plain step                   {plain:7.2f} s   (steps 2, 3: {plain_steps[1]:.2f}, {plain_steps[2]:.2f})")
    print(f"guarded step, training part  {training_guarded:7.2f} s   (steps 2-4, guard time excluded)")
    print(f"guard time, evaluation step  {guard_eval:7.2f} s   (steps 2, 4: {evaluating[0]:.2f}, {evaluating[1]:.2f})")
    print(f"guard time, other steps      {1000 * guard_quiet:7.2f} ms  (step 3)")
    print(f"training part, guarded / plain: {training_guarded / plain:.3f}  (the guard leaves training itself alone)")
    print(f"baseline at train begin      {baseline:7.2f} s   (one-off; plain run {plain_start:.2f} s)")
    print(f"measured slowdown at every_n_steps={cadence}: {100 * slowdown(cadence):.2f}%")
    needed = next((k for k in range(1, 10**6) if slowdown(k) <= TARGET_SHARE), None)
    print(f"cadence keeping the slowdown <= {100 * TARGET_SHARE:.0f}% at this batch: every_n_steps >= {needed}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--every", type=int, default=ProbesPolicy.model_fields["every_n_steps"].default)
    parser.add_argument("--accumulation", type=int, default=1, help="micro-batches per optimizer step")
    parser.add_argument("--export", choices=["none", "textfile"], default="none")
    parser.add_argument("--model", choices=["tiny", "smollm2"], default="tiny")
    parser.add_argument("--batch", type=int, default=4, help="smollm2: sequences per step")
    parser.add_argument("--seq-len", type=int, default=256, help="smollm2: tokens per sequence")
    options = parser.parse_args()
    torch.set_num_threads(1)
    if options.model == "smollm2":
        smollm2_overhead(options)
        return
    work = Path(tempfile.mkdtemp(prefix="dg-overhead-"))
    checkpoint = tiny_lm.make_tiny_checkpoint(work / "model")
    policy = write_policy(work, options)
    example = load_trainer_example()
    plain: list[float] = []
    guarded: list[float] = []
    for rep in range(options.repetitions):
        for is_guarded in (False, True) if rep % 2 == 0 else (True, False):
            seconds = timed_run(example, checkpoint, policy, work / "out", options, is_guarded)
            (guarded if is_guarded else plain).append(seconds)
    guard = DistillGuard.from_policy(policy)
    report(options, guard, plain, guarded, evaluation_seconds(guard, checkpoint))


if __name__ == "__main__":
    main()
