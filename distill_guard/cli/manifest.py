"""`distill-guard manifest ...`: create, verify, sign, keygen."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from distill_guard.atomic_files import refuse_unwritable
from distill_guard.cli import exit_codes
from distill_guard.errors import DistillGuardError, PolicyError
from distill_guard.input_files import read_bounded, regular_file_problem
from distill_guard.policy.dataset_manifest import (
    Attestation,
    DatasetId,
    DatasetProvenance,
    Generator,
    LoadedManifest,
    load_manifest,
    save_manifest,
)
from distill_guard.policy.in_toto_bundle import BUNDLE_SUFFIX, is_bundle, save_bundle
from distill_guard.policy.load import load_policy
from distill_guard.policy.schema import ProvenancePolicy
from distill_guard.provenance.hashing import describe_file
from distill_guard.provenance.integrity import manifest_bytes, verify_files
from distill_guard.provenance.signing import (
    SignatureCheck,
    check_signatures,
    generate_key,
    load_private_key,
    public_key_b64,
    sign,
    sign_envelope,
    signature_refused,
)

app = typer.Typer(help="Write, sign and verify dataset provenance manifests.", no_args_is_help=True)
out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)
MAX_SYSTEM_PROMPT_BYTES = 1024 * 1024
# Manifest fields as the options of `manifest create` that fill them, for error messages.
OPTION_OF_FIELD = {
    "model": "--generator",
    "revision": "--revision",
    "base_model": "--base-model",
    "sampling": "--sampling",
    "date": "--date",
    "name": "--name",
    "version": "--version",
    "audited_by": "--audited-by",
    "reference": "--audit-ref",
    "expires": "--audit-expires",
}


def _fail(message: str, code: int = exit_codes.INVALID_INPUT) -> typer.Exit:
    err.print(message, markup=False)
    return typer.Exit(code)


def _progress(total_bytes: int, label: str) -> Progress:
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err,
    )
    progress.add_task(label, total=total_bytes)
    return progress


def _parse_sampling(pairs: list[str]) -> dict[str, str | int | float | bool]:
    settings: dict[str, str | int | float | bool] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise _fail(f"--sampling {pair!r}: expected KEY=VALUE, e.g. temperature=1.0", exit_codes.USAGE)
        try:
            settings[key] = json.loads(raw)
        except ValueError:
            settings[key] = raw
        value = settings[key]
        if isinstance(value, float) and not math.isfinite(value):
            raise _fail(f"--sampling {pair!r}: {raw} is not a finite number", exit_codes.USAGE)
        if not isinstance(value, str | int | float | bool):
            raise _fail(f"--sampling {pair!r}: expected a number, true/false or text", exit_codes.USAGE)
    return settings


def _input_problems(files: list[Path]) -> list[str]:
    return [f"{f}: {problem}" for f in files if (problem := regular_file_problem(f))]


@app.command()
def create(
    files: Annotated[list[Path], typer.Argument(help="data files the manifest vouches for")],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="manifest to write (.yaml or .json)")],
    name: Annotated[str, typer.Option(help="dataset name")],
    version: Annotated[str, typer.Option(help="dataset version")],
    generator: Annotated[list[str], typer.Option(help="generator model id; repeat for mixed data")],
    revision: Annotated[str | None, typer.Option(help="generator revision (single generator)")] = None,
    base_model: Annotated[
        list[str] | None, typer.Option(help="each generator's base model, in --generator order")
    ] = None,
    system_prompt: Annotated[Path | None, typer.Option(help="file holding the generation system prompt")] = None,
    sampling: Annotated[list[str] | None, typer.Option(help="sampling setting KEY=VALUE; repeatable")] = None,
    date: Annotated[str | None, typer.Option(help="generation date, YYYY-MM-DD")] = None,
    audited_by: Annotated[str | None, typer.Option(help="who audited the generator")] = None,
    audit_ref: Annotated[str | None, typer.Option(help="audit ticket or report")] = None,
    audit_expires: Annotated[str | None, typer.Option(help="audit expiry, YYYY-MM-DD")] = None,
) -> None:
    """Hash data files and record who generated them; the manifest lists paths relative to itself."""
    bases = base_model or []
    if bases and len(bases) != len(generator):
        raise _fail("give one --base-model per --generator (or none)", exit_codes.USAGE)
    if revision and len(generator) != 1:
        raise _fail("--revision needs exactly one --generator", exit_codes.USAGE)
    try:
        refuse_unwritable(out_path)
    except DistillGuardError as exc:
        raise _fail(str(exc)) from None
    problems = _input_problems(files)
    if problems:
        raise _fail("\n".join(problems))
    folder = out_path.parent.resolve()
    outside = [str(f) for f in files if not f.resolve().is_relative_to(folder)]
    if outside:
        raise _fail(f"{', '.join(outside)}: outside {folder}; write the manifest in a folder that holds the data")
    audit = [audited_by, audit_ref, audit_expires]
    if any(audit) and not all(audit):
        raise _fail("an attestation needs --audited-by, --audit-ref and --audit-expires together", exit_codes.USAGE)
    try:
        prompt = read_bounded(system_prompt, MAX_SYSTEM_PROMPT_BYTES) if system_prompt else None
    except DistillGuardError as exc:
        raise _fail(str(exc)) from None
    prompt_sha = hashlib.sha256(prompt).hexdigest() if prompt is not None else None
    try:
        generators = [
            Generator(
                model=model,
                revision=revision,
                base_model=bases[i] if bases else None,
                system_prompt_sha256=prompt_sha,
                sampling=_parse_sampling(sampling or []),
                date=dt.date.fromisoformat(date) if date else None,
            )
            for i, model in enumerate(generator)
        ]
        attestation = (
            Attestation(audited_by=audited_by, reference=audit_ref, expires=dt.date.fromisoformat(audit_expires))
            if audited_by and audit_ref and audit_expires
            else None
        )
        dataset = DatasetId(name=name, version=version)
    except ValidationError as exc:
        raise _fail(f"invalid manifest input: {_option_problems(exc)}") from None
    except ValueError as exc:
        raise _fail(f"invalid manifest input: {exc}") from None
    with _progress(sum(f.stat().st_size for f in files), "hashing") as progress:
        task = progress.task_ids[0]
        described = [describe_file(f, out_path.parent, on_bytes=lambda n: progress.advance(task, n)) for f in files]
    manifest = DatasetProvenance(dataset=dataset, files=described, generators=generators, attestation=attestation)
    try:
        save_manifest(manifest, out_path)
    except DistillGuardError as exc:
        raise _fail(str(exc)) from None
    out.print(f"wrote {out_path} ({len(described)} files, {sum(f.size for f in described)} bytes)", markup=False)


def _option_problems(error: ValidationError) -> str:
    """Pydantic errors named by the option the user typed (`--generator`), not the manifest field."""
    parts = []
    for e in error.errors(include_url=False):
        field = str(e["loc"][0]) if e["loc"] else ""
        where = OPTION_OF_FIELD.get(field, ".".join(map(str, e["loc"])))
        parts.append(f"{where}: {e['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


@app.command()
def verify(
    manifest: Annotated[Path, typer.Argument(help="manifest to verify")],
    policy: Annotated[Path | None, typer.Option(help="policy whose trusted_signers to check against")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Re-hash every data file (streaming) and check the signature; exit 3 when anything fails.

    MANIFEST is a YAML or JSON manifest, or an in-toto bundle (`*.jsonl`) written by `sign --in-toto`."""
    try:
        loaded = load_manifest(manifest)
        rules = load_policy(policy).policy.provenance if policy else ProvenancePolicy()
    except PolicyError as exc:
        raise _fail(str(exc)) from None
    with _progress(manifest_bytes(loaded), "verifying") as progress:
        task = progress.task_ids[0]
        checks = verify_files(loaded, on_bytes=lambda n: progress.advance(task, n))
    signature = check_signatures(loaded, rules.trusted_signers)
    # An envelope no known key could check is never "verified", whatever the policy would allow.
    ok = all(c.ok for c in checks) and not signature_refused(signature, rules) and signature.status != "unverified"
    key_note = _unchecked_key_note(signature) if policy is None else None
    if as_json:
        payload = {
            "manifest": str(manifest),
            "ok": ok,
            "files": [vars(c) for c in checks],
            "signature": vars(signature) | {"key_checked": policy is not None},
        }
        out.print_json(json.dumps(payload))
    else:
        for check in checks:
            out.print(f"{check.status:<14} {check.detail}", markup=False)
        out.print(f"{'signature':<14} {signature.status}: {manifest}: {key_note or signature.detail}", markup=False)
        out.print("verified" if ok else "VERIFICATION FAILED", markup=False)
    raise typer.Exit(exit_codes.OK if ok else exit_codes.DENIED)


