"""Load a policy file: hostile-YAML guard, schema, cross-references, then lint."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill_guard.errors import DistillGuardError, PolicyError, SourceIssue
from distill_guard.input_files import regular_file_problem, written_path
from distill_guard.policy.benign_drift import BenignDrift
from distill_guard.policy.benign_limits import BenignLimits, resolve_benign_limits
from distill_guard.policy.documents import parse_document
from distill_guard.policy.probe_suite import load_suite
from distill_guard.policy.schema import GuardPolicy
from distill_guard.policy.semantics import lint_warnings, semantic_errors, suite_label
from distill_guard.policy.yaml_source import YamlDocument, load_yaml


@dataclass(frozen=True)
class LoadedPolicy:
    """A valid policy plus where it came from, for located warnings and relative suite paths."""

    policy: GuardPolicy
    doc: YamlDocument
    warnings: list[SourceIssue] = field(default_factory=list)
    benign_drift: BenignDrift | None = None
    benign_limits: dict[str, BenignLimits] = field(default_factory=dict)
    """Per suite label: the limits its `benign_margin` derives from `benign_drift` (docs/detection.md)."""

    @property
    def path(self) -> Path:
        return Path(self.doc.file)

    def resolve(self, relative: str) -> Path:
        """A path written in the policy, read relative to the policy file's folder."""
        return relative_to_policy(self.doc, relative)


def relative_to_policy(doc: YamlDocument, relative: str) -> Path:
    return written_path(relative, Path(doc.file).parent)


def today_utc() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


def _suite_file_errors(doc: YamlDocument, index: int, relative: str) -> list[SourceIssue]:
    """A suite file named by the policy must exist and be valid: its own errors keep their own FILE:LINE:COL."""
    suite_path = relative_to_policy(doc, relative)
    if not suite_path.exists():
        problem = f"no such file: {suite_path}"
    else:
        problem = (reason := regular_file_problem(suite_path)) and f"{suite_path}: {reason}"
    if problem:
        return [doc.issue(("probes", "suites", index, "path"), f"probes.suites[{index}].path: {problem}")]
    try:
        load_suite(suite_path)
    except PolicyError as exc:
        return exc.issues
    return []


def _benign_drift(policy: GuardPolicy, doc: YamlDocument) -> tuple[Path | None, BenignDrift | None, list[SourceIssue]]:
    """`probes.benign_drift` read, or the located error that it cannot be."""
    relative = policy.probes.benign_drift
    if relative is None:
        return None, None, []
    path = relative_to_policy(doc, relative)
    try:
        return path, BenignDrift.from_file(path), []
    except DistillGuardError as exc:
        return path, None, [doc.issue(("probes", "benign_drift"), f"probes.benign_drift: {exc}")]


def _benign_range_warnings(
    policy: GuardPolicy, doc: YamlDocument, path: Path, benign: BenignDrift
) -> list[SourceIssue]:
    """A fixed max_increase at or below the measured benign maximum: benign runs may halt."""
    warnings = []
    for i, ref in enumerate(policy.probes.suites):
        upper = benign.upper(suite_label(ref))
        limit = ref.threshold.max_increase if ref.threshold else None
        derived = ref.threshold is not None and ref.threshold.benign_margin is not None
        if upper is not None and limit is not None and limit <= upper and not derived:
            warnings.append(
                doc.issue(
                    ("probes", "suites", i, "threshold", "max_increase"),
                    f"warning: max_increase {limit:g} of '{suite_label(ref)}' sits inside the benign range measured "
                    f"in {path.name} (benign runs reached {upper:+.4f} over {benign.runs} runs): benign runs may halt",
                    severity="warning",
                )
            )
    return warnings


def _screening_reference_errors(policy: GuardPolicy, doc: YamlDocument) -> list[SourceIssue]:
    """`screening.reference` and each trusted source must be a readable row file with prompt and completion."""
    section = policy.screening
    named: list[tuple[tuple[Any, ...], str]] = []
    if section is not None and section.reference is not None:
        named.append((("screening", "reference"), section.reference))
    if section is not None and section.trusted_sources is not None:
        named += [(("screening", "trusted_sources", i), f) for i, f in enumerate(section.trusted_sources)]
    if not named:
        return []
    from distill_guard.row_files import read_row_files  # pyarrow, only for a policy that names a file

    issues = []
    for where, relative in named:
        path = relative_to_policy(doc, relative)
        reason = regular_file_problem(path) if path.exists() else "no such file"
        problem = reason and f"{path}: {reason}"
        if not problem:
            try:
                read_row_files([path])
            except DistillGuardError as exc:
                problem = str(exc)
        if problem:
            label = ".".join(str(k) for k in where[:2]) + "".join(f"[{k}]" for k in where[2:])
            issues.append(doc.issue(where, f"{label}: {problem}"))
    return issues


def _registry_warnings(policy: GuardPolicy, doc: YamlDocument) -> list[SourceIssue]:
    """`halt.quarantine_registry` in a folder that does not exist here: the gate would refuse every model."""
    relative = policy.halt.quarantine_registry
    if relative is None:
        return []
    path = relative_to_policy(doc, relative)
    if path.parent.is_dir():
        return []
    message = (
        f"warning: halt.quarantine_registry: folder {path.parent} does not exist on this machine; "
        "the gate refuses to decide until it does"
    )
    return [doc.issue(("halt", "quarantine_registry"), message, severity="warning")]


def load_policy(path: str | Path, *, today: dt.date | None = None) -> LoadedPolicy:
    """Load and check `path`; raises PolicyError listing every error (FILE:LINE:COL)."""
    doc = load_yaml(path)
    policy = parse_document(doc, GuardPolicy)
    errors = semantic_errors(policy, doc)
    for i, ref in enumerate(policy.probes.suites):
        if ref.path is not None:
            errors.extend(_suite_file_errors(doc, i, ref.path))
    benign_path, benign, benign_errors = _benign_drift(policy, doc)
    limits, limit_errors, limit_warnings = resolve_benign_limits(policy, doc, benign_path, benign)
    errors.extend(benign_errors + limit_errors)
    errors.extend(_screening_reference_errors(policy, doc))
    if errors:
        raise PolicyError(errors)
    warnings = lint_warnings(policy, doc, today or today_utc())
    if benign_path is not None and benign is not None:
        warnings += _benign_range_warnings(policy, doc, benign_path, benign) + limit_warnings
    warnings += _registry_warnings(policy, doc)
    return LoadedPolicy(policy, doc, warnings, benign, limits)


def validate_policy_file(path: str | Path, *, today: dt.date | None = None) -> list[SourceIssue]:
    """Every error and warning for one file; never raises for bad input (the CLI lists them all)."""
    try:
        return load_policy(path, today=today).warnings
    except PolicyError as exc:
        return exc.issues
