"""Manifests signed as DSSE envelopes over the in-toto Statement, and the raw Ed25519 form they replace.

The attacker writes the bundle: every crafted envelope below must be refused (exit 1 with the
bundle's line when it is malformed, exit 3 when it is well-formed but its signature does not hold),
and trust only ever comes from the policy's trusted signers.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import datasets
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import CryptoSigner, SSlibKey
from typer.testing import CliRunner

from distill_guard.cli.main import app
from distill_guard.policy.dataset_manifest import Generator, load_manifest
from distill_guard.policy.in_toto_bundle import IN_TOTO_PAYLOAD_TYPE, render_bundle
from distill_guard.provenance.gate import ProvenanceGate
from distill_guard.provenance.signing import public_key_b64, sign, sign_envelope

from .conftest import OTHER_FAMILY_TEACHER, SIGNING_KEY, TODAY, TRUSTED_SIGNER, policy_data

runner = CliRunner()
RAW_SIGNED = Path(__file__).parent / "data" / "raw-ed25519"
# The key that signed data/raw-ed25519/numbers.provenance.yaml with the raw Ed25519 signing of
# distill-guard before envelopes existed (main at 74f6782); its private half was thrown away.
RAW_SIGNER = {"name": "data-team", "public_key": "zpq3luOLyxmj3Ad6d5SoTHM9G7nhjr91g9eLp2lxgOM="}


@pytest.fixture
def manifest(make_manifest, data_file) -> Path:
    return make_manifest([data_file], [Generator(model=OTHER_FAMILY_TEACHER, base_model="other-lab/base")])


@pytest.fixture
def policy(tmp_path) -> Path:
    """Requires a signature, trusts only TRUSTED_SIGNER."""
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy_data(trusted_signers=[TRUSTED_SIGNER], require_signature=True)), "utf-8")
    return path


def bundle_of(manifest: Path, *envelopes: Envelope) -> Path:
    path = manifest.with_name("numbers.intoto.jsonl")
    path.write_text(render_bundle(list(envelopes)), "utf-8")
    return path


def statement(manifest: Path) -> dict:
    return load_manifest(manifest).manifest.to_in_toto()


def envelope(payload: dict | bytes, key: Ed25519PrivateKey = SIGNING_KEY, payload_type: str = IN_TOTO_PAYLOAD_TYPE):
    """An envelope the way an attacker (or an honest tool) would make one with securesystemslib."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    made = Envelope(body, payload_type, {})
    made.sign(CryptoSigner(key))
    return made


def verify(path: Path, policy: Path | None = None):
    return runner.invoke(app, ["manifest", "verify", str(path), *(["--policy", str(policy)] if policy else [])])


def test_a_manifest_signed_by_the_cli_verifies_with_securesystemslib_itself(tmp_path, manifest):
    keygen = runner.invoke(app, ["manifest", "keygen", str(tmp_path / "key.pem")])
    public_b64 = yaml.safe_load(keygen.stdout[keygen.stdout.index("provenance:") :])["provenance"]["trusted_signers"]
    bundle = manifest.with_name("numbers.intoto.jsonl")
    args = ["manifest", "sign", str(manifest), "--key", str(tmp_path / "key.pem"), "--in-toto", str(bundle)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    # What a verifier outside distill-guard does: the public key the policy lists, and the DSSE library.
    public = SSlibKey.from_crypto(Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64[0]["public_key"])))
    signed = Envelope.from_dict(json.loads(bundle.read_text("utf-8")))
    assert list(signed.verify([public], 1)) == [public.keyid]  # raises VerificationError when it does not hold
    assert signed.payload_type == "application/vnd.in-toto+json"
    body = json.loads(signed.payload)
    digest = load_manifest(manifest).manifest.files[0].sha256
    assert body["_type"] == "https://in-toto.io/Statement/v1"
    assert body["subject"] == [{"name": "numbers.jsonl", "digest": {"sha256": digest}}]
    assert body["predicate"]["generators"][0]["model"] == OTHER_FAMILY_TEACHER
    tampered = Envelope(
        signed.payload.replace(b"other-lab/base", b"other-lab/basf"), signed.payload_type, signed.signatures
    )
    with pytest.raises(VerificationError):
        tampered.verify([public], 1)


def test_a_raw_ed25519_manifest_signed_before_envelopes_still_verifies(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(policy_data(trusted_signers=[RAW_SIGNER], require_signature=True)), "utf-8")
    result = verify(RAW_SIGNED / "numbers.provenance.yaml", policy)
    assert result.exit_code == 0, result.output
    assert "signature valid, signed by trusted signer 'data-team'" in result.stdout


