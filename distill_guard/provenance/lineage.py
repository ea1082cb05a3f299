"""Which base-model family a model descends from, with every piece of evidence listed.

Sources, strongest first: the policy's own statement (student.family / student.base_model, or a
model id matched against `families[].match`); the dataset manifest's `base_model`; the model
card's `base_model` (README front matter); PEFT `adapter_config.json`; architecture numbers plus
a tokenizer-vocabulary hash matched to `families[].fingerprints`; and, for a teacher on disk, the
weight test against the student. transformers 5 no longer saves `_name_or_path`, so it is never read.
Evidence is kept even when it conflicts: the rules treat a family named by *any* source as shared.

Only *verified* evidence can show that a teacher is of another family: the policy's own statement,
or a claim in a manifest signed by a trusted signer (or any claim, under the policy's explicit
`trust_unsigned_claims`). Unverified claims can only make a teacher more suspect, because a data
vendor writes them. Doubts (conflicting declarations of a generator, or a teacher checkpoint with the
student's own architecture and tokenizer) rule "different" out whatever the claims say.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from distill_guard.policy.schema import GuardPolicy
from distill_guard.provenance.checkpoint_folder import read_card_metadata
from distill_guard.quarantine import CARD_SECTION

if TYPE_CHECKING:
    from distill_guard.provenance.weights import TensorSource, WeightComparison

ARCHITECTURE_KEYS = ("model_type", "hidden_size", "num_hidden_layers", "vocab_size")

Relation = Literal["same_as_student", "different_from_student", "unknown"]


@dataclass(frozen=True)
class Evidence:
    source: str
    detail: str
    family: str | None = None
    verified: bool = False


@dataclass(frozen=True)
class Lineage:
    """What is known about one model's ancestry; `families` is every family any source names."""

    subject: str
    evidence: tuple[Evidence, ...] = ()
    weights: WeightComparison | None = None
    doubts: tuple[str, ...] = ()

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.family for e in self.evidence if e.family))

    @property
    def verified_families(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.family for e in self.evidence if e.family and e.verified))

    @property
    def family(self) -> str | None:
        return self.families[0] if self.families else None


def family_of_id(policy: GuardPolicy, model_id: str) -> str | None:
    return next((f.name for f in policy.families if any(fnmatchcase(model_id, g) for g in f.match)), None)


def _id_evidence(policy: GuardPolicy, source: str, what: str, model_id: str, *, verified: bool = False) -> Evidence:
    family = family_of_id(policy, model_id)
    verdict = f"family '{family}'" if family else "no family in the policy matches"
    unverified = "" if verified or family is None else " (unverified claim)"
    return Evidence(source, f"{what} '{model_id}': {verdict}{unverified}", family, verified)


def card_base_models(directory: Path) -> list[str]:
    """`base_model` from a README.md front matter (a string or a list); [] when there is no card.

    Read by `read_card_metadata`, the same reader that vets the folder, so a card that cannot be read
    safely raises (naming the file) instead of silently taking a claim out of the evidence.
    """
    readme = directory / "README.md"
    if not (readme.exists() or readme.is_symlink()):
        return []
    value = read_card_metadata(readme).get("base_model")
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, str) and v]


def card_says_halted(directory: Path) -> Path | None:
    """The folder's README.md when its guard section says `halted: true` (a halted checkpoint whose
    quarantine marker was deleted still says so in its card), else None."""
    readme = directory / "README.md"
    if not (readme.exists() or readme.is_symlink()):
        return None
    section = read_card_metadata(readme).get(CARD_SECTION)
    return readme if isinstance(section, dict) and section.get("halted") is True else None


def local_adapter_base(directory: Path) -> Path | None:
    """The folder a PEFT adapter's `base_model_name_or_path` names, when it is one on this machine
    (resolved as PEFT resolves it, from the working directory); None for a hub id or no adapter."""
    base = (_read_json(directory / "adapter_config.json") or {}).get("base_model_name_or_path")
    return Path(base) if isinstance(base, str) and base and Path(base).is_dir() else None


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


def same_architecture(teacher_dir: Path, student_dir: Path) -> str | None:
    """A description when both folders have the same architecture numbers and tokenizer vocabulary."""
    teacher, student = architecture(teacher_dir), architecture(student_dir)
    keys = (*ARCHITECTURE_KEYS, "tokenizer_sha256")
    if any(teacher.get(k) is None for k in keys) or any(teacher.get(k) != student.get(k) for k in keys):
        return None
    shown = ", ".join(f"{k}={teacher[k]}" for k in ARCHITECTURE_KEYS)
    return f"the teacher checkpoint has the student's architecture ({shown}) and tokenizer vocabulary"


def _fingerprint_evidence(policy: GuardPolicy, directory: Path) -> Evidence | None:
    numbers = architecture(directory)
    if not numbers:
        return None
    shown = ", ".join(f"{k}={v}" for k, v in numbers.items())
    for family in policy.families:
        for fp in family.fingerprints:
            wanted = fp.model_dump(exclude_none=True)
            if all(numbers.get(k) == v for k, v in wanted.items()):
                detail = f"{shown}: matches a fingerprint of '{family.name}'"
                return Evidence("architecture", detail, family.name, policy.provenance.trust_unsigned_claims)
    return Evidence("architecture", f"{shown}: matches no family fingerprint")


