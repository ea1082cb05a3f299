"""Policy language v1 (`apiVersion: distill-guard/v1`, `kind: GuardPolicy`).

Field-level rules live here; rules that relate two places in the file (a waiver naming a rule,
duplicate ids, a threshold that only makes sense for some suites) live in `semantics.py` so
they can point at the exact line.
"""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StrictBool, StrictFloat, StrictInt, field_validator, model_validator

from distill_guard.policy.strict_model import StrictModel, visible

API_VERSION = "distill-guard/v1"
Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$", description="lower-case id: a-z 0-9 . _ -")]
Glob = Annotated[
    str,
    Field(min_length=1, max_length=300, description="shell-style pattern, e.g. 'Qwen/Qwen2.5-*'"),
    AfterValidator(visible),
]
NonEmpty = Annotated[str, Field(min_length=1, max_length=2000)]


class Metadata(StrictModel):
    name: Slug
    owner: NonEmpty | None = None
    description: NonEmpty | None = None


class Student(StrictModel):
    """What the policy states about the model being trained; stated facts outrank inferred ones."""

    base_model: NonEmpty | None = Field(None, description="hub id of the student's base model")
    family: Slug | None = Field(None, description="family name from `families`, when stated outright")


class ArchitectureFingerprint(StrictModel):
    """Numbers that identify a base family when a checkpoint carries no card metadata."""

    model_type: NonEmpty | None = None
    hidden_size: StrictInt | None = Field(None, gt=0)
    num_hidden_layers: StrictInt | None = Field(None, gt=0)
    vocab_size: StrictInt | None = Field(None, gt=0)
    tokenizer_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> ArchitectureFingerprint:
        if all(v is None for v in self.model_dump().values()):
            raise ValueError("a fingerprint needs at least one field")
        return self


class Family(StrictModel):
    """Base models that are behaviourally matched: data from one can carry traits into another."""

    name: Slug
    match: list[Glob] = Field(min_length=1, description="hub ids belonging to this family")
    fingerprints: list[ArchitectureFingerprint] = Field(default_factory=list)


class Action(str, Enum):
    deny = "deny"
    drop_records = "drop_records"
    warn = "warn"


class UnknownAction(str, Enum):
    deny = "deny"
    warn = "warn"


class Audit(StrictModel):
    ref: NonEmpty = Field(description="ticket or report of the audit")
    expires: dt.date
    by: NonEmpty | None = None


class TrustedGenerator(StrictModel):
    match: Glob = Field(description="generator model ids this audit covers")
    audit: Audit


class TrustedSigner(StrictModel):
    name: Slug
    public_key: Annotated[str, Field(pattern=r"^[A-Za-z0-9+/]{43}=$", description="Ed25519 raw key, base64")]


class TeacherFamily(StrictModel):
    """The policy's own statement of a generator's family: verified evidence, because a reviewer wrote it."""

    match: Glob = Field(description="generator model ids this statement covers")
    family: Slug = Field(description="family name from `families`")


class When(StrictModel):
    """Matchers; all given ones must hold for the rule to fire. An empty `when` matches everything."""

    teacher_family: Literal["same_as_student", "different_from_student", "unknown"] | list[Slug] | None = None
    teacher_trusted: StrictBool | None = None
    generator: list[Glob] | None = None
    dataset: list[Glob] | None = None

    @field_validator("generator", "dataset", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value


class Rule(StrictModel):
    id: Slug
    when: When = Field(default_factory=When)
    action: Action
    message: NonEmpty | None = None


class Waiver(StrictModel):
    rule: Slug
    dataset: Glob
    reason: Annotated[str, Field(min_length=10, max_length=2000)]
    expires: dt.date
    approved_by: NonEmpty | None = None


class ProvenancePolicy(StrictModel):
    unknown: UnknownAction = Field(UnknownAction.deny, description="what to do with data of unknown origin")
    record_column: NonEmpty = Field("provenance", description="per-record generator column, when present")
    require_signature: StrictBool = False
    trust_unsigned_claims: StrictBool = Field(
        False,
        description="let unsigned family claims (manifest base_model, generator ids, model cards, adapter "
        "configs) show a teacher is of another family; off: only the policy or a trusted signer can",
    )
    trusted_signers: list[TrustedSigner] = Field(default_factory=list)
    trusted_generators: list[TrustedGenerator] = Field(default_factory=list)
    teacher_families: list[TeacherFamily] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)
    waivers: list[Waiver] = Field(default_factory=list)


RETIRED_MIN_Z = (
    "min_z was retired in 0.3: the halt test now takes its level from `halt.false_halt_rate` (a per-run "
    "false-halt rate split over the planned looks, with Student-t quantiles); remove min_z (docs/detection.md)"
)