def test_a_bundle_by_a_trusted_signer_clears_the_data_like_a_signed_manifest(
    manifest, policy, data_file, make_policy, student_dir
):
    bundle = bundle_of(manifest, sign_envelope(load_manifest(manifest).manifest, SIGNING_KEY))
    result = verify(bundle, policy)
    assert result.exit_code == 0, result.output
    assert "envelope signature valid, signed by trusted signer 'data-team'" in result.stdout
    loaded = make_policy(trusted_signers=[TRUSTED_SIGNER], require_signature=True)
    gate = ProvenanceGate(loaded, student=student_dir, today=TODAY)
    decision = gate.clear_dataset(datasets.Dataset.from_json(str(data_file)), bundle).decision
    assert decision.allowed, str(decision)
    assert decision.teachers[0].relation == "different_from_student"  # the signed base_model counted as verified
    loaded_from_bundle = gate.load_dataset(bundle)
    assert loaded_from_bundle.decision.allowed and loaded_from_bundle.dataset.num_rows == 40


def test_an_envelope_without_a_trusted_key_is_never_reported_verified(manifest, policy):
    stranger = Ed25519PrivateKey.generate()
    bundle = bundle_of(manifest, sign_envelope(load_manifest(manifest).manifest, stranger))
    unchecked = verify(bundle)  # no --policy: no key to check the envelope with
    assert unchecked.exit_code == 3 and "signature was NOT checked" in unchecked.stdout
    refused = verify(bundle, policy)
    assert refused.exit_code == 3 and "no trusted signer's key has" in refused.stdout


def test_data_changed_after_signing_fails_against_the_subject_digest(manifest, policy, data_file):
    bundle = bundle_of(manifest, sign_envelope(load_manifest(manifest).manifest, SIGNING_KEY))
    data_file.write_bytes(data_file.read_bytes().replace(b"1", b"2", 1))
    result = verify(bundle, policy)
    assert result.exit_code == 3
    assert "hash_mismatch" in result.stdout and "numbers.jsonl" in result.stdout


def test_a_signed_statement_whose_subject_digest_differs_from_its_files_is_refused(manifest, policy):
    body = statement(manifest)
    body["subject"][0]["digest"]["sha256"] = "0" * 64
    bundle = bundle_of(manifest, envelope(body))  # even the trusted signer cannot make subjects and files disagree
    result = verify(bundle, policy)
    assert result.exit_code == 1
    assert f"{bundle}:1:" in result.output and "subjects must be exactly the predicate's files" in result.output


def test_a_subject_digest_nothing_recomputes_is_refused(manifest, policy):
    body = statement(manifest)
    body["subject"][0]["digest"]["sha512"] = "ab" * 64
    result = verify(bundle_of(manifest, envelope(body)), policy)
    assert result.exit_code == 1 and "sha512" in result.output


def test_a_trusted_signature_over_another_payload_type_is_refused_at_its_line(manifest, policy):
    swapped = envelope(statement(manifest), payload_type="application/json")  # signed, but not as a statement
    bundle = bundle_of(manifest, swapped)
    result = verify(bundle, policy)
    assert result.exit_code == 1
    assert f"{bundle}:1:" in result.output and "payloadType 'application/json'" in result.output


def test_a_signature_moved_onto_another_statement_is_a_forgery(manifest, policy):
    honest = sign_envelope(load_manifest(manifest).manifest, SIGNING_KEY)
    body = statement(manifest)
    body["predicate"]["generators"][0]["base_model"] = "other-lab/another-base"
    moved = Envelope(json.dumps(body).encode(), IN_TOTO_PAYLOAD_TYPE, dict(honest.signatures))
    result = verify(bundle_of(manifest, moved), policy)
    assert result.exit_code == 3
    assert "signature invalid" in result.stdout or "does not verify" in result.stdout


def test_an_attacker_key_under_the_trusted_key_id_is_a_forgery(manifest, policy):
    attacker = Ed25519PrivateKey.generate()
    forged = envelope(statement(manifest), attacker)
    (signature,) = forged.signatures.values()
    trusted_id = SSlibKey.from_crypto(SIGNING_KEY.public_key()).keyid
    signature.keyid = trusted_id
    result = verify(bundle_of(manifest, Envelope(forged.payload, forged.payload_type, {trusted_id: signature})), policy)
    assert result.exit_code == 3 and "does not verify" in result.stdout


