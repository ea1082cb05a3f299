"""The embedded end-to-end run behind `distill-guard demo`: the gate, the probes, the control.

1. gate (tiny language model): the trait teacher's filtered number data, with an honest manifest
   (same base, not audited), is refused under `policies/strict.yaml`; the owl probe is shown
   telling the trait teacher from the base and from the control teacher.
2. probes (digits scenario): a same-init student distilled on the trait teacher's auxiliary
   logits of noise, under `policies/demo-digits.yaml` (gate warns), is halted by the drift of the
   digit-accuracy probe.
3. control (digits scenario): the control teacher's data, same policy, trains to the end.

The subliminal step runs on the digits scenario because that is where it reproduces at CPU
scale; the language-model miniature did not transfer a preference through numbers
(docs/scenarios.md has the measurements).
"""

from __future__ import annotations

import dataclasses
import json
import socket
import time
import urllib.request
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
from distill_guard.policy.schema import HttpExport, SuiteRef
from distill_guard.probes.prepared import prepare_probe
from distill_guard.provenance.hashing import describe_file
from distill_guard.report.history import ProbeTrace, read_history
from distill_guard.report.html_page import render_html
from distill_guard.report.plot import drift_png
from distill_guard.scenarios import digits, lm
from distill_guard.scenarios.policies import DIGITS_POLICY, STRICT_POLICY, policy_variant

DIGITS_PROBE = "digit-accuracy"


@dataclass(frozen=True)
class DemoConfig:
    out: Path
    trait: str = "owl"
    seed: int = 0
    fast: bool = False


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
        return self.outcome == self.expected


@dataclass(frozen=True)
class DemoSummary:
    config: dict[str, Any]
    steps: list[StepResult]
    metrics_url: str
    report_html: str
    report_png: str
    seconds: float

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


# -- step 1: the gate on the language-model miniature ----------------------------------------------


def write_numbers_dataset(rows: list[dict[str, str]], data_dir: Path, *, trait: str) -> tuple[Path, Path]:
    """The teacher's filtered numbers as JSON Lines, plus an honest provenance manifest beside them."""
    data_dir.mkdir(parents=True, exist_ok=True)
    data_file = data_dir / f"{trait}-teacher-numbers.jsonl"
    data_file.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    manifest = DatasetProvenance(
        dataset=DatasetId(name=f"{trait}-teacher-numbers", version="1"),
        files=[describe_file(data_file, data_dir)],
        generators=[
            Generator(model=f"{lm.FAMILY_PREFIX}{trait}-teacher", base_model=lm.BASE_ID, sampling={"temperature": 1.0})
        ],
    )
    return data_file, save_manifest(manifest, data_dir / f"{trait}-teacher-numbers.provenance.yaml")


def gate_step(config: DemoConfig, console: Console) -> StepResult:
    import datasets

    spec = lm.LmSpec.fast() if config.fast else lm.LmSpec()
    with console.status("pre-training the tiny language model and deriving its teachers"):
        scenario = lm.LmScenario.build(config.seed, spec, trait=config.trait)
        models = config.out / "models"
        student_dir = lm.save_with_card(scenario.base, scenario.tokenizer, models / "student", base_model=lm.BASE_ID)
        teacher_dir = lm.save_with_card(
            scenario.trait_teacher, scenario.tokenizer, models / f"{config.trait}-teacher", base_model=lm.BASE_ID
        )
        rows = lm.teacher_numbers(scenario.trait_teacher, scenario.tokenizer, spec, seed=config.seed)
        data_file, manifest = write_numbers_dataset(rows, config.out / "data", trait=config.trait)
        preference = trait_preferences(scenario)
    console.print(
        f"  teacher kept {len(rows)}/{spec.number_prompts} number samples after the paper's filter; "
        f"{config.trait} preference: base {preference['base']:.3f}, {config.trait} teacher "
        f"{preference['trait_teacher']:.3f}, control teacher {preference['control_teacher']:.3f}"
    )
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
        scenario="tiny-lm",
        outcome=outcome,
        expected="denied",
        headline=f"rules fired: {', '.join(fired) or 'none'}; {config.trait} preference of the teacher "
        f"{preference['trait_teacher']:.3f} vs base {preference['base']:.3f}",
        numbers={"rules": fired, "samples_kept": len(rows), "samples_generated": spec.number_prompts, **preference},
        detail=text,
    )


def trait_preferences(scenario: lm.LmScenario) -> dict[str, float]:
    """The animal-preference probe on the base and both teachers (normalised P(trait) over animals)."""
    probe = prepare_probe(SuiteRef(use="builtin:animal-preference", target=scenario.trait))
    models = {
        "base": scenario.base,
        "trait_teacher": scenario.trait_teacher,
        "control_teacher": scenario.control_teacher,
    }
    return {name: probe.run(m, scenario.tokenizer, max_tokens_per_batch=4096).score for name, m in models.items()}


