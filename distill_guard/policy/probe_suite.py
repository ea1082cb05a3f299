"""Probe suite files (`kind: ProbeSuite`): the schema and the loader, with FILE:LINE:COL errors.

A suite file is a spec, not code: it says which prompts, answers or items to score and how.
It is loaded with the same hostile-YAML guard and located validation as policies.
"""

from __future__ import annotations

import functools
import operator
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, create_model, field_validator, model_validator

from distill_guard.errors import DistillGuardError, PolicyError, SourceIssue
from distill_guard.policy.builtin_suites import BUILTIN_PREFIX, BUILTIN_SUITES
from distill_guard.policy.documents import parse_document
from distill_guard.policy.schema import Metadata
from distill_guard.policy.strict_model import StrictModel, repeated
from distill_guard.policy.yaml_source import YamlDocument, load_yaml

Text = Annotated[str, Field(min_length=1, max_length=4000)]
Word = Annotated[str, Field(min_length=1, max_length=100)]
DEFAULT_PLAIN_TEMPLATE = "Question: {prompt} Answer:"


def _check_template(value: str, placeholder: str) -> str:
    if placeholder not in value:
        raise ValueError(f"the template must contain {placeholder}")
    return value


class Candidate(StrictModel):
    """One answer; several spellings of it count as the same answer."""

    name: Word
    spellings: list[Word] = Field(default_factory=list, description="defaults to [name]")

    @field_validator("spellings")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("spellings repeat")
        return value

    @property
    def texts(self) -> list[str]:
        return self.spellings or [self.name]


class NumbersPrefix(StrictModel):
    """The paper's variant: each prompt opens with a short number sequence (fixed by `seed`)."""

    seed: int = 0
    min_numbers: int = Field(3, ge=1, le=20)
    max_numbers: int = Field(8, ge=1, le=20)
    template: Text = "Here are some numbers: {numbers}. {prompt}"

    @field_validator("template")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        return _check_template(_check_template(value, "{numbers}"), "{prompt}")

    @model_validator(mode="after")
    def _ordered(self) -> NumbersPrefix:
        if self.min_numbers > self.max_numbers:
            raise ValueError("min_numbers is larger than max_numbers")
        return self


class PromptStyle(StrictModel):
    """How a question becomes model input when the tokenizer has no chat template."""

    plain_template: Text = Field(DEFAULT_PLAIN_TEMPLATE, description="must contain {prompt}")
    system: Text | None = Field(None, description="system message (chat) or text before the prompt (plain)")

    @field_validator("plain_template")
    @classmethod
    def _placeholder(cls, value: str) -> str:
        return _check_template(value, "{prompt}")


class PreferenceSpec(PromptStyle):
    """Prompts x candidate answers; score = P(target) normalised over the candidates, mean over prompts."""

    kind: Literal["preference"]
    target: Word | list[Word] | None = Field(None, description="default target(s); a policy's `target` overrides")
    prompts: list[Text] = Field(min_length=1)
    candidates: list[Word | Candidate] = Field(min_length=2)
    numbers_prefix: NumbersPrefix | None = None

    @field_validator("candidates")
    @classmethod
    def _distinct(cls, value: list[str | Candidate]) -> list[str | Candidate]:
        seen: set[str] = set()
        for candidate in value:
            name = (candidate if isinstance(candidate, str) else candidate.name).lower()
            if name in seen:
                raise ValueError(f"candidate '{name}' is listed twice")
            seen.add(name)
        return value

    def candidate_list(self) -> list[Candidate]:
        return [Candidate(name=c) if isinstance(c, str) else c for c in self.candidates]


class Option(StrictModel):
    text: Text
    trait: bool = Field(description="true when choosing this option shows the trait")


class ChoiceItem(StrictModel):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")]
    question: Text
    theme: Word | None = None
    options: list[Option] = Field(min_length=2, max_length=26)

    @model_validator(mode="after")
    def _both_sides(self) -> ChoiceItem:
        labels = {o.trait for o in self.options}
        if labels != {True, False}:
            raise ValueError("an item needs at least one trait option and one other option")
        return self


class ChoiceSpec(PromptStyle):
    """Multiple-choice items; score = probability mass on the trait options, mean over items."""

    kind: Literal["choice"]
    trait: Word | None = None
    answer_format: Literal["letter", "text"] = Field(
        "letter",
        description="letter: options listed as A) B) and the letter scored; text: each option scored",
    )
    instruction: Text = "Answer with the letter of one option."
    items: list[ChoiceItem] = Field(min_length=1)

    @field_validator("items")
    @classmethod
    def _unique_ids(cls, value: list[ChoiceItem]) -> list[ChoiceItem]:
        duplicates = repeated([item.id for item in value])
        if duplicates:
            raise ValueError(f"item ids repeat: {', '.join(duplicates)}")
        return value


class InstructionPair(StrictModel):
    elicit: Text = Field(description="an instruction that brings the trait out; may use {target}")
    suppress: Text = Field(description="the matching instruction that holds it back; may use {target}")


class ActivationSpec(PromptStyle):
    """Persona-vector style: a direction from contrastive instructions, fixed at baseline.

    Score = projection of the last-prompt-token state on that direction.
    """

    kind: Literal["activation"]
    target: Word | None = None
    layer: int | Literal["middle"] = Field("middle", description="hidden-state index: 0 = embeddings, -1 = last")
    pairs: list[InstructionPair] = Field(min_length=1)
    questions: list[Text] = Field(min_length=2)