def test_a_key_id_that_spells_the_trusted_public_key_checks_nothing(manifest, policy):
    attacker = Ed25519PrivateKey.generate()
    forged = envelope(statement(manifest), attacker)
    (signature,) = forged.signatures.values()
    signature.keyid = TRUSTED_SIGNER["public_key"]  # the policy's spelling of the key, not its key id
    result = verify(
        bundle_of(manifest, Envelope(forged.payload, forged.payload_type, {signature.keyid: signature})), policy
    )
    assert result.exit_code == 3 and "no trusted signer's key has" in result.stdout


def test_a_valid_trusted_signature_next_to_a_forged_one_under_another_trusted_key_is_refused(manifest, tmp_path):
    second = Ed25519PrivateKey.generate()
    second_signer = {"name": "audit-team", "public_key": public_key_b64(second.public_key())}
    policy = tmp_path / "two.yaml"
    policy.write_text(yaml.safe_dump(policy_data(trusted_signers=[TRUSTED_SIGNER, second_signer])), "utf-8")
    both = sign_envelope(load_manifest(manifest).manifest, SIGNING_KEY)
    forged = envelope(b"something else", Ed25519PrivateKey.generate())
    (bad,) = forged.signatures.values()
    bad.keyid = SSlibKey.from_crypto(second.public_key()).keyid
    both.signatures[bad.keyid] = bad
    result = verify(bundle_of(manifest, both), policy)
    assert result.exit_code == 3 and "'audit-team, data-team'" in result.stdout


def test_a_raw_signature_inside_the_envelope_that_disagrees_with_it_is_refused(manifest, policy):
    loaded = load_manifest(manifest).manifest
    by_stranger = sign(loaded, Ed25519PrivateKey.generate())  # a valid raw signature, by another key
    body = statement(manifest)
    body["predicate"]["signature"] = by_stranger.signature.model_dump()
    result = verify(bundle_of(manifest, envelope(body)), policy)  # the envelope itself is by the trusted key
    assert result.exit_code == 3 and "the raw signature and the envelope disagree" in result.stdout
    body["predicate"]["signature"] = sign(loaded, SIGNING_KEY).signature.model_dump()
    agreeing = verify(bundle_of(manifest, envelope(body)), policy)
    assert agreeing.exit_code == 0, agreeing.output


ONE_SIGNATURE = [{"keyid": "a", "sig": "AA=="}]


def envelope_line(payload: str, signatures: list[dict]) -> str:
    return json.dumps({"payload": payload, "payloadType": IN_TOTO_PAYLOAD_TYPE, "signatures": signatures})


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json at all", "must be a mapping"),
        (envelope_line("e30=", []), "at least 1"),
        (envelope_line("%%%", ONE_SIGNATURE), "not a DSSE envelope"),
        (envelope_line("e30=", ONE_SIGNATURE), "_type must be"),  # payload {}: not an in-toto Statement
    ],
    ids=["not-json", "no-signatures", "bad-base64", "not-a-statement"],
)
def test_a_malformed_bundle_is_refused_at_its_line(manifest, policy, line, message):
    bundle = manifest.with_name("numbers.intoto.jsonl")
    bundle.write_text(
        render_bundle([sign_envelope(load_manifest(manifest).manifest, SIGNING_KEY)]) + "\n" + line + "\n"
    )
    result = verify(bundle, policy)
    assert result.exit_code == 1 and message in result.output
    assert f"{bundle}:3:" in result.output


def test_two_manifests_in_one_bundle_are_refused(manifest, policy):
    signed = sign_envelope(load_manifest(manifest).manifest, SIGNING_KEY)
    bundle = bundle_of(manifest, signed, signed)
    result = verify(bundle, policy)
    assert result.exit_code == 1 and f"{bundle}:2:1: a second DatasetProvenance statement" in result.output


def test_sign_writes_no_manifest_into_a_bundle_path(tmp_path, manifest):
    key = tmp_path / "key.pem"
    runner.invoke(app, ["manifest", "keygen", str(key)])
    raw_into_bundle = runner.invoke(
        app, ["manifest", "sign", str(manifest), "--key", str(key), "-o", str(tmp_path / "m.jsonl")]
    )
    assert raw_into_bundle.exit_code == 1 and "in-toto bundle" in raw_into_bundle.output
    bundle_as_json = runner.invoke(
        app, ["manifest", "sign", str(manifest), "--key", str(key), "--in-toto", str(tmp_path / "b.json")]
    )
    assert bundle_as_json.exit_code == 2 and "JSON Lines" in bundle_as_json.output
    assert not (tmp_path / "m.jsonl").exists() and not (tmp_path / "b.json").exists()
