"""Dataset provenance manifests (`kind: DatasetProvenance`): what the data is and who generated it.

A manifest names every data file with its size and sha256, the generator(s) that produced the
records, an optional audit attestation and an optional Ed25519 signature. It is read with the
same hostile-YAML-safe loader as policies (JSON is accepted too), so every error is FILE:LINE:COL.
A manifest also travels as an in-toto bundle (`*.jsonl`): a DSSE envelope signing an in-toto
Statement whose subjects are the files and whose predicate is the manifest.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, Field, StrictInt, field_validator, model_validator
from securesystemslib.dsse import Envelope

from distill_guard.atomic_files import write_atomically
from distill_guard.errors import DistillGuardError, PolicyError, SourceIssue
from distill_guard.policy.documents import load_validated, parse_document
from distill_guard.policy.in_toto_bundle import BUNDLE_SUFFIX, IN_TOTO_STATEMENT, is_bundle, read_bundle
from distill_guard.policy.schema import NonEmpty
from distill_guard.policy.strict_model import StrictModel, repeated, visible

MANIFEST_KIND = "DatasetProvenance"
PREDICATE_TYPE = "https://distill-guard.dev/DatasetProvenance/v1"
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Scalar = str | int | float | bool
ModelId = Annotated[NonEmpty, AfterValidator(visible)]


class DatasetId(StrictModel):
    name: Annotated[str, Field(min_length=1, max_length=200), AfterValidator(visible)]
    version: ModelId


class DataFile(StrictModel):
    """One data file, relative to the manifest's folder (POSIX separators, never leaving it)."""

    path: NonEmpty
    size: StrictInt = Field(ge=0)
    sha256: Sha256
    records: StrictInt | None = Field(None, ge=0, description="rows in the file, when it is JSON Lines")

    @field_validator("path")
    @classmethod
    def _relative_inside(cls, value: str) -> str:
        pure = PurePosixPath(value)
        if pure.is_absolute() or "\\" in value or ".." in pure.parts:
            raise ValueError("must be a relative POSIX path inside the manifest's folder (no '..', no '\\')")
        return value


class Generator(StrictModel):
    """The model that produced the records; `base_model` is what it was fine-tuned from."""

    model: ModelId = Field(description="model id, as written in per-record provenance columns")
    revision: ModelId | None = None
    base_model: ModelId | None = None
    system_prompt_sha256: Sha256 | None = None
    sampling: dict[str, Scalar] = Field(default_factory=dict)
    date: dt.date | None = None


class Attestation(StrictModel):
    audited_by: NonEmpty
    reference: NonEmpty
    expires: dt.date


class Signature(StrictModel):
    algorithm: Literal["ed25519"] = "ed25519"
    public_key: Annotated[str, Field(pattern=r"^[A-Za-z0-9+/]{43}=$", description="Ed25519 raw key, base64")]
    value: Annotated[str, Field(pattern=r"^[A-Za-z0-9+/]{86}==$", description="signature, base64")]