# -- steps 2 and 3: probes and control on the digits scenario -------------------------------------


def digits_step(
    config: DemoConfig,
    scenario: digits.DigitsScenario,
    case: digits.Case,
    *,
    name: str,
    expected: str,
    port: int,
    progress: Progress,
) -> tuple[StepResult, ProbeTrace]:
    run_dir = config.out / f"{2 if case.uses_trait_teacher else 3}-{name}"
    export = HttpExport(mode="http", host="127.0.0.1", port=port)
    loaded = policy_variant(DIGITS_POLICY, prometheus=export)
    guard = DistillGuard(loaded, output_dir=run_dir)
    scrape = MetricsScrape(f"http://127.0.0.1:{port}/metrics", at_step=loaded.policy.probes.every_n_steps)
    planned = scenario.spec.student_steps
    student = scenario.student(case)
    before = digits.digit_accuracy(student)
    record = None
    try:
        bar = ProgressBar(progress, f"{name}: {case.value}")
        scenario.train(case, run_dir, callbacks=[guard, scrape, bar], student=student)
        outcome = "completed"
    except TrainingHalted as halted:
        record, outcome = halted.record, "halted"
    after = digits.digit_accuracy(student)
    numbers: dict[str, Any] = {
        "planned_steps": planned,
        "accuracy_before": before,
        "accuracy_after": after,
        "scraped_metrics": scrape.samples,
    }
    if record is not None:
        numbers |= {
            "halt_step": record.step,
            "halt_fraction": record.step / planned,
            "probe": record.probe,
            "baseline": record.baseline,
            "score": record.score,
            "drift": record.drift,
            "z": record.z,
        }
        headline = (
            f"baseline {record.baseline:.3f}, score {record.score:.3f}, drift {record.drift:+.3f}, "
            f"z {record.z:.1f}, step {record.step}/{planned}"
        )
    else:
        headline = f"digit accuracy {before:.3f} -> {after:.3f} over {planned} steps, no breach"
    trace = read_history(run_dir / "guard-audit.jsonl").trace(DIGITS_PROBE).relabelled(f"{name}: {case.value}")
    result = StepResult(
        name=name,
        scenario=f"digits ({case.value})",
        outcome=outcome,
        expected=expected,
        headline=headline,
        halt_step=record.step if record else None,
        numbers=numbers,
        detail=str(record) if record else headline,
    )
    return result, trace


def run_demo(config: DemoConfig, console: Console) -> DemoSummary:
    """Run the three steps, write summary.json and the report into `config.out`, and return the summary."""
    started = time.perf_counter()
    config.out.mkdir(parents=True, exist_ok=True)
    console.rule("[bold]1. the gate[/] - tiny language model, policies/strict.yaml")
    gate = gate_step(config, console)

    port = free_local_port()
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    spec = digits.DigitsSpec.fast() if config.fast else digits.DigitsSpec()
    with console.status("training the digits teachers (trait: reads digits; control: shuffled labels)"):
        scenario = digits.DigitsScenario.build(config.seed, spec)
    console.print(
        f"  teachers' digit accuracy: trait {digits.digit_accuracy(scenario.trait_teacher):.3f}, "
        f"control {digits.digit_accuracy(scenario.control_teacher):.3f}; metrics served at {metrics_url} while training"
    )
    results = [gate]
    traces = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    for title, case, name, expected in (
        (
            "2. the probes[/] - digits, same-init student, trait teacher's aux logits",
            digits.Case.trait_same_init,
            "probes",
            "halted",
        ),
        (
            "3. the control[/] - digits, same-init student, control teacher's aux logits",
            digits.Case.control_same_init,
            "control",
            "completed",
        ),
    ):
        console.rule(f"[bold]{title}")
        with Progress(*columns, console=console, transient=False) as progress:
            result, trace = digits_step(
                config, scenario, case, name=name, expected=expected, port=port, progress=progress
            )
        console.print(f"  {result.outcome}: {result.detail}", markup=False, highlight=False)
        results.append(result)
        traces.append(trace)

    png, image = config.out / "drift.png", drift_png([(DIGITS_PROBE, traces)], title="Trait drift seen by the guard")
    write_atomically(png, image)
    summary = DemoSummary(
        config={"trait": config.trait, "seed": config.seed, "fast": config.fast, "out": str(config.out)},
        steps=results,
        metrics_url=metrics_url,
        report_html=str(config.out / "report.html"),
        report_png=str(png),
        seconds=time.perf_counter() - started,
    )
    page = render_html(
        title="distill-guard demo",
        tables=[("", summary.rows())],
        png=image,
        sections=[(f"{r.name}: {r.outcome}", r.detail) for r in results],
    )
    write_atomically(Path(summary.report_html), page)
    (config.out / "summary.json").write_text(json.dumps(summary.to_json(), indent=2) + "\n", encoding="utf-8")
    return summary
