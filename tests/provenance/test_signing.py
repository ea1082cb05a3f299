"""Ed25519 manifest signatures: valid, forged, wrong key, required."""

from __future__ import annotations

import base64

import datasets
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from distill_guard.errors import DistillGuardError
from distill_guard.policy.dataset_manifest import Attestation, Generator, load_manifest, save_manifest
from distill_guard.policy.schema import TrustedSigner
from distill_guard.provenance.gate import ProvenanceGate
from distill_guard.provenance.signing import generate_key, load_private_key, public_key_b64, sign, verify_signature

from .conftest import FUTURE, OTHER_FAMILY_TEACHER, PAST, TODAY


@pytest.fixture
def signed(tmp_path, make_manifest, data_file):
    """A manifest signed with a fresh key; returns (manifest path, public key)."""
    public = generate_key(tmp_path / "signer.pem")
    path = make_manifest([data_file], [Generator(model=OTHER_FAMILY_TEACHER)])
    save_manifest(sign(load_manifest(path).manifest, load_private_key(tmp_path / "signer.pem")), path)
    return path, public


def decide(policy, path, data_file, student_dir):
    gate = ProvenanceGate(policy, student=student_dir, today=TODAY)
    return gate.clear_dataset(datasets.Dataset.from_json(str(data_file)), path).decision


def test_signature_by_a_trusted_signer_is_valid(signed):
    path, public = signed
    check = verify_signature(load_manifest(path).manifest, [TrustedSigner(name="data-team", public_key=public)])
    assert (check.status, check.signer) == ("valid", "data-team")


def test_private_key_file_is_private_and_never_overwritten(tmp_path, signed):
    assert (tmp_path / "signer.pem").stat().st_mode & 0o077 == 0
    with pytest.raises(DistillGuardError, match="already exists"):
        generate_key(tmp_path / "signer.pem")


def test_any_edit_after_signing_is_a_forgery_and_denied(signed, make_policy, data_file, student_dir):
    path, public = signed
    path.write_text(path.read_text("utf-8").replace("other-lab/teacher-7b", "other-lab/teacher-8b"), "utf-8")
    policy = make_policy(trusted_signers=[{"name": "data-team", "public_key": public}])
    decision = decide(policy, path, data_file, student_dir)
    assert not decision.allowed
    assert decision.rules[0].id == "manifest-signature"
    assert "forged" in decision.rules[0].message
    assert decision.teachers[0].relation == "unknown"  # a forged manifest's claims verify nothing


def test_signature_by_a_key_the_policy_does_not_trust_is_denied(signed, make_policy, data_file, student_dir):
    path, _ = signed
    other = public_key_b64(Ed25519PrivateKey.generate().public_key())
    policy = make_policy(trusted_signers=[{"name": "data-team", "public_key": other}], require_signature=True)
    decision = decide(policy, path, data_file, student_dir)
    assert decision.rules[0].id == "manifest-signature" and not decision.allowed
    assert "does not trust" in decision.rules[0].message


def test_unsigned_manifest_is_denied_when_a_signature_is_required(make_manifest, make_policy, data_file, student_dir):
    signer = {"name": "data-team", "public_key": base64.b64encode(bytes(32)).decode()}
    policy = make_policy(trusted_signers=[signer], require_signature=True)
    path = make_manifest([data_file], [Generator(model=OTHER_FAMILY_TEACHER)])
    decision = decide(policy, path, data_file, student_dir)
    assert decision.rules[0].id == "manifest-signature" and not decision.allowed


def test_signed_attestation_makes_a_teacher_trusted_until_it_expires(
    tmp_path, make_manifest, make_policy, data_file, student_dir
):
    key = Ed25519PrivateKey.generate()
    policy = make_policy(trusted_signers=[{"name": "data-team", "public_key": public_key_b64(key.public_key())}])
    outcomes = []
    for expires in (FUTURE, PAST):
        attestation = Attestation(audited_by="ml-safety", reference="SEC-7", expires=expires)
        path = make_manifest([data_file], attestation=attestation)
        save_manifest(sign(load_manifest(path).manifest, key), path)
        outcomes.append(decide(policy, path, data_file, student_dir).outcome)
    assert outcomes == ["allow", "deny"]


@pytest.mark.parametrize("option", ["--in-toto", "--out"])
def test_signing_never_writes_over_a_data_file_or_the_key(tmp_path, signed, data_file, option):
    """`--in-toto numbers.jsonl` (data files are JSON Lines, like bundles) or `--out KEY` destroyed them."""
    from typer.testing import CliRunner

    from distill_guard.cli.main import app

    path, _ = signed
    key = tmp_path / "signer.pem"
    for target in [data_file, key] if option == "--out" else [data_file]:
        before = target.read_bytes()
        result = CliRunner().invoke(app, ["manifest", "sign", str(path), "--key", str(key), option, str(target)])
        assert result.exit_code == 1 and "refusing to overwrite" in result.output
        assert target.read_bytes() == before