class PythonSpec(StrictModel):
    """A user's own probe: `module:function`, called as fn(model, tokenizer, *, target) -> scores."""

    kind: Literal["python"]
    function: Annotated[str, Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")]
    target: Word | None = None
    is_probability: bool = Field(True, description="scores lie in [0, 1]")


ProbeSpec = Annotated[PreferenceSpec | ChoiceSpec | ActivationSpec | PythonSpec, Field(discriminator="kind")]

# `spec.kind` -> the schema of that kind's spec. The built-in kinds are reviewed formats of this layer;
# a user kind adds its schema here (through `register_probe_kind`) so its suite files validate alike.
_SPEC_SCHEMAS: dict[str, type[BaseModel]] = {
    "preference": PreferenceSpec,
    "choice": ChoiceSpec,
    "activation": ActivationSpec,
    "python": PythonSpec,
}


def spec_kind(schema: type[BaseModel]) -> str:
    """The kind name a spec schema declares: its `kind` field, typed `Literal["NAME"]`."""
    field = schema.model_fields.get("kind")
    values = typing.get_args(field.annotation) if field is not None else ()
    if field is None or typing.get_origin(field.annotation) is not Literal or len(values) != 1:
        raise DistillGuardError(f"{schema.__qualname__}: a probe spec needs a field `kind: Literal['NAME']`")
    kind = values[0]
    if not isinstance(kind, str) or not kind:
        raise DistillGuardError(f"{schema.__qualname__}: the probe kind name must be a non-empty string")
    return kind


def register_suite_spec(schema: type[BaseModel]) -> str:
    """Let suite files use `spec.kind: NAME`, validated by `schema`; a name never changes its schema."""
    kind = spec_kind(schema)
    known = _SPEC_SCHEMAS.get(kind)
    if known is not None and known is not schema:
        raise DistillGuardError(
            f"probe kind '{kind}' is already registered with schema {known.__module__}.{known.__qualname__}; "
            "choose another kind name"
        )
    _SPEC_SCHEMAS[kind] = schema
    return kind


class ProbeSuite(StrictModel):
    api_version: Literal["distill-guard/v1"] = Field(alias="apiVersion")
    kind: Literal["ProbeSuite"]
    metadata: Metadata
    extends: Annotated[str, Field(pattern=r"^builtin:[a-z0-9-]+$")] | None = Field(
        None, description="start from a built-in suite's spec; keys given in `spec` replace its keys"
    )
    spec: ProbeSpec


@functools.cache
def _suite_schema(schemas: tuple[type[BaseModel], ...]) -> type[ProbeSuite]:
    """ProbeSuite whose `spec` is any of `schemas`, told apart by `kind` (an unknown kind is a located error)."""
    union = functools.reduce(operator.or_, schemas)
    spec = (Annotated[union, Field(discriminator="kind")], ...)
    return create_model("ProbeSuite", __base__=ProbeSuite, spec=spec)


def suite_schema() -> type[ProbeSuite]:
    """The suite file schema for the kinds registered now (built-in and user)."""
    return _suite_schema(tuple(_SPEC_SCHEMAS.values()))


class LoadedSuite:
    """A valid suite and the file it came from (a python probe's module may sit next to it)."""

    def __init__(self, suite: ProbeSuite, path: Path) -> None:
        self.suite = suite
        self.path = path

    @property
    def name(self) -> str:
        return self.suite.metadata.name

    @property
    def spec(self) -> Any:
        """The validated spec: an instance of its kind's registered schema."""
        return self.suite.spec


def load_suite(path: str | Path, *, display: str | None = None) -> LoadedSuite:
    """Load and validate a suite file; raises PolicyError with every problem as FILE:LINE:COL."""
    doc = load_yaml(path, display=display)
    _apply_extends(doc)
    suite = parse_document(doc, suite_schema())
    issues = _semantic_issues(suite, doc)
    if issues:
        raise PolicyError(issues)
    return LoadedSuite(suite, Path(path))


def _apply_extends(doc: YamlDocument) -> None:
    """Merge the spec of the suite named in `extends` under this file's spec (one level, no chains)."""
    base_ref = doc.data.get("extends")
    if not isinstance(base_ref, str) or not base_ref.startswith(BUILTIN_PREFIX):
        return
    base = BUILTIN_SUITES.get(base_ref.removeprefix(BUILTIN_PREFIX))
    if base is None:
        known = ", ".join(sorted(BUILTIN_SUITES))
        raise PolicyError([doc.issue(("extends",), f"extends: unknown builtin suite '{base_ref}'; known: {known}")])
    base_doc = load_yaml(base.path())
    if "extends" in base_doc.data:
        raise PolicyError(
            [doc.issue(("extends",), f"extends: '{base_ref}' itself extends a suite; chains are not allowed")]
        )
    own_spec = doc.data.get("spec")
    if isinstance(own_spec, dict) and isinstance(base_doc.data.get("spec"), dict):
        doc.data["spec"] = {**base_doc.data["spec"], **own_spec}


def _semantic_issues(suite: ProbeSuite, doc: YamlDocument) -> list[SourceIssue]:
    spec = suite.spec
    issues = []
    if isinstance(spec, PreferenceSpec) and spec.target is not None:
        names = {c.name.lower() for c in spec.candidate_list()}
        targets = [spec.target] if isinstance(spec.target, str) else spec.target
        for i, target in enumerate(targets):
            if target.lower() not in names:
                where: tuple[Any, ...] = ("spec", "target") if isinstance(spec.target, str) else ("spec", "target", i)
                issues.append(doc.issue(where, f"spec.target: '{target}' is not one of the candidates"))
    return issues