def _unchecked_key_note(signature: SignatureCheck) -> str | None:
    """Without --policy no key is trusted or distrusted: say the key went unchecked, not that a policy refused it."""
    if signature.status == "untrusted_key":
        return (
            "the signature verifies, but its key was NOT checked against any trusted signer "
            "(no --policy given; pass the policy to check who signed)"
        )
    if signature.status == "unverified":
        return (
            "the envelope's signature was NOT checked: an envelope names its key only by id, and without "
            "--policy no key is known (pass the policy whose trusted signers verify it)"
        )
    return None


def _refuse_overwriting_inputs(target: Path, loaded: LoadedManifest, key: Path) -> None:
    """A signed output written over the private key or a data file it vouches for destroys it (data files
    are JSON Lines, like bundles, so `--in-toto data.jsonl` is one typo away)."""
    inputs = {loaded.data_path(f).resolve(): f"the data file {f.path} it lists" for f in loaded.manifest.files}
    inputs[key.resolve()] = "the private key"
    clobbered = inputs.get(target.resolve())
    if clobbered is not None:
        raise DistillGuardError(f"{target}: is {clobbered}; refusing to overwrite it with the signed output")


@app.command("sign")
def sign_cmd(
    manifest: Annotated[Path, typer.Argument(help="manifest to sign (rewritten in place unless --out or --in-toto)")],
    key: Annotated[Path, typer.Option(help="Ed25519 private key, PEM")],
    out_path: Annotated[Path | None, typer.Option("--out", "-o", help="write here instead of in place")] = None,
    in_toto: Annotated[
        Path | None,
        typer.Option(help=f"write an in-toto bundle (*{BUNDLE_SUFFIX}: a DSSE envelope) here instead"),
    ] = None,
) -> None:
    """Sign every field of the manifest with an Ed25519 key (the policy lists the public key).

    With --in-toto the signature is a DSSE envelope over the manifest's in-toto Statement, in a
    bundle any DSSE verifier can check; the manifest file is left as it is. Without it, the raw
    signature is written into the manifest."""
    if in_toto is not None and out_path is not None:
        raise _fail("give --out (raw signature) or --in-toto (envelope), not both", exit_codes.USAGE)
    if in_toto is not None and not is_bundle(in_toto):
        raise _fail(f"--in-toto {in_toto}: an in-toto bundle is JSON Lines; name it *{BUNDLE_SUFFIX}", exit_codes.USAGE)
    try:
        loaded = load_manifest(manifest)
        private = load_private_key(key)
        _refuse_overwriting_inputs(in_toto or out_path or manifest, loaded, key)
        if in_toto is not None:
            target = save_bundle([sign_envelope(loaded.manifest, private)], in_toto)
        else:
            target = save_manifest(sign(loaded.manifest, private), out_path or manifest)
    except (PolicyError, DistillGuardError) as exc:
        raise _fail(str(exc)) from None
    out.print(f"signed {target} with key {public_key_b64(private.public_key())}", markup=False)


@app.command()
def keygen(
    private_key: Annotated[Path, typer.Argument(help="where to write the new private key (PEM, mode 0600)")],
    name: Annotated[str, typer.Option(help="signer name for the policy snippet")] = "my-signer",
) -> None:
    """Create an Ed25519 key pair and print the trusted_signers entry for the policy."""
    try:
        public = generate_key(private_key)
    except DistillGuardError as exc:
        raise _fail(str(exc)) from None
    out.print(f"wrote {private_key}\n# add to the policy:\nprovenance:\n  trusted_signers:", markup=False)
    out.print(f'    - {{name: {name}, public_key: "{public}"}}', markup=False)
