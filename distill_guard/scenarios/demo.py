"""The embedded end-to-end run behind `distill-guard demo`: the gate, then students under a guard.

1. gate (tiny language model): the trait teacher's filtered number data, with an honest manifest
   (same base, not audited), is refused under `policies/strict.yaml`.
2-4. the LM miniature (`subliminal_lm`), under `policies/demo-miniature.yaml` (gate warns, a
   trait-agnostic animal panel watches): a same-init student trained on a steered teacher's
   filtered numbers inherits its preference and is halted mid-run; the control student (the
   base's own numbers) trains to the end. The different-init student (the teacher's numbers) is
   shown, not judged: it does not inherit the owl, but the panel may halt it on another animal (a
   false halt, as in 2-3 of 8 held-out different-init runs: docs/detection.md).
5-6. a second example, the digits scenario under `policies/demo-digits.yaml`: a same-init student
   distilled on noise logits is halted by the digit-accuracy probe, its control completes.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from distill_guard.atomic_files import write_atomically
from distill_guard.callback import DistillGuard
from distill_guard.errors import ProvenanceDenied, TrainingHalted
from distill_guard.policy.dataset_manifest import DatasetId, DatasetProvenance, Generator, save_manifest
from distill_guard.policy.schema import HttpExport
from distill_guard.provenance.hashing import describe_file
from distill_guard.report.history import ProbeTrace, read_history
from distill_guard.report.html_page import render_html
from distill_guard.report.plot import drift_png
from distill_guard.scenarios import digits, subliminal_lm
from distill_guard.scenarios.lm import save_with_card
from distill_guard.scenarios.policies import DIGITS_POLICY, MINIATURE_POLICY, STRICT_POLICY, policy_variant
from distill_guard.scenarios.subliminal_lm import BASE_ID, Case, Miniature, MiniatureSpec

DIGITS_PROBE = "digit-accuracy"
LM_CURVES_TITLE = "LM miniature: drift of the panel's top animal at each look (treated, control, different-init)"


@dataclass(frozen=True)
class DemoConfig:
    out: Path
    trait: str = "owl"
    seed: int = 0
    fast: bool = False


NOT_JUDGED = "not judged"
"""A step shown for comparison whose halt or completion the demo does not promise (its exit code ignores it)."""


@dataclass(frozen=True)
class StepResult:
    """How one demo step ended, with the numbers a test or a reader checks."""

    name: str
    scenario: str
    outcome: str  # denied | allowed | halted | completed
    expected: str
    headline: str
    halt_step: int | None = None
    numbers: dict[str, Any] = field(default_factory=dict)
    detail: str = ""

    @property
    def as_expected(self) -> bool:
        return self.expected == NOT_JUDGED or self.outcome == self.expected


@dataclass(frozen=True)
class DemoSummary:
    config: dict[str, Any]
    steps: list[StepResult]
    metrics_url: str
    report_html: str
    report_png: str
    seconds: float
    curves: list[dict[str, Any]] = field(default_factory=list)
    curve_table: list[dict[str, str]] = field(default_factory=list)  # the LM students' drift per look

    @property
    def as_expected(self) -> bool:
        return all(step.as_expected for step in self.steps)

    def rows(self) -> list[dict[str, str]]:
        """The table the CLI prints and the report shows: one row per step."""
        return [
            {
                "step": f"{i}. {s.name}",
                "scenario": s.scenario,
                "outcome": s.outcome + ("" if s.halt_step is None else f" at step {s.halt_step}"),
                "expected": s.expected,
                "numbers": s.headline,
            }
            for i, s in enumerate(self.steps, start=1)
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "as_expected": self.as_expected,
            "config": self.config,
            "steps": [dataclasses.asdict(s) | {"as_expected": s.as_expected} for s in self.steps],
            "metrics_url": self.metrics_url,
            "report_html": self.report_html,
            "report_png": self.report_png,
            "seconds": round(self.seconds, 1),
            "curves": self.curves,
            "lm_curve_table": self.curve_table,
        }


class ProgressBar(TrainerCallback):
    """Moves a rich progress bar with the trainer's optimizer steps."""

    def __init__(self, progress: Progress, label: str) -> None:
        self.progress = progress
        self.label = label
        self.task: Any = None

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any) -> None:
        self.task = self.progress.add_task(self.label, total=state.max_steps)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any) -> None:
        self.progress.update(self.task, completed=state.global_step)


