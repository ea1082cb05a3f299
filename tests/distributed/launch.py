"""Launch tests/distributed/worker.py on one process per rank plan (two on CPU/gloo in CI) with a hard timeout,
and read each rank's result."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from distill_guard.scenarios.demo import free_local_port
from tests.conftest import REPO

WORKER = Path(__file__).with_name("worker.py")
HARD_TIMEOUT_SECONDS = 240
LAUNCHERS = {
    "torchrun": ["torchrun", "--nproc_per_node", "{n}", "--master_port"],
    "accelerate": ["accelerate", "launch", "--multi_gpu", "--num_processes", "{n}", "--main_process_port"],
}


@dataclass(frozen=True)
class RankPlan:
    """What one rank trains under: its own policy file and its own planned controlled-probe scores."""

    policy: Path
    scores: list[Any]


@dataclass(frozen=True)
class LaunchedRun:
    results: list[dict[str, Any]]
    output_dir: Path
    log: str


def _kill_launch(process: subprocess.Popen[str]) -> None:
    """Kill the launcher and every worker: torchrun starts its workers in sessions of their own, so
    killing the launcher's process group alone would orphan them, holding the log pipe open forever."""
    workers = psutil.Process(process.pid).children(recursive=True)
    os.killpg(process.pid, signal.SIGKILL)
    for worker in workers:
        with contextlib.suppress(psutil.NoSuchProcess):
            worker.kill()


def launch_ranks(
    workdir: Path,
    checkpoint: Path,
    plans: list[RankPlan],
    *,
    max_steps: int = 0,
    launcher: str = "torchrun",
    worker: Path = WORKER,
    training_args: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> LaunchedRun:
    """Run every rank to the end; a hang past the hard timeout kills the whole process group and fails."""
    scenario = workdir / "scenario.json"
    output_dir, results = workdir / "out", workdir / "results"
    ranks = [{"policy": str(p.policy), "scores": p.scores} for p in plans]
    scenario.write_text(
        json.dumps(
            {
                "checkpoint": str(checkpoint),
                "output_dir": str(output_dir),
                "results": str(results),
                "max_steps": max_steps,
                "ranks": ranks,
                "training_args": training_args or {},
            }
        ),
        "utf-8",
    )
    program = Path(sys.executable).with_name(LAUNCHERS[launcher][0])
    options = [option.format(n=len(plans)) for option in LAUNCHERS[launcher][1:]]
    command = [str(program), *options, str(free_local_port()), str(worker), str(scenario)]
    python_path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    environment = {**os.environ, "PYTHONPATH": python_path, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    environment.update(env or {})
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        log, _ = process.communicate(timeout=HARD_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        _kill_launch(process)
        log, _ = process.communicate(timeout=30)
        raise AssertionError(f"{len(plans)}-rank run hung for {HARD_TIMEOUT_SECONDS}s:\n{log[-4000:]}") from None
    assert process.returncode == 0, f"{launcher} exited {process.returncode}:\n{log[-4000:]}"
    found = [json.loads((results / f"rank-{r}.json").read_text("utf-8")) for r in range(len(plans))]
    return LaunchedRun(found, output_dir, log)