class Threshold(StrictModel):
    """When a probe's drift counts as a breach. At least one limit; all given limits are checked.

    Each limit is tested, not compared: a look breaches when the one-sided lower confidence bound
    of the mean over the items lies above the limit, at the level `halt.false_halt_rate` allots
    to that look. For candidate-answer probes the tested drift is the specific drift.
    """

    max_increase: StrictFloat | None = Field(
        None, gt=0, allow_inf_nan=False, description="drift (specific drift for candidate probes) above this"
    )
    max_relative_increase: StrictFloat | None = Field(
        None, gt=0, allow_inf_nan=False, description="drift / baseline above this"
    )
    max_score: StrictFloat | None = Field(None, allow_inf_nan=False, description="absolute ceiling on the score")
    benign_margin: StrictFloat | None = Field(
        None,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="derive each watched candidate's max_increase from probes.benign_drift: "
        "max(max_increase, its calibrated benign maximum + this margin) (docs/detection.md)",
    )
    min_z: StrictFloat | None = Field(None, description="retired in 0.3; see halt.false_halt_rate")
    patience: StrictInt = Field(
        1, ge=1, le=1000, description="consecutive rejecting looks before acting (never raises the false-halt rate)"
    )

    @field_validator("min_z", mode="before")
    @classmethod
    def _min_z_retired(cls, value: object) -> object:
        if value is not None:
            raise ValueError(RETIRED_MIN_Z)
        return value

    @model_validator(mode="after")
    def _has_limit(self) -> Threshold:
        if self.max_increase is None and self.max_relative_increase is None and self.max_score is None:
            raise ValueError("give at least one of max_increase, max_relative_increase, max_score")
        if self.benign_margin is not None and self.max_increase is None:
            raise ValueError("benign_margin raises max_increase per candidate; give max_increase too")
        return self

    @property
    def limit_count(self) -> int:
        """How many limits are tested at each look (each is one test of the look's budget)."""
        return sum(v is not None for v in (self.max_increase, self.max_relative_increase, self.max_score))


class HaltAction(str, Enum):
    stop = "stop"
    warn = "warn"


class SuiteRef(StrictModel):
    """One probe suite to run: a built-in by name (`use: builtin:NAME`) or a suite file (`path`)."""

    use: Annotated[str, Field(pattern=r"^builtin:[a-z0-9-]+$")] | None = None
    path: NonEmpty | None = None
    name: Slug | None = Field(None, description="label in metrics and records; defaults to the suite's")
    target: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    panel: StrictBool = Field(False, description="watch every candidate of a preference suite, not one target")
    stand_out: StrictBool = Field(
        True,
        description="panels: a candidate halts only if its drift also stands out from the other candidates' "
        "drifts in the same look (docs/detection.md); false: the limit alone",
    )
    stand_out_group: StrictInt = Field(
        1,
        ge=1,
        le=8,
        description="panels: the largest group of top candidates that may stand out together (1: each alone); "
        "a trait that raises a few candidates with it hides from the test of one alone (docs/detection.md)",
    )
    threshold: Threshold | None = None
    on_error: HaltAction | None = Field(None, description="when the probe raises; defaults to halt.action")

    @model_validator(mode="after")
    def _exactly_one_source(self) -> SuiteRef:
        if (self.use is None) == (self.path is None):
            raise ValueError("give exactly one of 'use' (builtin:NAME) or 'path'")
        if self.panel and self.target is not None:
            raise ValueError("a panel watches every candidate; give 'panel: true' or a 'target', not both")
        for key in ("stand_out", "stand_out_group"):
            if key in self.model_fields_set and not self.panel:
                raise ValueError(f"'{key}' compares a panel's candidates with each other; it needs 'panel: true'")
        if "stand_out_group" in self.model_fields_set and not self.stand_out:
            raise ValueError("'stand_out_group' sizes the stand-out test, which 'stand_out: false' turns off")
        return self

    @property
    def builtin_name(self) -> str | None:
        return self.use.removeprefix("builtin:") if self.use else None


class ProbesPolicy(StrictModel):
    every_n_steps: StrictInt = Field(50, ge=1, le=1_000_000, description="optimizer steps between probe runs")
    on_evaluate: StrictBool = Field(False, description="also probe after each evaluation")
    max_tokens_per_batch: StrictInt = Field(4096, ge=64, le=1_048_576)
    calibrate_noise: StrictBool = Field(False, description="probe twice at baseline to measure the noise floor")
    benign_drift: NonEmpty | None = Field(
        None,
        description="file written by `distill-guard calibrate`; validate warns about limits inside it, and "
        "thresholds with benign_margin derive their limits from it",
    )
    suites: list[SuiteRef] = Field(default_factory=list)


class HaltPolicy(StrictModel):
    action: HaltAction = HaltAction.stop
    false_halt_rate: StrictFloat = Field(
        0.01,
        gt=0,
        le=0.5,
        allow_inf_nan=False,
        description="chance a run with no drift beyond its limits is halted anyway, per run (docs/detection.md)",
    )
    raise_on_train_end: StrictBool = Field(
        True, description="trainer.train() raises TrainingHalted at the halting step, before any save or upload"
    )
    save_halted_checkpoint: StrictBool = Field(
        False, description="let the Trainer save the halting step's checkpoint (for review or resume_after_halt)"
    )
    quarantine_checkpoints: StrictBool = Field(
        True, description="mark a checkpoint of a halted model before it is written"
    )
    quarantine_registry: NonEmpty | None = Field(
        None,
        description=(
            "JSON Lines file outside the checkpoints (relative to the policy) where a kept halted checkpoint's "
            "weight fingerprint is recorded; the gate denies a student or teacher that matches one"
        ),
    )