def _checkpoint_evidence(policy: GuardPolicy, directory: Path) -> list[Evidence]:
    """Card, adapter config and fingerprint: claims anyone who ships the folder can write."""
    trusted = policy.provenance.trust_unsigned_claims
    found = [
        _id_evidence(policy, "model_card", "README base_model", b, verified=trusted)
        for b in card_base_models(directory)
    ]
    adapter = _read_json(directory / "adapter_config.json")
    base = (adapter or {}).get("base_model_name_or_path")
    if isinstance(base, str) and base:
        what = "adapter base_model_name_or_path"
        found.append(_id_evidence(policy, "adapter_config", what, base, verified=trusted))
    fingerprint = _fingerprint_evidence(policy, directory)
    if fingerprint is not None:
        found.append(fingerprint)
    return found


def _model_evidence(policy: GuardPolicy, model: str | Path) -> list[Evidence]:
    """A folder on disk is inspected; anything else is read as a model id the user stated."""
    path = Path(model)
    if path.is_dir():
        return _checkpoint_evidence(policy, path)
    return [_id_evidence(policy, "model_id", "model id", str(model), verified=True)]


def resolve_student(policy: GuardPolicy, student: str | Path | None) -> Lineage:
    evidence: list[Evidence] = []
    if policy.student.family:
        evidence.append(Evidence("policy", f"student.family = '{policy.student.family}'", policy.student.family))
    if policy.student.base_model:
        evidence.append(_id_evidence(policy, "policy", "student.base_model", policy.student.base_model, verified=True))
    if student is not None:
        evidence.extend(_model_evidence(policy, student))
    subject = str(student) if student is not None else policy.student.base_model or "student"
    return Lineage(subject, tuple(evidence))


def inspect_teacher(
    policy: GuardPolicy,
    teacher_dir: Path,
    student_weights: TensorSource | None,
    student_dir: Path | None = None,
) -> Lineage:
    """Evidence from a teacher checkpoint on disk: its claims, the weight test against the student
    ("unknown" with the reason when it cannot be compared), and a doubt when its architecture and
    tokenizer are the student's own."""
    if not teacher_dir.is_dir():
        return Lineage(str(teacher_dir), (Evidence("checkpoint", f"{teacher_dir}: not a folder"),))
    evidence = _checkpoint_evidence(policy, teacher_dir)
    from distill_guard.provenance.weights import compare_checkpoint  # torch loads only for a teacher on disk

    comparison = compare_checkpoint(teacher_dir, student_weights)
    evidence.append(Evidence("weights", f"{teacher_dir} vs student: {comparison.describe()}"))
    twin = same_architecture(teacher_dir, student_dir) if student_dir is not None else None
    if twin:
        evidence.append(Evidence("architecture", f"{twin}: never read as another family"))
    return Lineage(str(teacher_dir), tuple(evidence), comparison, (twin,) if twin else ())


@dataclass(frozen=True)
class Declaration:
    """One manifest's entry for a generator; `verified` when a trusted signer signed that manifest."""

    manifest: str
    base_model: str | None
    verified: bool


def resolve_teacher(
    policy: GuardPolicy,
    generator_id: str,
    declarations: tuple[Declaration, ...] = (),
    checkpoint: Lineage | None = None,
) -> Lineage:
    """Lineage of the generator of some records from every declaration of it, merged; pure.

    The id counts as verified when a signed manifest declares it; declarations that name different
    base models are a doubt (some declaration lies), so the teacher cannot read as another family.
    """
    trusted = policy.provenance.trust_unsigned_claims
    signed = any(d.verified for d in declarations)
    evidence = [_id_evidence(policy, "policy", "generator id", generator_id, verified=signed or trusted)]
    evidence.extend(
        Evidence("policy", f"provenance.teacher_families: '{t.match}' is family '{t.family}'", t.family, True)
        for t in policy.provenance.teacher_families
        if fnmatchcase(generator_id, t.match)
    )
    for d in declarations:
        if d.base_model:
            what = f"{d.manifest}: generator base_model"
            evidence.append(_id_evidence(policy, "manifest", what, d.base_model, verified=d.verified or trusted))
    doubts = []
    bases = sorted({d.base_model for d in declarations if d.base_model})
    if len(bases) > 1:
        doubts.append(f"declarations of '{generator_id}' disagree on its base model: {', '.join(bases)}")
        evidence.append(Evidence("manifest", doubts[-1]))
    if checkpoint is not None:
        evidence.extend(checkpoint.evidence)
        doubts.extend(checkpoint.doubts)
    return Lineage(generator_id, tuple(evidence), checkpoint.weights if checkpoint else None, tuple(doubts))


def relation(student: Lineage, teacher: Lineage) -> Relation:
    """Same when the weights say so or any source names a family of the student's; different only on
    verified evidence and without doubts; otherwise unknown (fail closed). A supplied teacher
    checkpoint whose weights could not be compared, or compared inconclusively, is such a doubt:
    shared initialisation is not ruled out."""
    if teacher.weights is not None and teacher.weights.relation == "same_init":
        return "same_as_student"
    if set(student.families) & set(teacher.families):
        return "same_as_student"
    if teacher.weights is not None and teacher.weights.relation in ("unknown", "inconclusive"):
        return "unknown"
    if student.families and teacher.verified_families and not teacher.doubts:
        return "different_from_student"
    return "unknown"
