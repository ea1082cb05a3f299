"""Ed25519 signatures over a manifest's canonical JSON (every field but the signature itself).

Canonical form: keys sorted, no insignificant whitespace, UTF-8, prefixed with a domain tag so a
signature made for a manifest can never be replayed as a signature over anything else.
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

from distill_guard.atomic_files import write_atomically
from distill_guard.errors import DistillGuardError
from distill_guard.input_files import read_bounded
from distill_guard.policy.dataset_manifest import DatasetProvenance, Signature
from distill_guard.policy.schema import ProvenancePolicy, TrustedSigner

DOMAIN = b"distill-guard/DatasetProvenance/v1\n"
MAX_KEY_FILE_BYTES = 64 * 1024

SignatureStatus = Literal["unsigned", "valid", "untrusted_key", "invalid"]


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


@dataclass(frozen=True)
class SignatureCheck:
    status: SignatureStatus
    signer: str | None
    detail: str


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
    """Forged signatures always; an untrusted key when the policy names signers; none when one is required."""
    if check.status == "invalid":
        return True
    if check.status == "untrusted_key":
        return policy.require_signature or bool(policy.trusted_signers)
    return check.status == "unsigned" and policy.require_signature
