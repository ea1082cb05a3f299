"""Manifest signatures: DSSE envelopes over the in-toto Statement, and the older raw Ed25519 form.

New signatures are DSSE envelopes made and checked by securesystemslib (the Secure Systems
Lab's DSSE implementation), so any DSSE verifier can check them with the signer's public key.
The raw form signs the manifest's canonical JSON (every field but the signature; keys sorted,
no insignificant whitespace, UTF-8) prefixed with a domain tag, so it can never be replayed as
a signature over anything else; manifests signed that way are still accepted.

Trust never comes from the envelope: a signature counts only when a key the policy lists
verifies it, whatever key id the envelope claims.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import CryptoSigner, SSlibKey

from distill_guard.atomic_files import write_atomically
from distill_guard.errors import DistillGuardError
from distill_guard.input_files import read_bounded
from distill_guard.policy.dataset_manifest import DatasetProvenance, LoadedManifest, Signature
from distill_guard.policy.in_toto_bundle import IN_TOTO_PAYLOAD_TYPE
from distill_guard.policy.schema import ProvenancePolicy, TrustedSigner

DOMAIN = b"distill-guard/DatasetProvenance/v1\n"
MAX_KEY_FILE_BYTES = 64 * 1024

# unverified: an envelope signed only under key ids no trusted key has, so nothing could check it.
SignatureStatus = Literal["unsigned", "valid", "untrusted_key", "unverified", "invalid"]


def canonical_bytes(manifest: DatasetProvenance) -> bytes:
    text = json.dumps(manifest.payload(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return DOMAIN + text.encode("utf-8")


def public_key_b64(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def generate_key(private_path: str | Path) -> str:
    """Write a new PEM private key (mode 0600) and return the base64 public key for the policy."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    path = Path(private_path)
    if path.exists() or path.is_symlink():
        raise DistillGuardError(f"{path}: already exists; refusing to overwrite a key")
    write_atomically(path, pem, mode=0o600)
    return public_key_b64(key.public_key())


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    pem = read_bounded(path, MAX_KEY_FILE_BYTES)
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise DistillGuardError(f"{path}: cannot read an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise DistillGuardError(f"{path}: not an Ed25519 key")
    return key


def sign(manifest: DatasetProvenance, key: Ed25519PrivateKey) -> DatasetProvenance:
    """A copy of `manifest` carrying a signature over all its other fields."""
    value = base64.b64encode(key.sign(canonical_bytes(manifest))).decode("ascii")
    signature = Signature(public_key=public_key_b64(key.public_key()), value=value)
    return manifest.model_copy(update={"signature": signature})


def sign_envelope(manifest: DatasetProvenance, key: Ed25519PrivateKey) -> Envelope:
    """A DSSE envelope signing the manifest's in-toto Statement (securesystemslib's key id for `key`)."""
    envelope = Envelope(manifest.in_toto_bytes(), IN_TOTO_PAYLOAD_TYPE, {})
    envelope.sign(CryptoSigner(key))
    return envelope


def envelope_key(signer: TrustedSigner) -> SSlibKey:
    """A trusted signer's key as securesystemslib names it: its key id is derived from the key itself."""
    return SSlibKey.from_crypto(Ed25519PublicKey.from_public_bytes(base64.b64decode(signer.public_key)))


@dataclass(frozen=True)
class SignatureCheck:
    status: SignatureStatus
    signer: str | None
    detail: str


def check_signatures(loaded: LoadedManifest, trusted: list[TrustedSigner]) -> SignatureCheck:
    """The manifest's signature: its envelope's when it came in a bundle, else the raw one.

    A bundle whose predicate also carries a raw signature is accepted only when both agree
    (same outcome, same signer); otherwise it is a forgery, whichever one is the honest one.
    """
    raw = verify_signature(loaded.manifest, trusted)
    if loaded.envelope is None:
        return raw
    envelope = verify_envelope(loaded.envelope, trusted)
    if raw.status == "unsigned" or (raw.status, raw.signer) == (envelope.status, envelope.signer):
        return envelope
    detail = f"the raw signature and the envelope disagree (raw: {raw.detail}; envelope: {envelope.detail})"
    return SignatureCheck("invalid", None, detail)


def verify_envelope(envelope: Envelope, trusted: list[TrustedSigner]) -> SignatureCheck:
    """Every signature claiming a trusted key must verify under it (securesystemslib's `verify`)."""
    keys = {key.keyid: (signer.name, key) for signer in trusted for key in [envelope_key(signer)]}
    claimed = [keyid for keyid in envelope.signatures if keyid in keys]
    if not claimed:
        ids = ", ".join(f"{keyid[:12]}..." for keyid in envelope.signatures)
        return SignatureCheck(
            "unverified", None, f"envelope signed under key id {ids}, which no trusted signer's key has: not checked"
        )
    try:
        accepted = envelope.verify([keys[keyid][1] for keyid in claimed], threshold=len(claimed))
    except VerificationError:
        names = ", ".join(sorted({keys[keyid][0] for keyid in claimed}))
        return SignatureCheck(
            "invalid",
            None,
            f"envelope signature under the key of '{names}' does not verify: "
            "the statement was altered or the signature forged",
        )
    signer = ", ".join(sorted({keys[keyid][0] for keyid in accepted}))
    return SignatureCheck("valid", signer, f"envelope signature valid, signed by trusted signer '{signer}'")


def verify_signature(manifest: DatasetProvenance, trusted: list[TrustedSigner]) -> SignatureCheck:
    """Check the signature mathematically first, then whether its key is one the policy trusts."""
    sig = manifest.signature
    if sig is None:
        return SignatureCheck("unsigned", None, "manifest is not signed")
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(sig.public_key))
        key.verify(base64.b64decode(sig.value), canonical_bytes(manifest))
    except (InvalidSignature, ValueError):
        return SignatureCheck(
            "invalid", None, "signature does not verify: the manifest was altered or the signature forged"
        )
    signer = next((s.name for s in trusted if s.public_key == sig.public_key), None)
    if signer is None:
        return SignatureCheck(
            "untrusted_key", None, f"signed by key {sig.public_key[:12]}..., which the policy does not trust"
        )
    return SignatureCheck("valid", signer, f"signature valid, signed by trusted signer '{signer}'")


def signature_refused(check: SignatureCheck, policy: ProvenancePolicy) -> bool:
    """Forged signatures always; an untrusted or unchecked key when the policy names signers or requires one;
    no signature when one is required."""
    if check.status == "invalid":
        return True
    if check.status in ("untrusted_key", "unverified"):
        return policy.require_signature or bool(policy.trusted_signers)
    return check.status == "unsigned" and policy.require_signature