# Outside 9100-9999, which Prometheus' port-allocation list has handed out in full (9464 there is
# OpenTelemetry's Prometheus exporter), and in no services list, so a guard never fights an exporter.
DEFAULT_HTTP_PORT = 19464


class HttpExport(StrictModel):
    mode: Literal["http"]
    host: NonEmpty = "127.0.0.1"  # loopback unless the policy opens it (0.0.0.0 in a pod, for a PodMonitor)
    port: StrictInt = Field(DEFAULT_HTTP_PORT, ge=0, le=65535)


class PushgatewayExport(StrictModel):
    mode: Literal["pushgateway"]
    url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")]
    job: Slug = "distill-guard"
    interval_seconds: StrictFloat = Field(15.0, gt=0, le=3600)
    delete_on_finish: StrictBool = False


class TextfileExport(StrictModel):
    mode: Literal["textfile"]
    path: NonEmpty = Field(description="a *.prom file in node-exporter's textfile collector directory")

    @field_validator("path")
    @classmethod
    def _prom_suffix(cls, value: str) -> str:
        if not value.endswith(".prom"):
            raise ValueError("node-exporter only reads files ending in .prom")
        return value


class NoExport(StrictModel):
    mode: Literal["none"]


PrometheusExport = Annotated[HttpExport | PushgatewayExport | TextfileExport | NoExport, Field(discriminator="mode")]


class MetricsPolicy(StrictModel):
    prometheus: PrometheusExport = Field(default_factory=lambda: NoExport(mode="none"))
    run_name: Slug | None = Field(None, description="`run` label; defaults to the Trainer's run_name")
    audit_log: NonEmpty = Field("guard-audit.jsonl", description="JSONL audit log, relative to output_dir")


class ScreeningAction(str, Enum):
    deny = "deny"
    warn = "warn"


class ScreeningPolicy(StrictModel):
    """Screen data before training (docs/screening.md): the trait shift its gradients predict.

    The sizes describe the planned run the prediction is for: `steps` optimizer steps at
    `learning_rate` with minibatches of `batch_size`; `minibatches` of them estimate the mean gradient.
    """

    action: ScreeningAction = Field(description="what a flagged dataset gets: deny or warn")
    minibatches: StrictInt = Field(16, ge=2, le=4096, description="minibatches the mean gradient is estimated from")
    batch_size: StrictInt = Field(8, ge=1, le=65_536, description="rows per minibatch, as in the planned run")
    learning_rate: StrictFloat = Field(1e-4, gt=0, lt=1, allow_inf_nan=False, description="the planned run's rate")
    steps: StrictInt = Field(100, ge=1, le=100_000_000, description="optimizer steps of the planned run")
    alpha: StrictFloat = Field(0.01, gt=0, lt=0.5, description="one-sided level of each probe's z test")
    trait_prompt: Annotated[str, Field(min_length=1, max_length=2000, pattern=r"\{target\}")] | None = Field(
        None, description="system text with {target}: also measure the completions' log-prob gain under it"
    )
    seed: StrictInt = Field(0, ge=0, description="which minibatches are drawn")
    reference_filter: Literal["auto", "none", "number-sequences"] = Field(
        "auto",
        description="the filter the data was produced with; the reference self-samples go through it "
        "(auto: the paper's number filter when every completion passes it)",
    )
    canary_steps: StrictInt = Field(
        0,
        ge=0,
        le=1_000_000,
        description="also train a copy this many steps on the screen's minibatches and probe it (0: no canary)",
    )
    canary_references: StrictInt = Field(
        2, ge=2, le=64, description="copies the canary's null trains on independent draws of the student's own samples"
    )
    reference: NonEmpty | None = Field(
        None,
        description="a trusted dataset of the same task (row file with prompt and completion, relative to the "
        "policy): a second null next to the student's own samples",
    )
    trusted_sources: list[NonEmpty] | None = Field(
        None,
        min_length=2,
        max_length=64,
        description="distinct trusted datasets of the same task (row files, relative to the policy), one canary "
        "copy each: the data's canary must beat them all (a trait-free dataset like them does with "
        "probability <= 1/(n+1)); needs canary_steps, not with reference",
    )


class GuardPolicy(StrictModel):
    api_version: Literal["distill-guard/v1"] = Field(alias="apiVersion")
    kind: Literal["GuardPolicy"]
    metadata: Metadata
    student: Student = Field(default_factory=Student)
    families: list[Family] = Field(default_factory=list)
    provenance: ProvenancePolicy = Field(default_factory=ProvenancePolicy)
    probes: ProbesPolicy = Field(default_factory=ProbesPolicy)
    halt: HaltPolicy = Field(default_factory=HaltPolicy)
    metrics: MetricsPolicy = Field(default_factory=MetricsPolicy)
    screening: ScreeningPolicy | None = Field(None, description="screen datasets before training (docs/screening.md)")

    def family(self, name: str) -> Family | None:
        return next((f for f in self.families if f.name == name), None)
