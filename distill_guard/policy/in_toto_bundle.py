"""in-toto bundles: JSON Lines of DSSE envelopes, each signing an in-toto Statement.

The envelope is securesystemslib's `dsse.Envelope` (from the authors of DSSE), so the
signatures are later checked by that library over the exact bytes that were signed. Reading
trusts nothing: every line goes through the hostile-YAML-safe loader (JSON is YAML), every
envelope must carry the in-toto payload type, and a payload that does not parse is reported
at its envelope's line, never as a traceback.
"""

from __future__ import annotations

import binascii
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import Field
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import FormatError

from distill_guard.atomic_files import write_atomically
from distill_guard.errors import DistillGuardError, PolicyError, SourceIssue
from distill_guard.input_files import InputFileError, read_bounded
from distill_guard.policy.documents import parse_document
from distill_guard.policy.strict_model import StrictModel
from distill_guard.policy.yaml_source import MAX_FILE_BYTES, YamlDocument, parse_yaml

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
IN_TOTO_STATEMENT = "https://in-toto.io/Statement/v1"
BUNDLE_SUFFIX = ".jsonl"
MAX_BUNDLE_BYTES = 2 * MAX_FILE_BYTES  # a statement of MAX_FILE_BYTES grows by a third in base64
MAX_ENVELOPES = 64
Base64 = Annotated[str, Field(min_length=1, max_length=MAX_BUNDLE_BYTES)]


class EnvelopeSignature(StrictModel):
    keyid: Annotated[str, Field(max_length=256)]
    sig: Base64


class EnvelopeLine(StrictModel):
    """One DSSE envelope as written in a bundle line (the DSSE spec's JSON form)."""

    payload: Base64
    payload_type: str = Field(alias="payloadType")
    signatures: list[EnvelopeSignature] = Field(min_length=1, max_length=16)


@dataclass(frozen=True)
class BundledStatement:
    """An envelope of a bundle and its decoded payload (located, for error messages)."""

    envelope: Envelope
    statement: YamlDocument
    line: int
    payload_column: int

    def issue(self, error: PolicyError) -> PolicyError:
        return _in_payload(error, self.statement.file, self.line, self.payload_column)


def _in_payload(error: PolicyError, shown: str, line: int, column: int) -> PolicyError:
    """Errors inside a payload, located at its envelope's line in the bundle (and inside the payload)."""
    return PolicyError(
        [SourceIssue(shown, line, column, f"signed statement {i.line}:{i.column}: {i.message}") for i in error.issues]
    )


def is_bundle(path: str | Path) -> bool:
    return Path(path).suffix == BUNDLE_SUFFIX


def read_bundle(path: str | Path) -> list[BundledStatement]:
    """Every envelope of the bundle at `path`, its payload decoded; PolicyError FILE:LINE:COL otherwise."""
    shown = str(path)
    try:
        raw = read_bounded(path, MAX_BUNDLE_BYTES)
    except InputFileError as exc:
        raise PolicyError([SourceIssue(shown, 1, 1, exc.reason)]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError([SourceIssue(shown, 1, 1, f"not UTF-8 (invalid byte at offset {exc.start})")]) from None
    lines = [(number, line) for number, line in enumerate(text.split("\n"), start=1) if line.strip()]
    if not lines:
        raise PolicyError([SourceIssue(shown, 1, 1, "bundle is empty; expected one DSSE envelope per line")])
    if len(lines) > MAX_ENVELOPES:
        raise PolicyError([SourceIssue(shown, lines[MAX_ENVELOPES][0], 1, f"more than {MAX_ENVELOPES} envelopes")])
    return [_read_envelope(shown, number, line) for number, line in lines]


def _read_envelope(shown: str, number: int, line: str) -> BundledStatement:
    # Blank lines before it keep the loader's line numbers those of the bundle.
    doc = parse_yaml("\n" * (number - 1) + line, shown)
    parsed = parse_document(doc, EnvelopeLine)
    if parsed.payload_type != IN_TOTO_PAYLOAD_TYPE:
        message = (
            f"payloadType '{parsed.payload_type}': expected '{IN_TOTO_PAYLOAD_TYPE}' (an in-toto Statement); "
            "a signature over another kind of payload never vouches for a manifest"
        )
        raise PolicyError([doc.issue(("payloadType",), message, prefer_key=False)])
    try:
        envelope = Envelope.from_dict(parsed.model_dump(by_alias=True))
    except (binascii.Error, ValueError, FormatError) as exc:
        raise PolicyError([doc.issue((), f"not a DSSE envelope: {exc}")]) from None
    column = doc.locate(("payload",), prefer_key=False).column
    if len(envelope.payload) > MAX_FILE_BYTES:
        limit = f"payload is {len(envelope.payload)} bytes; the limit is {MAX_FILE_BYTES} bytes"
        raise PolicyError([SourceIssue(shown, number, column, limit)])
    try:
        payload = envelope.payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        detail = f"payload is not UTF-8 (invalid byte at offset {exc.start})"
        raise PolicyError([SourceIssue(shown, number, column, detail)]) from None
    try:
        statement = parse_yaml(payload, shown)
        if statement.data.get("_type") != IN_TOTO_STATEMENT:
            kind = f"_type must be '{IN_TOTO_STATEMENT}': every envelope of a bundle signs an in-toto Statement"
            raise PolicyError([statement.issue(("_type",), kind)])
    except PolicyError as exc:
        raise _in_payload(exc, shown, number, column) from None
    return BundledStatement(envelope, statement, number, column)


def render_bundle(envelopes: list[Envelope]) -> str:
    return "".join(json.dumps(e.to_dict(), separators=(",", ":")) + "\n" for e in envelopes)


def save_bundle(envelopes: list[Envelope], path: str | Path) -> Path:
    path = Path(path)
    if not is_bundle(path):
        raise DistillGuardError(f"{path}: an in-toto bundle is JSON Lines; name it *{BUNDLE_SUFFIX}")
    write_atomically(path, render_bundle(envelopes))
    return path
