"""Limits derived from the measured benign null: `threshold.benign_margin` with `probes.benign_drift`.

A threshold `{max_increase: L, benign_margin: M}` gives every watched candidate c the limit
max(L, B_c + M), where B_c is the largest drift of c any calibration run saw (a targeted suite:
its target's). The limits are fixed before training from a reviewed file, never from the run,
so each look's test keeps its level (docs/detection.md). Everything that could make the file
speak for another model or another probe set is refused with a located error: a format-1 file
(no per-candidate maxima), a label it did not measure, a suite file that changed since, a
candidate it names that the suite does not have, or one of the suite's it lacks.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from distill_guard.errors import DistillGuardError, SourceIssue
from distill_guard.input_files import written_path
from distill_guard.policy.benign_drift import BenignDrift
from distill_guard.policy.builtin_suites import BUILTIN_SUITES
from distill_guard.policy.probe_suite import PreferenceSpec, load_suite
from distill_guard.policy.schema import GuardPolicy, SuiteRef
from distill_guard.policy.semantics import suite_label
from distill_guard.policy.yaml_source import YamlDocument


@dataclass(frozen=True)
class BenignLimits:
    """One suite's max_increase per watched candidate: max(max_increase, benign max + margin).

    `benign_max` is keyed by candidate for a panel; a targeted suite has the single key None.
    """

    max_increase: float
    margin: float
    benign_max: dict[str | None, float]

    def limit(self, candidate: str | None) -> float:
        """The tested limit of `candidate` (a targeted suite: any name maps to its one measurement).

        A candidate with no measurement keeps max_increase: a gap in the file never loosens a check.
        """
        measured = self.benign_max.get(candidate, self.benign_max.get(None))
        return self.max_increase if measured is None else max(self.max_increase, measured + self.margin)

    def raised(self) -> dict[str | None, float]:
        """The candidates whose limit is above max_increase, with that limit: what a reviewer must see."""
        limits = {c: self.limit(c) for c in self.benign_max}
        return {c: v for c, v in limits.items() if v > self.max_increase}


def suite_file(ref: SuiteRef, policy_dir: Path) -> Path:
    """The YAML file a suite entry reads (a built-in's packaged file, or a path relative to the policy)."""
    if ref.builtin_name is not None:
        return BUILTIN_SUITES[ref.builtin_name].path()
    assert ref.path is not None
    return written_path(ref.path, policy_dir)


def suite_sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _candidate_names(path: Path) -> list[str]:
    spec = load_suite(path).spec
    return [c.name for c in spec.candidate_list()] if isinstance(spec, PreferenceSpec) else []


def _limits_of(ref: SuiteRef, label: str, benign: BenignDrift, file: Path, policy_dir: Path) -> BenignLimits:
    """The suite's derived limits, or a DistillGuardError saying why the file cannot back them."""
    assert ref.threshold is not None and ref.threshold.max_increase is not None
    increase, margin = ref.threshold.max_increase, ref.threshold.benign_margin
    assert margin is not None
    if benign.version < 2:
        raise DistillGuardError(
            f"{file.name} is a format-{benign.version} file (no per-candidate maxima); re-run distill-guard calibrate"
        )
    measured = benign.probes.get(label)
    if measured is None or label not in benign.per_probe:
        raise DistillGuardError(f"{file.name} has no calibration of probe '{label}'")
    source = suite_file(ref, policy_dir)
    if suite_sha256(source) != measured.suite_sha256:
        raise DistillGuardError(f"suite {source.name} changed since {file.name} measured '{label}'; re-run calibrate")
    if not ref.panel:
        return BenignLimits(increase, margin, {None: max(benign.per_probe[label])})
    names = _candidate_names(source)
    unknown = sorted(set(measured.per_candidate) - set(names))
    missing = [n for n in names if n not in measured.per_candidate or not measured.per_candidate[n]]
    if unknown or missing:
        problem = f"unknown candidates {unknown}" if unknown else f"no measurement of candidates {missing}"
        raise DistillGuardError(f"{file.name} does not match panel '{label}': {problem}")
    maxima: dict[str | None, float] = {n: max(measured.per_candidate[n]) for n in names}
    return BenignLimits(increase, margin, maxima)


def _shown(raised: dict[str | None, float]) -> str:
    ranked = sorted(raised.items(), key=lambda item: -item[1])
    return ", ".join(f"{name or 'target'} {value:.4f}" for name, value in ranked)


def resolve_benign_limits(
    policy: GuardPolicy, doc: YamlDocument, benign_file: Path | None, benign: BenignDrift | None
) -> tuple[dict[str, BenignLimits], list[SourceIssue], list[SourceIssue]]:
    """(limits by suite label, errors, warnings) of every threshold with `benign_margin`.

    Each derived limit above max_increase is a located warning at the margin: it loosens a check.
    """
    limits: dict[str, BenignLimits] = {}
    errors: list[SourceIssue] = []
    warnings: list[SourceIssue] = []
    policy_dir = Path(doc.file).parent
    for i, ref in enumerate(policy.probes.suites):
        if ref.threshold is None or ref.threshold.benign_margin is None:
            continue
        where = ("probes", "suites", i, "threshold", "benign_margin")
        label = suite_label(ref)
        if benign_file is None or benign is None:
            reason = "needs probes.benign_drift (a readable file from distill-guard calibrate)"
            errors.append(doc.issue(where, f"probes.suites[{i}].threshold.benign_margin: {reason}"))
            continue
        try:
            limits[label] = _limits_of(ref, label, benign, benign_file, policy_dir)
        except (DistillGuardError, OSError) as exc:
            errors.append(doc.issue(where, f"probes.suites[{i}].threshold.benign_margin: {exc}"))
            continue
        raised = limits[label].raised()
        if raised:
            message = (
                f"warning: benign_margin raises max_increase {ref.threshold.max_increase:g} of '{label}' "
                f"(benign max in {benign_file.name} + {ref.threshold.benign_margin:g}) to: {_shown(raised)}"
            )
            warnings.append(doc.issue(where, message, severity="warning"))
    return limits, errors, warnings
