"""Cold start of each distill-guard command, as a ratio to `python -c "import yaml, pydantic"`.

Every repetition runs the baseline and every command once, in a rotated order, so load from other
processes falls on all of them alike; the ratio of a repetition is command / baseline of that same
repetition. Warm: one discarded round first, and bytecode cached for every process as an installed
package has it (pip writes .pyc files at install; a checkout run under PYTHONDONTWRITEBYTECODE would
recompile distill-guard's modules, and only those, in every process: a cost no user pays), in a
temporary PYTHONPYCACHEPREFIX so the checkout is not written to. Prints the median ratio with its
quartiles, for CPU time (user + system of the child) and wall time. On a machine other processes
load, CPU time still grows with their cache and memory traffic; `--instructions` also counts the
instructions each review command executes under valgrind's callgrind (one run each, deterministic,
blind to load), as a ratio to the baseline's count.

    .venv/bin/python benchmarks/cold_start.py                 # about two minutes on 2 CPU cores
    .venv/bin/python benchmarks/cold_start.py --repeats 5     # quicker, noisier
    .venv/bin/python benchmarks/cold_start.py --instructions  # plus instruction counts (valgrind; ~2 min more)
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

BASELINE = "import yaml, pydantic"
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # PYTHONPYCACHEPREFIX set in main
ENTRY = "import sys; from distill_guard.cli.main import main; sys.argv[0] = 'distill-guard'; main()"


def prepare(folder: Path) -> dict[str, tuple[list[str], set[int]]]:
    """Inputs written once; each command with the exit codes that mean it did its work."""
    policy = folder / "strict.yaml"
    subprocess.run(
        [sys.executable, "-c", ENTRY, "export", "policy", "strict", "--out", str(folder)], check=True, env=ENV
    )
    data = folder / "numbers.jsonl"
    data.write_text('{"text": "1 2 3"}\n' * 100, "utf-8")
    student = folder / "student"  # real (tiny) weights, no teacher: check compares nothing, so needs no torch
    student.mkdir()
    (student / "README.md").write_text("---\nbase_model: other-lab/base\n---\n", "utf-8")
    (student / "config.json").write_text('{"model_type": "llama"}', "utf-8")
    save_file({"w": np.zeros((4, 4), dtype=np.float32)}, str(student / "model.safetensors"))
    manifest = folder / "numbers.provenance.yaml"
    create = ["manifest", "create", str(data), "--out", str(manifest), "--name", "n", "--version", "1"]
    subprocess.run(
        [sys.executable, "-c", ENTRY, *create, "--generator", "a/b"], check=True, capture_output=True, env=ENV
    )
    return {
        "--help": (["--help"], {0}),
        "policy validate": (["policy", "validate", str(policy)], {0}),
        "policy explain --markdown": (["policy", "explain", "--markdown", str(policy)], {0}),
        "manifest verify": (["manifest", "verify", str(manifest)], {0}),
        "check (no teacher)": (
            ["check", "--policy", str(policy), "--student", str(student), "--manifest", str(manifest)],
            {0, 3},
        ),
        "export schema": (["export", "schema", "--out", str(folder / "schema.json"), "--force"], {0}),
        "demo --help": (["demo", "--help"], {0}),
        "import distill_guard.callback": (["<python>", "import distill_guard.callback"], {0}),
    }


def timed(argv: list[str], expected: set[int], cwd: Path) -> tuple[float, float]:
    """(CPU s, wall s) of one run, in `cwd` (the temporary folder: `check` writes its audit log there)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, env=ENV, cwd=cwd)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in expected:
        raise SystemExit(f"{argv}: exit {done.returncode}\n{done.stderr.decode(errors='replace')}")
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, wall


# The commands a pre-commit hook or CI review job runs: the ones whose start-up cost is paid on every commit.
REVIEW_COMMANDS = ("--help", "policy validate", "policy explain --markdown", "manifest verify", "export schema")


def instructions(argv: list[str]) -> int:
    """Instructions the process executes (user space, all of it), counted by callgrind."""
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
        capture_output=True,
        text=True,
        env=ENV,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"valgrind gave no instruction count for {argv}:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def argv_of(args: list[str]) -> list[str]:
    return [sys.executable, "-c", args[1]] if args[0] == "<python>" else [sys.executable, "-c", ENTRY, *args]


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--instructions", action="store_true", help="also count instructions (needs valgrind)")
    options = parser.parse_args()
    repeats = options.repeats
    if options.instructions and shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    counted: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ENV["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        commands = prepare(Path(tmp))
        runs: list[tuple[str, list[str], set[int]]] = [("baseline", [sys.executable, "-c", BASELINE], {0})]
        runs += [(name, argv_of(args), codes) for name, (args, codes) in commands.items()]
        for _, argv, codes in runs:  # warm-up, discarded: bytecode written, files in the page cache
            timed(argv, codes, Path(tmp))
        cpu: dict[str, list[float]] = {name: [] for name, _, _ in runs}
        wall: dict[str, list[float]] = {name: [] for name, _, _ in runs}
        for rep in range(repeats):
            shift = rep % len(runs)
            for name, argv, codes in runs[shift:] + runs[:shift]:
                c, w = timed(argv, codes, Path(tmp))
                cpu[name].append(c)
                wall[name].append(w)
        if options.instructions:
            counted = {name: instructions(argv) for name, argv, _ in runs if name in ("baseline", *REVIEW_COMMANDS)}
    print(f"{repeats} interleaved repetitions; baseline: python -c {BASELINE!r}")
    base_cpu, base_wall = statistics.median(cpu["baseline"]), statistics.median(wall["baseline"])
    print(f"baseline median: {base_cpu:.3f} s CPU, {base_wall:.3f} s wall")
    print(f"{'command':<32} {'CPU s':>7} {'CPU ratio (q1-q3)':>22} {'wall s':>7} {'wall ratio (q1-q3)':>22}")
    for name, _, _ in runs[1:]:
        cpu_ratio = quartiles([c / b for c, b in zip(cpu[name], cpu["baseline"], strict=True)])
        wall_ratio = quartiles([w / b for w, b in zip(wall[name], wall["baseline"], strict=True)])
        print(
            f"{name:<32} {statistics.median(cpu[name]):7.3f} "
            f"{cpu_ratio[1]:8.2f} ({cpu_ratio[0]:5.2f}-{cpu_ratio[2]:5.2f}) "
            f"{statistics.median(wall[name]):7.3f} "
            f"{wall_ratio[1]:8.2f} ({wall_ratio[0]:5.2f}-{wall_ratio[2]:5.2f})"
        )
    if counted:
        print(f"\ninstructions (callgrind, one run each); baseline: {counted['baseline'] / 1e6:.0f} M")
        for name in REVIEW_COMMANDS:
            print(f"{name:<32} {counted[name] / 1e6:7.0f} M {counted[name] / counted['baseline']:8.2f}")


if __name__ == "__main__":
    main()
