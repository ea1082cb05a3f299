"""Fixtures for the provenance gate: tiny checkpoints on disk, policies, data files and manifests."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from distill_guard.policy.dataset_manifest import (
    Attestation,
    DatasetId,
    DatasetProvenance,
    Generator,
    load_manifest,
    save_manifest,
)
from distill_guard.policy.load import LoadedPolicy, load_policy
from distill_guard.provenance.hashing import describe_file
from distill_guard.provenance.signing import public_key_b64, sign
from distill_guard.scenarios import tiny_lm
from distill_guard.scenarios.disguises import fine_tuned as finetune
from tests.support.policies import guard_policy

REPO_POLICIES = Path(__file__).resolve().parents[2] / "policies"
TODAY = dt.date(2026, 6, 1)
PAST = dt.date(2026, 5, 1)
FUTURE = dt.date(2027, 1, 31)
SAME_FAMILY_TEACHER = "distill-guard/tiny-teacher"
OTHER_FAMILY_TEACHER = "other-lab/teacher-7b"


def write_card(directory: Path, base_model: str) -> None:
    (directory / "README.md").write_text(f"---\nbase_model: {base_model}\nlicense: mit\n---\n# model\n", "utf-8")


@pytest.fixture(scope="session")
def student_dir(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared tiny base, with a model card naming a base in the policy's tiny-llama-demo family."""
    directory = tmp_path_factory.mktemp("student") / "model"
    shutil.copytree(tiny_checkpoint, directory)
    write_card(directory, "distill-guard/tiny-base")
    return directory


@pytest.fixture(scope="session")
def sibling_teacher_dir(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fine-tuned from the student's own base, with no card metadata at all."""
    return finetune(tiny_checkpoint, tmp_path_factory.mktemp("sibling") / "model")


@pytest.fixture(scope="session")
def fresh_teacher_dir(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Same architecture and tokenizer, independently initialised (another seed)."""
    _, tokenizer = tiny_lm.load(tiny_checkpoint)
    return tiny_lm.save(tiny_lm.build_model(tokenizer, seed=1), tokenizer, tmp_path_factory.mktemp("fresh") / "m")


def policy_data(**provenance: Any) -> dict[str, Any]:
    """A strict gate-only policy with two families; keyword arguments replace keys of `provenance`."""
    rules = [
        {
            "id": "same-base-untrusted",
            "when": {"teacher_family": "same_as_student", "teacher_trusted": False},
            "action": "deny",
            "message": "the teacher shares the student's base model and has not been audited",
        },
        {"id": "unknown-teacher-family", "when": {"teacher_family": "unknown"}, "action": "deny"},
    ]
    families = [
        {"name": "tiny-llama-demo", "match": ["distill-guard/tiny-*"]},
        {"name": "other-lab", "match": ["other-lab/*"]},
    ]
    sections = {"families": families, "provenance": {"unknown": "deny", "rules": rules, **provenance}}
    return guard_policy([], name="test-gate", sections=sections)


@pytest.fixture
def make_policy(tmp_path: Path) -> Callable[..., LoadedPolicy]:
    def make(**provenance: Any) -> LoadedPolicy:
        path = tmp_path / "policy.yaml"
        path.write_text(yaml.safe_dump(policy_data(**provenance), sort_keys=False), "utf-8")
        return load_policy(path, today=TODAY)

    return make


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), "utf-8")
    return path


def number_rows(n: int, generator: str | None = None, start: int = 0) -> list[dict[str, Any]]:
    rows = [{"text": f"{i}, {i + 7}, {i * 3 % 1000}"} for i in range(start, start + n)]
    if generator is not None:
        for row in rows:
            row["provenance"] = generator
    return rows


@pytest.fixture
def make_manifest(tmp_path: Path) -> Callable[..., Path]:
    """Write data files' manifest next to them, the way `distill-guard manifest create` does."""

    def make(
        files: list[Path],
        generators: list[Generator] | None = None,
        *,
        name: str = "numbers-v3",
        attestation: Attestation | None = None,
        out: Path | None = None,
    ) -> Path:
        target = out or tmp_path / "data" / "numbers.provenance.yaml"
        manifest = DatasetProvenance(
            dataset=DatasetId(name=name, version="3"),
            files=[describe_file(f, target.parent) for f in files],
            generators=generators or [Generator(model=SAME_FAMILY_TEACHER)],
            attestation=attestation,
        )
        return save_manifest(manifest, target)

    return make


SIGNING_KEY = Ed25519PrivateKey.generate()
TRUSTED_SIGNER = {"name": "data-team", "public_key": public_key_b64(SIGNING_KEY.public_key())}


def sign_manifest(path: Path, key: Ed25519PrivateKey = SIGNING_KEY) -> Path:
    """Sign a manifest file in place (by default with the key of TRUSTED_SIGNER)."""
    return save_manifest(sign(load_manifest(path).manifest, key), path)


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "data" / "numbers.jsonl", number_rows(40))


@pytest.fixture
def strict_with_signer(tmp_path: Path) -> Path:
    """strict.yaml plus one trusted signer: what a team that signs its manifests runs."""
    data = yaml.safe_load((REPO_POLICIES / "strict.yaml").read_text("utf-8"))
    data["provenance"]["trusted_signers"] = [TRUSTED_SIGNER]
    path = tmp_path / "strict-signed.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), "utf-8")
    return path
