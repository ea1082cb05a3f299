"""The probe kind table: `spec.kind` -> the factory that turns a loaded suite into a scorer.

Built-in and user kinds are registered the same way, with `register_probe_kind` (or the
`probe_kind` decorator), and a kind name means one thing for the whole process: registering a
name twice is an error, so a user kind can never silently replace a built-in one.

Example:
    class KeywordSpec(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        kind: Literal["keyword"]
        prompts: list[str]

    @probe_kind(KeywordSpec)
    def keyword_scorer(suite: LoadedSuite, target: str | None) -> ProbeScorer:
        return KeywordScorer(suite.spec, target)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel

from distill_guard.errors import DistillGuardError
from distill_guard.policy.probe_suite import (
    ActivationSpec,
    ChoiceSpec,
    LoadedSuite,
    PreferenceSpec,
    PythonSpec,
    register_suite_spec,
    spec_kind,
)
from distill_guard.probes.kinds import ProbeScorer, WholeModelScorer
from distill_guard.probes.kinds.activation import activation_from_suite
from distill_guard.probes.kinds.choice import choice_from_suite
from distill_guard.probes.kinds.preference import preference_from_suite
from distill_guard.probes.kinds.python_probe import python_from_suite

Scorer = ProbeScorer | WholeModelScorer
# factory(suite, target): `target` is the policy's (None when it gives none); bad input raises DistillGuardError.
ScorerFactory = Callable[[LoadedSuite, str | None], Scorer]
FactoryT = TypeVar("FactoryT", bound=ScorerFactory)

_FACTORIES: dict[str, ScorerFactory] = {}


def register_probe_kind(spec: type[BaseModel], factory: ScorerFactory) -> None:
    """Make `spec.kind: NAME` (NAME from `spec`'s `kind: Literal["NAME"]` field) a probe kind.

    Suite files of that kind are validated by `spec` (errors located FILE:LINE:COL like the
    built-ins') and scored by the scorer `factory(suite, target)` returns.

    Raises:
        DistillGuardError: NAME is already a registered kind, or `spec` declares no kind name.
    """
    kind = spec_kind(spec)
    if kind in _FACTORIES:
        where = getattr(_FACTORIES[kind], "__module__", "?")
        raise DistillGuardError(f"probe kind '{kind}' is already registered (by {where}); choose another kind name")
    register_suite_spec(spec)
    _FACTORIES[kind] = factory


def probe_kind(spec: type[BaseModel]) -> Callable[[FactoryT], FactoryT]:
    """Decorator form of `register_probe_kind`: registers the decorated factory for `spec`'s kind."""

    def register(factory: FactoryT) -> FactoryT:
        register_probe_kind(spec, factory)
        return factory

    return register


def make_scorer(suite: LoadedSuite, target: str | None) -> Scorer:
    """The scorer for a suite's kind; `target` (from the policy) overrides the suite's default."""
    kind = suite.spec.kind
    factory = _FACTORIES.get(kind)
    if factory is None:  # a schema registered without a factory (register_suite_spec called directly)
        raise DistillGuardError(f"suite '{suite.name}': probe kind '{kind}' has no scorer registered")
    return factory(suite, target)


register_probe_kind(PreferenceSpec, preference_from_suite)
register_probe_kind(ChoiceSpec, choice_from_suite)
register_probe_kind(ActivationSpec, activation_from_suite)
register_probe_kind(PythonSpec, python_from_suite)