class DatasetProvenance(StrictModel):
    api_version: Literal["distill-guard/v1"] = Field("distill-guard/v1", alias="apiVersion")
    kind: Literal["DatasetProvenance"] = MANIFEST_KIND
    dataset: DatasetId
    files: list[DataFile] = Field(min_length=1)
    generators: list[Generator] = Field(min_length=1)
    attestation: Attestation | None = None
    signature: Signature | None = None

    @field_validator("files")
    @classmethod
    def _unique_paths(cls, files: list[DataFile]) -> list[DataFile]:
        dupes = repeated([f.path for f in files])
        if dupes:
            raise ValueError(f"file listed twice: {', '.join(dupes)}")
        return files

    def generator(self, model_id: str) -> Generator | None:
        """The declared generator whose id (or `id@revision`) is `model_id`."""
        for gen in self.generators:
            if model_id in (gen.model, f"{gen.model}@{gen.revision}"):
                return gen
        return None

    def payload(self) -> dict:
        """Everything but the signature, as JSON-ready data: what a signature covers."""
        return self.model_dump(mode="json", by_alias=True, exclude={"signature"}, exclude_none=True)

    def to_in_toto(self) -> dict:
        """An in-toto Statement v1: the files as subjects, this manifest (less a raw signature) as the predicate."""
        return {
            "_type": IN_TOTO_STATEMENT,
            "subject": [{"name": f.path, "digest": {"sha256": f.sha256}} for f in self.files],
            "predicateType": PREDICATE_TYPE,
            "predicate": self.payload(),
        }

    def in_toto_bytes(self) -> bytes:
        """The Statement as the bytes a DSSE envelope signs (canonical: sorted keys, no whitespace)."""
        text = json.dumps(self.to_in_toto(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return text.encode("utf-8")


class SubjectDigest(StrictModel):
    """Only sha256: a digest that nothing re-computes would vouch for nothing, so others are refused."""

    sha256: Sha256


class Subject(StrictModel):
    name: NonEmpty
    digest: SubjectDigest


class ProvenanceStatement(StrictModel):
    """The in-toto Statement v1 of a bundle: its subjects must be exactly the predicate's files."""

    type_: Literal["https://in-toto.io/Statement/v1"] = Field(alias="_type")
    subject: list[Subject] = Field(min_length=1)
    predicate_type: Literal["https://distill-guard.dev/DatasetProvenance/v1"] = Field(alias="predicateType")
    predicate: DatasetProvenance

    @model_validator(mode="after")
    def _subjects_are_the_files(self) -> ProvenanceStatement:
        subjects = {(s.name, s.digest.sha256) for s in self.subject}
        files = {(f.path, f.sha256) for f in self.predicate.files}
        if len(subjects) != len(self.subject) or subjects != files:
            differing = sorted({name for name, _ in subjects ^ files}) or ["a subject listed twice"]
            raise ValueError(
                "the statement's subjects must be exactly the predicate's files with the same sha256; "
                f"they differ for {', '.join(differing)}"
            )
        return self


@dataclass(frozen=True)
class LoadedManifest:
    """A manifest and where it was read from; `envelope` is the DSSE envelope when it came in a bundle."""

    manifest: DatasetProvenance
    path: Path
    envelope: Envelope | None = None

    def data_path(self, file: DataFile) -> Path:
        return self.path.parent / file.path

    @property
    def folder(self) -> Path:
        return self.path.parent.resolve()

    def inside_folder(self, path: Path) -> bool:
        """A listed file must stay in the manifest's folder once symlinks are followed."""
        return path.resolve().is_relative_to(self.folder)


def load_manifest(path: str | Path) -> LoadedManifest:
    """Read and validate a manifest (YAML, JSON or an in-toto bundle); PolicyError with FILE:LINE:COL otherwise."""
    if is_bundle(path):
        return _load_bundle(Path(path))
    manifest, _ = load_validated(path, DatasetProvenance)
    return LoadedManifest(manifest, Path(path))


def _load_bundle(path: Path) -> LoadedManifest:
    """The one envelope of the bundle whose Statement is a DatasetProvenance (others are ignored)."""
    ours = [b for b in read_bundle(path) if b.statement.data.get("predicateType") == PREDICATE_TYPE]
    if not ours:
        message = f"no envelope holds a statement with predicateType '{PREDICATE_TYPE}'"
        raise PolicyError([SourceIssue(str(path), 1, 1, message)])
    if len(ours) > 1:
        message = f"a second DatasetProvenance statement (the first is on line {ours[0].line}); one manifest per bundle"
        raise PolicyError([SourceIssue(str(path), ours[1].line, 1, message)])
    bundled = ours[0]
    try:
        statement = parse_document(bundled.statement, ProvenanceStatement)
    except PolicyError as exc:
        raise bundled.issue(exc) from None
    return LoadedManifest(statement.predicate, path, bundled.envelope)


def render_manifest(manifest: DatasetProvenance, path: Path) -> str:
    """JSON for `.json` files, block YAML otherwise (keys in schema order, readable in review)."""
    data = manifest.model_dump(mode="json", by_alias=True, exclude_none=True)
    if path.suffix == ".json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)


def save_manifest(manifest: DatasetProvenance, path: str | Path) -> Path:
    path = Path(path)
    if is_bundle(path):
        raise DistillGuardError(
            f"{path}: *{BUNDLE_SUFFIX} is read as an in-toto bundle; write a manifest as .yaml or .json "
            "(`manifest sign --in-toto` writes the bundle)"
        )
    write_atomically(path, render_manifest(manifest, path))
    return path