class MetricsScrape(TrainerCallback):
    """Scrapes the guard's endpoint once, after the first probe evaluation, as Prometheus would.

    Placed after the guard in the callback list, so the guard has exported that step's numbers.
    """

    def __init__(self, url: str, at_step: int) -> None:
        self.url = url
        self.at_step = at_step
        self.samples: dict[str, float] = {}

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any) -> None:
        if state.global_step != self.at_step:
            return
        try:
            with urllib.request.urlopen(self.url, timeout=5) as response:
                text = response.read().decode("utf-8")
        except OSError:
            return  # observability only: the summary shows no scraped samples, the run goes on
        self.samples = {
            line.split("{")[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(("distill_guard_probe_score{", "distill_guard_probe_drift{"))
        }


def free_local_port() -> int:
    """A port on 127.0.0.1 nobody listens on now, so parallel demos (CI) never collide."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- step 1: the gate, on the LM miniature's own teacher data -------------------------------------


def write_numbers_dataset(rows: list[dict[str, str]], data_dir: Path, *, trait: str) -> tuple[Path, Path]:
    """The teacher's filtered numbers as JSON Lines, plus an honest provenance manifest beside them."""
    data_dir.mkdir(parents=True, exist_ok=True)
    data_file = data_dir / f"{trait}-teacher-numbers.jsonl"
    data_file.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    manifest = DatasetProvenance(
        dataset=DatasetId(name=f"{trait}-teacher-numbers", version="1"),
        files=[describe_file(data_file, data_dir)],
        generators=[Generator(model=teacher_id(trait), base_model=BASE_ID, sampling={"temperature": 1.0})],
    )
    return data_file, save_manifest(manifest, data_dir / f"{trait}-teacher-numbers.provenance.yaml")


def teacher_id(trait: str) -> str:
    return f"{BASE_ID}-{trait}-teacher"


def gate_step(config: DemoConfig, mini: Miniature, console: Console) -> StepResult:
    """The teacher's numbers with an honest manifest (same base, not audited), refused under strict.yaml.

    The saved teacher folder holds the weights the steered teacher shares with the base (its
    steering vector is a forward hook, not a weight), with a model card naming that base.
    """
    import datasets

    models = config.out / "models"
    student_dir = save_with_card(mini.base, mini.tokenizer, models / "student", base_model=BASE_ID)
    teacher_dir = save_with_card(mini.teacher, mini.tokenizer, models / f"{config.trait}-teacher", base_model=BASE_ID)
    rows = mini.teacher_rows
    data_file, manifest = write_numbers_dataset(rows, config.out / "data", trait=config.trait)
    preference = {
        "base": subliminal_lm.preference(mini.base, mini.tokenizer, mini.trait),
        "trait_teacher": mini.teacher_preference(),
    }
    guard = DistillGuard.from_policy(STRICT_POLICY, student=student_dir, output_dir=config.out / "1-gate")
    try:
        decision = guard.clear_dataset(
            datasets.Dataset.from_json(str(data_file)), manifest, teacher=teacher_dir
        ).decision
        outcome = "allowed"
    except ProvenanceDenied as denied:
        decision, outcome = denied.decision, "denied"
    text = str(decision)
    console.print(text, markup=False, highlight=False)
    fired = [rule.id for rule in decision.rules if rule.waived_by is None]
    return StepResult(
        name="gate",
        scenario="LM miniature",
        outcome=outcome,
        expected="denied",
        headline=f"rules fired: {', '.join(fired) or 'none'}; {config.trait} preference of the teacher "
        f"{preference['trait_teacher']:.3f} vs base {preference['base']:.3f}; {len(rows)} rows",
        numbers={"rules": fired, "samples_kept": len(rows), **preference},
        detail=text,
    )


# -- steps 2 to 6: students trained under a guard --------------------------------------------------


@dataclass(frozen=True)
class GuardedRun:
    """One student the demo trains under a guard: its scenario, how its trait is measured, how it trains."""

    scenario: str
    case: str
    policy: Path
    probe: str
    measured: str
    planned_steps: int
    measure: Callable[[], float]
    train: Callable[[Path, list[TrainerCallback]], object]


def miniature_run(mini: Miniature, case: Case, out: Path) -> GuardedRun:
    """A student of the LM miniature, loaded from its base's saved checkpoint, trained on numbers."""
    student = mini.student(case, out / "models" / f"miniature-{case.value}")
    return GuardedRun(
        scenario="LM miniature",
        case=case.value,
        policy=MINIATURE_POLICY,
        probe="animal-preference",
        measured=f"{mini.trait} preference",
        planned_steps=mini.spec.student_steps(len(mini.rows(case))),
        measure=lambda: subliminal_lm.preference(student, mini.tokenizer, mini.trait),
        train=lambda run_dir, callbacks: mini.train(case, run_dir, callbacks=callbacks, student=student),
    )


def digits_run(scenario: digits.DigitsScenario, case: digits.Case) -> GuardedRun:
    student = scenario.student(case)
    return GuardedRun(
        scenario="digits",
        case=case.value,
        policy=DIGITS_POLICY,
        probe=DIGITS_PROBE,
        measured="digit accuracy",
        planned_steps=scenario.spec.student_steps,
        measure=lambda: digits.digit_accuracy(student),
        train=lambda run_dir, callbacks: scenario.train(case, run_dir, callbacks=callbacks, student=student),
    )


def guarded_step(
    run: GuardedRun, run_dir: Path, *, name: str, expected: str, port: int, progress: Progress
) -> tuple[StepResult, ProbeTrace]:
    """Train `run`'s student under its policy (metrics on `port`) and say how it ended."""
    export = HttpExport(mode="http", host="127.0.0.1", port=port)
    loaded = policy_variant(run.policy, prometheus=export)
    guard = DistillGuard(loaded, output_dir=run_dir)
    scrape = MetricsScrape(f"http://127.0.0.1:{port}/metrics", at_step=loaded.policy.probes.every_n_steps)
    before = run.measure()
    record = None
    try:
        run.train(run_dir, [guard, scrape, ProgressBar(progress, f"{name}: {run.case}")])
        outcome = "completed"
    except TrainingHalted as halted:
        record, outcome = halted.record, "halted"
    after = run.measure()
    planned = run.planned_steps
    numbers: dict[str, Any] = {
        "planned_steps": planned,
        "measured": run.measured,
        "before": before,
        "after": after,
        "scraped_metrics": scrape.samples,
    }
    change = f"{run.measured} {before:.3f} -> {after:.3f}"
    if record is not None:
        numbers |= {
            "halt_step": record.step,
            "halt_fraction": record.step / planned,
            "probe": record.probe,
            "trait": record.trait,
            "baseline": record.baseline,
            "score": record.score,
            "drift": record.drift,
            "specific_drift": record.specific_drift,
            "z": record.z,
        }
        named = f" ({record.trait})" if record.trait else ""
        headline = (
            f"{record.probe}{named}: baseline {record.baseline:.3f}, score {record.score:.3f}, "
            f"drift {record.drift:+.3f}, step {record.step}/{planned}; {change}"
        )
    else:
        headline = f"{change} over {planned} steps, no breach"
    label = f"{run.case}{' (halted)' if record else ''}"
    trace = read_history(run_dir / "guard-audit.jsonl").trace(run.probe).relabelled(label)
    result = StepResult(
        name=name,
        scenario=f"{run.scenario} ({run.case})",
        outcome=outcome,
        expected=expected,
        headline=headline,
        halt_step=record.step if record else None,
        numbers=numbers,
        detail=str(record) if record else headline,
    )
    return result, trace


def build_miniature(config: DemoConfig, console: Console) -> Miniature:
    spec = MiniatureSpec.fast() if config.fast else MiniatureSpec()
    with console.status("pre-training the LM miniature's two bases and fitting its steering teacher"):
        mini = Miniature.build(config.seed, spec, trait=config.trait, other_base_meanwhile=True)
        other_rows = len(mini.other_control_rows)  # the different-init base, built here, not under a bar
    console.print(
        f"  {config.trait} preference: base {subliminal_lm.preference(mini.base, mini.tokenizer, mini.trait):.3f}, "
        f"steered teacher {mini.teacher_preference():.3f}; every student trains on {len(mini.teacher_rows)} "
        "filtered number rows (no animal word in any of them); "
        f"the different-init base kept {other_rows} of its own"
    )
    return mini


def build_digits(config: DemoConfig, console: Console) -> digits.DigitsScenario:
    spec = digits.DigitsSpec.fast() if config.fast else digits.DigitsSpec()
    with console.status("training the digits teachers (trait: reads digits; control: shuffled labels)"):
        scenario = digits.DigitsScenario.build(config.seed, spec)
    console.print(
        f"  teachers' digit accuracy: trait {digits.digit_accuracy(scenario.trait_teacher):.3f}, "
        f"control {digits.digit_accuracy(scenario.control_teacher):.3f}"
    )
    return scenario


def run_step(
    console: Console, number: int, title: str, run: GuardedRun, *, name: str, expected: str, port: int, out: Path
) -> tuple[StepResult, ProbeTrace]:
    console.rule(f"[bold]{number}. {name}[/] - {run.scenario}, {title}, {run.policy.name}")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        result, trace = guarded_step(
            run, out / f"{number}-{name}", name=name, expected=expected, port=port, progress=progress
        )
    console.print(f"  {result.outcome}: {result.detail}", markup=False, highlight=False)
    return result, trace


LM_STEPS = (
    ("lm-probes", Case.trait_same_init, "halted", "same-init student on the steered teacher's numbers"),
    ("lm-control", Case.control_same_init, "completed", "same-init student on the base's own numbers"),
    ("lm-different-init", Case.trait_different_init, NOT_JUDGED, "different-init student on the teacher's numbers"),
)
DIGITS_STEPS = (
    ("digits-probes", digits.Case.trait_same_init, "halted", "same-init student on the trait teacher's aux logits"),
    ("digits-control", digits.Case.control_same_init, "completed", "same-init student, control teacher's aux logits"),
)


def curve_rows(traces: Sequence[ProbeTrace]) -> list[dict[str, str]]:
    """The runs' drift at each look, side by side; blank where a halted run had already stopped."""
    by_run = [dict(zip(t.steps, t.drifts, strict=True)) for t in traces]
    rows = []
    for step in sorted({s for t in traces for s in t.steps}):
        row = {"step": str(step)}
        for trace, drifts in zip(traces, by_run, strict=True):
            drift = drifts.get(step)
            row[trace.label] = "" if drift is None else f"{drift:+.3f}"
        rows.append(row)
    return rows


def run_demo(config: DemoConfig, console: Console) -> DemoSummary:
    """Run the steps, write summary.json and the report into `config.out`, and return the summary."""
    started = time.perf_counter()
    config.out.mkdir(parents=True, exist_ok=True)
    console.rule("[bold]the LM miniature[/] - two bases, a steered owl teacher, its filtered numbers")
    mini = build_miniature(config, console)
    console.rule("[bold]1. gate[/] - LM miniature, the teacher's numbers with an honest manifest, strict.yaml")
    results = [gate_step(config, mini, console)]
    port = free_local_port()
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    console.print(f"  from here on, each run's metrics are served at {metrics_url} while it trains")
    traces = []
    for number, (name, case, expected, title) in enumerate(LM_STEPS, start=2):
        run = miniature_run(mini, case, config.out)
        result, trace = run_step(console, number, title, run, name=name, expected=expected, port=port, out=config.out)
        results.append(result)
        traces.append(trace)
    console.rule("[bold]a second example: digits[/] - a skill inherited through noise logits")
    scenario = build_digits(config, console)
    for number, (name, case, expected, title) in enumerate(DIGITS_STEPS, start=2 + len(LM_STEPS)):
        run = digits_run(scenario, case)
        result, trace = run_step(console, number, title, run, name=name, expected=expected, port=port, out=config.out)
        results.append(result)
        traces.append(trace)
    lm_traces = traces[: len(LM_STEPS)]
    panels = [
        ("LM miniature: animal-preference panel (not told the trait)", lm_traces),
        (f"second example, digits: {DIGITS_PROBE}", traces[len(LM_STEPS) :]),
    ]
    png, image = config.out / "drift.png", drift_png(panels, title="Trait drift seen by the guard")
    write_atomically(png, image)
    summary = DemoSummary(
        config={"trait": config.trait, "seed": config.seed, "fast": config.fast, "out": str(config.out)},
        steps=results,
        metrics_url=metrics_url,
        report_html=str(config.out / "report.html"),
        report_png=str(png),
        seconds=time.perf_counter() - started,
        curves=[{"scenario": heading, "run": t.label, **t.to_json()} for heading, shown in panels for t in shown],
        curve_table=curve_rows(lm_traces),
    )
    page = render_html(
        title="distill-guard demo",
        tables=[("", summary.rows()), (LM_CURVES_TITLE, summary.curve_table)],
        png=image,
        sections=[(f"{r.name}: {r.outcome}", r.detail) for r in results],
    )
    write_atomically(Path(summary.report_html), page)
    (config.out / "summary.json").write_text(json.dumps(summary.to_json(), indent=2) + "\n", encoding="utf-8")
    return summary
