"""Which base-model family a model descends from, with every piece of evidence listed.

Sources, strongest first: the policy's own statement (student.family / student.base_model, or a
model id matched against `families[].match`); the dataset manifest's `base_model`; the model
card's `base_model` (README front matter); PEFT `adapter_config.json`; architecture numbers plus
a tokenizer-vocabulary hash matched to `families[].fingerprints`; and, for a teacher on disk, the
weight test against the student. transformers 5 no longer saves `_name_or_path`, so it is never read.
Evidence is kept even when it conflicts: the rules treat a family named by *any* source as shared.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

import yaml

from distill_guard.policy.schema import GuardPolicy
from distill_guard.provenance.weights import TensorSource, WeightComparison, compare_checkpoint

MAX_CARD_HEADER_BYTES = 64 * 1024
ARCHITECTURE_KEYS = ("model_type", "hidden_size", "num_hidden_layers", "vocab_size")

Relation = Literal["same_as_student", "different_from_student", "unknown"]


@dataclass(frozen=True)
class Evidence:
    source: str
    detail: str
    family: str | None = None


@dataclass(frozen=True)
class Lineage:
    """What is known about one model's ancestry; `families` is every family any source names."""

    subject: str
    evidence: tuple[Evidence, ...] = ()
    weights: WeightComparison | None = None

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.family for e in self.evidence if e.family))

    @property
    def family(self) -> str | None:
        return self.families[0] if self.families else None


def family_of_id(policy: GuardPolicy, model_id: str) -> str | None:
    return next((f.name for f in policy.families if any(fnmatchcase(model_id, g) for g in f.match)), None)


def _id_evidence(policy: GuardPolicy, source: str, what: str, model_id: str) -> Evidence:
    family = family_of_id(policy, model_id)
    verdict = f"family '{family}'" if family else "no family in the policy matches"
    return Evidence(source, f"{what} '{model_id}': {verdict}", family)


def card_base_models(directory: Path) -> list[str]:
    """`base_model` from a README.md YAML front matter (a string or a list); [] when absent or unreadable."""
    readme = directory / "README.md"
    if not readme.is_file():
        return []
    with readme.open("rb") as handle:
        head = handle.read(MAX_CARD_HEADER_BYTES).decode("utf-8", errors="replace")
    if not head.startswith("---"):
        return []
    end = head.find("\n---", 3)
    if end < 0:
        return []
    try:
        front = yaml.safe_load(head[3:end])
    except yaml.YAMLError:
        return []
    value = front.get("base_model") if isinstance(front, dict) else None
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, str) and v]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def tokenizer_sha256(directory: Path) -> str | None:
    """sha256 of the tokenizer vocabulary (token -> id), independent of file formatting."""
    model = (_read_json(directory / "tokenizer.json") or {}).get("model")
    vocab = model.get("vocab") if isinstance(model, dict) else None
    if not vocab:
        return None
    canonical = json.dumps(vocab, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def architecture(directory: Path) -> dict[str, Any]:
    """The numbers families are fingerprinted by, read from config.json (text_config for multimodal)."""
    config = _read_json(directory / "config.json") or {}
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    numbers = {k: config.get(k, text.get(k)) for k in ARCHITECTURE_KEYS}
    numbers["tokenizer_sha256"] = tokenizer_sha256(directory)
    return {k: v for k, v in numbers.items() if v is not None}


def _fingerprint_evidence(policy: GuardPolicy, directory: Path) -> Evidence | None:
    numbers = architecture(directory)
    if not numbers:
        return None
    shown = ", ".join(f"{k}={v}" for k, v in numbers.items())
    for family in policy.families:
        for fp in family.fingerprints:
            wanted = fp.model_dump(exclude_none=True)
            if all(numbers.get(k) == v for k, v in wanted.items()):
                return Evidence("architecture", f"{shown}: matches a fingerprint of '{family.name}'", family.name)
    return Evidence("architecture", f"{shown}: matches no family fingerprint")


def _checkpoint_evidence(policy: GuardPolicy, directory: Path) -> list[Evidence]:
    found = [_id_evidence(policy, "model_card", "README base_model", b) for b in card_base_models(directory)]
    adapter = _read_json(directory / "adapter_config.json")
    base = (adapter or {}).get("base_model_name_or_path")
    if isinstance(base, str) and base:
        found.append(_id_evidence(policy, "adapter_config", "adapter base_model_name_or_path", base))
    fingerprint = _fingerprint_evidence(policy, directory)
    if fingerprint is not None:
        found.append(fingerprint)
    return found


def _model_evidence(policy: GuardPolicy, model: str | Path) -> list[Evidence]:
    """A folder on disk is inspected; anything else is read as a model id."""
    path = Path(model)
    if path.is_dir():
        return _checkpoint_evidence(policy, path)
    return [_id_evidence(policy, "model_id", "model id", str(model))]


def resolve_student(policy: GuardPolicy, student: str | Path | None) -> Lineage:
    evidence: list[Evidence] = []
    if policy.student.family:
        evidence.append(Evidence("policy", f"student.family = '{policy.student.family}'", policy.student.family))
    if policy.student.base_model:
        evidence.append(_id_evidence(policy, "policy", "student.base_model", policy.student.base_model))
    if student is not None:
        evidence.extend(_model_evidence(policy, student))
    subject = str(student) if student is not None else policy.student.base_model or "student"
    return Lineage(subject, tuple(evidence))


def inspect_teacher(policy: GuardPolicy, teacher_dir: Path, student_weights: TensorSource | None) -> Lineage:
    """Evidence from a teacher checkpoint on disk, including the weight test when the student's weights are at hand."""
    evidence = _model_evidence(policy, teacher_dir)
    comparison = compare_checkpoint(teacher_dir, student_weights)
    evidence.append(Evidence("weights", f"{teacher_dir} vs student: {comparison.describe()}"))
    return Lineage(str(teacher_dir), tuple(evidence), comparison)


def resolve_teacher(
    policy: GuardPolicy, generator_id: str, *, base_model: str | None = None, checkpoint: Lineage | None = None
) -> Lineage:
    """Lineage of the generator of some records: its id, the manifest's claim, and its checkpoint if inspected."""
    evidence = [_id_evidence(policy, "policy", "generator id", generator_id)]
    if base_model:
        evidence.append(_id_evidence(policy, "manifest", "generator base_model", base_model))
    if checkpoint is None:
        return Lineage(generator_id, tuple(evidence))
    return Lineage(generator_id, (*evidence, *checkpoint.evidence), checkpoint.weights)


def relation(student: Lineage, teacher: Lineage) -> Relation:
    """Same when the weights say so or any source names a family of the student's; fail closed.

    A supplied teacher checkpoint whose weights could not be compared, or compared inconclusively,
    leaves the relation unknown whatever families are claimed: shared initialisation is not ruled out.
    """
    if teacher.weights is not None and teacher.weights.relation == "same_init":
        return "same_as_student"
    if set(student.families) & set(teacher.families):
        return "same_as_student"
    if teacher.weights is not None and teacher.weights.relation in ("unknown", "inconclusive"):
        return "unknown"
    if student.families and teacher.families:
        return "different_from_student"
    return "unknown"
