"""The hostile-input corpus: (name, how to build the input, command, exit code, message) as data.

Every case builds real files in a fresh folder and returns the `distill-guard` arguments plus the
text that must name the file (and its line where there is one). Exit codes: 1 invalid input,
3 denied. Kinds group the table for the counts in the report.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .workspace import MANIFEST, ROWS, Workspace, deep_json, safetensors_bytes

Build = Callable[[Workspace], tuple[list[str], str]]


@dataclass(frozen=True)
class Case:
    kind: str
    name: str
    build: Build
    code: int
    message: str
    denied_paths: tuple[str, ...] = ()  # chmod 000 (simulated under root): relative to the case folder

    @property
    def id(self) -> str:
        return f"{self.kind}-{self.name}"


CASES: list[Case] = []


def case(kind: str, name: str, code: int, message: str, *, denied: tuple[str, ...] = ()) -> Callable[[Build], Build]:
    def register(build: Build) -> Build:
        CASES.append(Case(kind, name, build, code, message, denied))
        return build

    return register


def validate(path: Path, line: int | None = None) -> tuple[list[str], str]:
    return ["policy", "validate", str(path)], f"{path}:{line}:" if line else str(path)


# ---------------------------------------------------------------- policies: one edit of a valid file each
POLICY_EDITS: list[tuple[str, str, str, int, str]] = [
    # (name, old, new, line, message)
    ("base-60-port", "port: 9464", "port: 2:37:44", 24, "base-60"),
    ("base-60-int", "patience: 2", "patience: 1:30", 22, "base-60"),
    ("octal-int", "every_n_steps: 50", "every_n_steps: 010", 18, "octal"),
    ("5000-digit-int", "every_n_steps: 50", "every_n_steps: " + "9" * 5000, 18, "digits"),
    ("5000-digit-port", "port: 9464", "port: " + "1" * 5000, 24, "digits"),
    ("huge-negative-int", "every_n_steps: 50", "every_n_steps: -" + "7" * 4500, 18, "digits"),
    ("nan-threshold", "max_increase: 0.05", "max_increase: .nan", 22, "finite"),
    ("inf-threshold", "max_increase: 0.05", "max_increase: .inf", 22, "finite"),
    ("minus-inf-patience", "patience: 2", "patience: -.inf", 22, "finite"),
    ("overflow-float", "max_increase: 0.05", "max_increase: 1.0e+400", 22, "finite"),
    ("nan-max-score", "max_increase: 0.05", "max_score: .NaN", 22, "finite"),
    ("bidi-in-family-glob", '"distill-guard/tiny-*"', '"distill-guard/tiny-*\u202e"', 8, "invisible"),
    ("bidi-escape-in-glob", '"distill-guard/tiny-*"', '"distill-guard/\\u202etiny-*"', 8, "invisible"),
    ("zero-width-in-glob", '"other-lab/*"', '"other-lab/\u200b*"', 10, "invisible"),
    ("bom-inside-glob", '"other-lab/*"', '"other\ufefflab/*"', 10, "invisible"),
    (
        "word-joiner-in-generator-glob",
        "when: {teacher_family: same_as_student, teacher_trusted: false}",
        'when: {generator: "other-lab/\u2060*"}',
        15,
        "invisible",
    ),
    (
        "bidi-isolate-in-dataset-glob",
        "when: {teacher_family: same_as_student, teacher_trusted: false}",
        'when: {dataset: "num\u2066bers"}',
        15,
        "invisible",
    ),
    ("ansi-in-description", "description: policy under attack", 'description: "\\e[2K\\rALLOWED"', 5, "control"),
    ("c1-csi-in-description", "description: policy under attack", 'description: "a\\x9b2Kb"', 5, "control"),
    ("lone-surrogate", "description: policy under attack", 'description: "\\ud800"', 5, "surrogate"),
    ("nul-escape-in-target", "target: owl", 'target: "o\\0wl"', 21, "control"),
    ("ansi-in-key", "  every_n_steps: 50", '  "\\e[31mevery": 50', 18, "control"),
    ("bidi-in-key", "  every_n_steps: 50", "  every\u202e_n_steps: 50", 18, "invisible"),
    ("zero-width-in-key", "  every_n_steps: 50", "  every_n\u200b_steps: 50", 18, "invisible"),
    ("bidi-in-description", "description: policy under attack", "description: policy \u2067under attack", 5, "bidi"),
    ("shadow-unknown-lineage", "id: same-base-untrusted", "id: unknown-lineage", 14, "built-in"),
    ("shadow-manifest-integrity", "id: same-base-untrusted", "id: manifest-integrity", 14, "built-in"),
    ("shadow-manifest-signature", "id: same-base-untrusted", "id: manifest-signature", 14, "built-in"),
    ("shadow-unknown-provenance", "id: same-base-untrusted", "id: unknown-provenance", 14, "built-in"),
    ("shadow-undeclared-generator", "id: same-base-untrusted", "id: undeclared-generator", 14, "built-in"),
    ("shadow-dataset-not-cleared", "id: same-base-untrusted", "id: dataset-not-cleared", 14, "built-in"),
    ("shadow-drop-after-clearance", "id: same-base-untrusted", "id: drop-after-clearance", 14, "built-in"),
    ("duplicate-nested-key", "  name: hostile-corpus\n", "  name: hostile-corpus\n  name: other\n", 5, "duplicate key"),
    ("duplicate-top-key", "probes:\n", "kind: Other\nprobes:\n", 17, "duplicate key"),
    (
        "metadata-is-a-list",
        "metadata:\n  name: hostile-corpus\n  description: policy under attack\n",
        "metadata: [a]\n",
        3,
        "metadata",
    ),
    ("name-is-an-int", "name: hostile-corpus", "name: 123", 4, "string"),
    ("rules-is-text", "  rules:\n", "  rules: deny everything\n  old_rules:\n", 13, "rules"),
    ("threshold-is-a-number", "threshold: {max_increase: 0.05, patience: 2}", "threshold: 0.05", 22, "threshold"),
    ("port-is-a-bool", "port: 9464", "port: true", 24, "integer"),
    ("port-is-quoted", "port: 9464", 'port: "9464"', 24, "integer"),
    ("port-is-a-float", "port: 9464", "port: 9464.5", 24, "integer"),
    ("cadence-is-text", "every_n_steps: 50", "every_n_steps: fifty", 18, "integer"),
    ("cadence-is-quoted", "every_n_steps: 50", 'every_n_steps: "50"', 18, "integer"),
    ("trusted-is-quoted-false", "teacher_trusted: false", 'teacher_trusted: "false"', 15, "boolean"),
    ("trusted-is-zero", "teacher_trusted: false", "teacher_trusted: 0", 15, "boolean"),
    ("patience-is-yes", "patience: 2", "patience: yes", 22, "integer"),
    (
        "suites-item-is-a-list",
        "    - use: builtin:animal-preference\n",
        "    - [use, builtin:animal-preference]\n    - use: builtin:animal-preference\n",
        20,
        "suites",
    ),
    ("families-is-a-mapping", "families:\n", "families: {a: b}\nx_families:\n", 6, "families"),
    ("tab-indentation", "  every_n_steps: 50", "\tevery_n_steps: 50", 18, "YAML"),
    ("python-tag", "target: owl", "target: !!python/object/apply:os.system [true]", 21, "tag"),
    ("local-tag", "target: owl", "target: !include other.yaml", 21, "not allowed"),
    ("anchor", "target: owl", "target: &t owl", 21, "anchors"),
    ("merge-key", "  every_n_steps: 50", "  <<: {every_n_steps: 5}", 18, "merge"),
    (
        "unclosed-flow",
        "threshold: {max_increase: 0.05, patience: 2}",
        "threshold: {max_increase: 0.05",
        23,
        "YAML syntax",
    ),
    ("second-document", "metrics:\n", "---\nmetrics:\n", 23, "YAML"),
    ("raw-nul-byte", "target: owl", "target: o\x00wl", 21, "control character"),
    ("raw-escape-byte", "target: owl", "target: o\x1b[2Kwl", 21, "control character"),
]

Invoke = Callable[[Workspace, str, str, int], tuple[list[str], str]]


def register_edits(kind: str, edits: list[tuple[str, str, str, int, str]], invoke: Invoke) -> None:
    """One case per (name, old, new, line, message): `old` replaced by `new` in a valid file."""
    for name, old, new, line, message in edits:

        def build(ws: Workspace, old: str = old, new: str = new, line: int = line) -> tuple[list[str], str]:
            return invoke(ws, old, new, line)

        case(kind, name, 1, message)(build)


register_edits("policy", POLICY_EDITS, lambda ws, old, new, line: validate(ws.policy(old, new), line))


@case("policy", "empty-file", 1, "empty")
def _(ws):
    return validate(ws.policy(text=""), 1)


@case("policy", "whitespace-only", 1, "empty")
def _(ws):
    return validate(ws.policy(text="\n  \n# nothing\n"), 1)


@case("policy", "binary-garbage", 1, "binary")
def _(ws):
    return validate(ws.write("policy.yaml", bytes(range(256)) * 8), 1)


@case("policy", "utf16-file", 1, "UTF-8")
def _(ws):
    return validate(ws.write("policy.yaml", "\ufeffkind: GuardPolicy\n".encode("utf-16")), 1)


@case("policy", "latin1-bytes", 1, "UTF-8")
def _(ws):
    return validate(ws.write("policy.yaml", b"apiVersion: distill-guard/v1\nmetadata: {name: caf\xe9}\n"), 1)


@case("policy", "root-is-a-list", 1, "root must be a mapping")
def _(ws):
    return validate(ws.policy(text="- a\n- b\n"), 1)


@case("policy", "root-is-text", 1, "root must be a mapping")
def _(ws):
    return validate(ws.policy(text="just words\n"), 1)


@case("policy", "fifo", 1, "FIFO")
def _(ws):
    return validate(ws.fifo("policy.yaml"), 1)


@case("policy", "fifo-via-check", 1, "FIFO")
def _(ws):
    return ws.check(policy=ws.fifo("policy.yaml")), f"{ws.root / 'policy.yaml'}:1:1"


@case("policy", "fifo-via-explain", 1, "FIFO")
def _(ws):
    path = ws.fifo("policy.yaml")
    return ["policy", "explain", str(path)], f"{path}:1:1"


@case("policy", "fifo-via-probe", 1, "FIFO")
def _(ws):
    path = ws.fifo("policy.yaml")
    return ["probe", "--model", str(ws.student), "--policy", str(path)], f"{path}:1:1"


@case("policy", "directory", 1, "directory")
def _(ws):
    path = ws.root / "policy.yaml"
    path.mkdir()
    return validate(path, 1)


@case("policy", "permission-denied", 1, "ermission denied", denied=("policy.yaml",))
def _(ws):
    return validate(ws.policy(), 1)


@case("policy", "huge-file", 1, "limit")
def _(ws):
    return validate(ws.policy(text=ws_policy_text() + "#" * (2 * 1024 * 1024) + "\n"), 1)


@case("policy", "symlink-loop", 1, "cannot read")
def _(ws):
    path = ws.root / "policy.yaml"
    path.symlink_to(path)
    return validate(path, 1)


@case("policy", "dangling-symlink", 1, "cannot read")
def _(ws):
    path = ws.root / "policy.yaml"
    path.symlink_to(ws.root / "gone.yaml")
    return validate(path, 1)


@case("policy", "alias-bomb", 1, "aliases")
def _(ws):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
    )
    return validate(ws.policy(text=bomb), 1)


@case("policy", "100k-deep-flow", 1, "nesting")
def _(ws):
    return validate(ws.policy(text="a: " + "[" * 100_000 + "]" * 100_000 + "\n"), 1)


@case("policy", "100k-deep-block", 1, "nesting")
def _(ws):
    return validate(ws.policy(text="".join(" " * i + f"k{i}:\n" for i in range(1000))), 64)


@case("policy", "suite-file-is-a-fifo", 1, "FIFO")
def _(ws):
    ws.fifo("suite.yaml")
    path = ws.policy("- use: builtin:animal-preference\n      target: owl", "- path: suite.yaml")
    return validate(path, 20)


@case("policy", "suite-file-5000-digit-int", 1, "digits")
def _(ws):
    suite = ws.write("suite.yaml", "apiVersion: distill-guard/v1\nkind: ProbeSuite\nversion: " + "9" * 5000 + "\n")
    ws.policy("- use: builtin:animal-preference\n      target: owl", "- path: suite.yaml")
    return validate(ws.root / "policy.yaml")[0], f"{suite}:3:"


@case("policy", "suite-file-binary", 1, "binary")
def _(ws):
    suite = ws.write("suite.yaml", bytes(range(256)))
    ws.policy("- use: builtin:animal-preference\n      target: owl", "- path: suite.yaml")
    return validate(ws.root / "policy.yaml")[0], f"{suite}:1:1"


def ws_policy_text() -> str:
    from .workspace import POLICY

    return POLICY


# ---------------------------------------------------------------- manifests
def verify(path: Path, line: int | None = None) -> tuple[list[str], str]:
    return ["manifest", "verify", str(path)], f"{path}:{line}:" if line else str(path)


MANIFEST_EDITS: list[tuple[str, str, str, int, str]] = [
    ("5000-digit-size", "size: ", "size: 9999" + "9" * 5000 + " #", 6, "digits"),
    ("base-60-size", "size: ", "size: 1:00 #", 6, "base-60"),
    ("octal-records", "records: 3", "records: 03", 8, "octal"),
    ("negative-size", "size: ", "size: -1 #", 6, "size"),
    ("quoted-size", "size: ", 'size: "12" #', 6, "integer"),
    ("float-size", "size: ", "size: 1.0e+400 #", 6, "finite"),
    ("nan-records", "records: 3", "records: .nan", 8, "finite"),
    ("bool-records", "records: 3", "records: yes", 8, "integer"),
    ("bad-sha256", "sha256: ", "sha256: nothex #", 7, "sha256"),
    ("path-dot-dot", "path: numbers.jsonl", "path: ../numbers.jsonl", 5, "inside"),
    ("path-absolute", "path: numbers.jsonl", "path: /etc/passwd", 5, "inside"),
    ("path-backslash", "path: numbers.jsonl", "path: ..\\\\numbers.jsonl", 5, "inside"),
    ("ansi-in-generator", "model: other-lab/teacher-7b", 'model: "other-lab/x\\e[2K\\rALLOWED"', 10, "control"),
    ("bidi-in-generator", "model: other-lab/teacher-7b", "model: other-lab/\u202eteacher", 10, "invisible"),
    ("zero-width-in-base-model", "base_model: other-lab/base", "base_model: other\u200b-lab/base", 11, "invisible"),
    ("lone-surrogate-in-model", "model: other-lab/teacher-7b", 'model: "\\udfff"', 10, "surrogate"),
    (
        "nan-sampling",
        "    base_model: other-lab/base\n",
        "    base_model: other-lab/base\n    sampling: {temperature: .nan}\n",
        12,
        "finite",
    ),
    (
        "no-generators",
        "generators:\n  - model: other-lab/teacher-7b\n    base_model: other-lab/base\n",
        "generators: []\n",
        9,
        "generators",
    ),
    ("wrong-kind", "kind: DatasetProvenance", "kind: GuardPolicy", 2, "kind"),
    (
        "file-listed-twice",
        "generators:",
        "  - {path: numbers.jsonl, size: 1, sha256: '" + "0" * 64 + "'}\ngenerators:",
        4,
        "twice",
    ),
    ("unknown-key", "generators:", "generator_notes: x\ngenerators:", 9, "unknown key"),
    ("signature-garbage", "generators:", "signature: {public_key: abc, value: def}\ngenerators:", 9, "signature"),
    (
        "malformed-date",
        "    base_model: other-lab/base\n",
        "    base_model: other-lab/base\n    date: 2026-13-45\n",
        12,
        "date",
    ),
    (
        "revision-is-int",
        "    base_model: other-lab/base\n",
        "    base_model: other-lab/base\n    revision: 7\n",
        12,
        "string",
    ),
    (
        "duplicate-key",
        "    base_model: other-lab/base\n",
        "    base_model: other-lab/base\n    model: meta-llama/x\n",
        12,
        "duplicate key",
    ),
    ("python-tag", "model: other-lab/teacher-7b", "model: !!python/name:os.system", 10, "tag"),
]

register_edits("manifest", MANIFEST_EDITS, lambda ws, old, new, line: verify(ws.manifest(old, new), line))


@case("manifest", "empty-file", 1, "empty")
def _(ws):
    return verify(ws.write("data/m.yaml", ""), 1)


@case("manifest", "binary-garbage", 1, "binary")
def _(ws):
    return verify(ws.write("data/m.yaml", os.urandom(64) + bytes(range(256))), 1)


@case("manifest", "fifo", 1, "FIFO")
def _(ws):
    return verify(ws.fifo("data/m.yaml"), 1)


@case("manifest", "fifo-via-check", 1, "FIFO")
def _(ws):
    path = ws.fifo("data/m.yaml")
    return ws.check(manifest=path), f"{path}:1:1"


@case("manifest", "fifo-via-sign", 1, "FIFO")
def _(ws):
    path = ws.fifo("data/m.yaml")
    return ["manifest", "sign", str(path), "--key", str(ws.write("key.pem", "x"))], f"{path}:1:1"


@case("manifest", "directory", 1, "directory")
def _(ws):
    path = ws.root / "data" / "m.yaml"
    path.mkdir(parents=True)
    return verify(path, 1)


@case("manifest", "permission-denied", 1, "ermission denied", denied=("data/m.yaml",))
def _(ws):
    return verify(ws.manifest(), 1)


@case("manifest", "huge-file", 1, "limit")
def _(ws):
    return verify(ws.write("data/m.yaml", "#" * (2 * 1024 * 1024)), 1)


@case("manifest", "json-duplicate-keys", 1, "duplicate key")
def _(ws):
    data = json.loads(json.dumps(__import__("yaml").safe_load(ws.manifest().read_text())))
    text = json.dumps(data)[:-1] + ', "kind": "DatasetProvenance"}'
    return verify(ws.write("data/m.json", text), 1)


@case("manifest", "json-lone-surrogate", 1, "surrogate")
def _(ws):
    text = ws.manifest().read_text().replace("model: other-lab/teacher-7b", 'model: "a\\ud834"')
    data = __import__("yaml").safe_load(text.replace('"a\\ud834"', "PLACEHOLDER"))
    raw = json.dumps(data).replace('"PLACEHOLDER"', '"a\\ud834"')
    return verify(ws.write("data/m.json", raw), 1)


@case("manifest", "json-100k-deep", 1, "nesting")
def _(ws):
    return verify(ws.write("data/m.json", deep_json(100_000)), 1)


@case("manifest", "json-5000-digit", 1, "digits")
def _(ws):
    return verify(ws.write("data/m.json", '{"apiVersion": "distill-guard/v1", "n": ' + "7" * 5000 + "}"), 1)


@case("manifest", "data-symlink-leaves-folder", 3, "outside")
def _(ws):
    secret = ws.outside("secret.jsonl", ROWS.encode())
    link = ws.root / "data" / "numbers.jsonl"
    link.parent.mkdir(parents=True)
    link.symlink_to(secret)
    path = ws.manifest(data=link)
    return verify(path)[0], str(link)


@case("manifest", "data-is-a-fifo", 3, "FIFO")
def _(ws):
    path = ws.manifest()
    ws.fifo("data/numbers.jsonl")
    return verify(path)[0], str(ws.root / "data" / "numbers.jsonl")


@case("manifest", "data-is-a-directory", 3, "directory")
def _(ws):
    path = ws.manifest()
    data = ws.root / "data" / "numbers.jsonl"
    data.unlink()
    data.mkdir()
    return verify(path)[0], str(data)


@case("manifest", "data-symlink-via-check", 3, "outside")
def _(ws):
    secret = ws.outside("secret.jsonl", ROWS.encode())
    link = ws.root / "data" / "numbers.jsonl"
    link.parent.mkdir(parents=True)
    link.symlink_to(secret)
    return ws.check(manifest=ws.manifest(data=link)), str(link)


@case("manifest", "ansi-generator-via-check", 1, "control")
def _(ws):
    path = ws.manifest("model: other-lab/teacher-7b", 'model: "\\e[1A\\e[2KALLOWED"')
    return ws.check(manifest=path), f"{path}:10:"


# ---------------------------------------------------------------- in-toto bundles (DSSE envelopes)
BUNDLE_KEY = Ed25519PrivateKey.generate()


def statement(ws: Workspace) -> dict:
    from distill_guard.policy.dataset_manifest import load_manifest

    return load_manifest(ws.manifest()).manifest.to_in_toto()


def envelope_line(payload: dict | bytes, payload_type: str = "application/vnd.in-toto+json") -> str:
    """A DSSE envelope signed with a real key, as any securesystemslib user would write it."""
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import CryptoSigner

    envelope = Envelope(payload if isinstance(payload, bytes) else json.dumps(payload).encode(), payload_type, {})
    envelope.sign(CryptoSigner(BUNDLE_KEY))
    return json.dumps(envelope.to_dict()) + "\n"


def bundle(ws: Workspace, *lines: str) -> Path:
    return ws.write("data/m.intoto.jsonl", "".join(lines))


def signed_policy(ws: Workspace) -> Path:
    """The corpus policy trusting BUNDLE_KEY and requiring a signature."""
    from distill_guard.provenance.signing import public_key_b64

    public = public_key_b64(BUNDLE_KEY.public_key())
    signer = f'  require_signature: true\n  trusted_signers: [{{name: t, public_key: "{public}"}}]\n'
    return ws.policy("  unknown: deny\n", "  unknown: deny\n" + signer)


@case("manifest", "bundle-empty", 1, "empty")
def _(ws):
    return verify(bundle(ws, "\n\n"), 1)


@case("manifest", "bundle-binary-garbage", 1, "UTF-8")
def _(ws):
    return verify(ws.write("data/m.intoto.jsonl", b"\xff\xfe\x00garbage"), 1)


@case("manifest", "bundle-fifo", 1, "FIFO")
def _(ws):
    return verify(ws.fifo("data/m.intoto.jsonl"), 1)


@case("manifest", "bundle-huge", 1, "limit")
def _(ws):
    return verify(bundle(ws, "#" * (3 * 1024 * 1024)), 1)


@case("manifest", "bundle-payload-type-swap", 1, "payloadType")
def _(ws):
    return verify(bundle(ws, envelope_line(statement(ws), "application/json")), 1)


@case("manifest", "bundle-payload-not-base64", 1, "not a DSSE envelope")
def _(ws):
    line = json.loads(envelope_line(statement(ws)))
    line["payload"] = "%%%not-base64"
    return verify(bundle(ws, json.dumps(line)), 1)


@case("manifest", "bundle-payload-not-utf8", 1, "UTF-8")
def _(ws):
    return verify(bundle(ws, envelope_line(b"\xff\xfe{}")), 1)


@case("manifest", "bundle-payload-duplicate-key", 1, "duplicate key")
def _(ws):
    text = json.dumps(statement(ws))[:-1] + ', "predicateType": "x"}'
    return verify(bundle(ws, envelope_line(text.encode())), 1)


@case("manifest", "bundle-payload-100k-deep", 1, "nesting")
def _(ws):
    return verify(bundle(ws, envelope_line(deep_json(100_000).encode())), 1)


@case("manifest", "bundle-not-a-statement", 1, "_type")
def _(ws):
    return verify(bundle(ws, envelope_line({"predicateType": "https://distill-guard.dev/DatasetProvenance/v1"})), 1)


@case("manifest", "bundle-no-envelope-of-ours", 1, "predicateType")
def _(ws):
    other = statement(ws) | {"predicateType": "https://slsa.dev/provenance/v1"}
    return verify(bundle(ws, envelope_line(other)), 1)


@case("manifest", "bundle-subject-digest-not-the-files", 1, "subjects")
def _(ws):
    body = statement(ws)
    body["subject"][0]["digest"]["sha256"] = "0" * 64
    return verify(bundle(ws, envelope_line(body)), 1)


@case("manifest", "bundle-unchecked-digest-algorithm", 1, "sha512")
def _(ws):
    body = statement(ws)
    body["subject"][0]["digest"]["sha512"] = "0" * 128
    return verify(bundle(ws, envelope_line(body)), 1)


@case("manifest", "bundle-no-signatures", 1, "signatures")
def _(ws):
    line = json.loads(envelope_line(statement(ws)))
    line["signatures"] = []
    return verify(bundle(ws, json.dumps(line)), 1)


@case("manifest", "bundle-second-manifest", 1, "second")
def _(ws):
    line = envelope_line(statement(ws))
    return verify(bundle(ws, line, line), 2)


@case("manifest", "bundle-ansi-generator-via-check", 1, "control")
def _(ws):
    body = statement(ws)
    body["predicate"]["generators"][0]["model"] = "\x1b[1A\x1b[2KALLOWED"
    path = bundle(ws, envelope_line(body))
    return ws.check(manifest=path), f"{path}:1:"


@case("manifest", "bundle-signature-over-another-statement", 3, "does not verify")
def _(ws):
    line = json.loads(envelope_line(statement(ws)))
    body = statement(ws)
    body["predicate"]["generators"][0]["base_model"] = "other-lab/another-base"
    line["payload"] = base64.b64encode(json.dumps(body).encode()).decode()
    path = bundle(ws, json.dumps(line))
    return ["manifest", "verify", str(path), "--policy", str(signed_policy(ws))], str(path)


@case("manifest", "bundle-untrusted-key-via-check", 3, "not checked")
def _(ws):
    path = bundle(ws, envelope_line(statement(ws)))
    return ws.check(manifest=path), str(path)


# ---------------------------------------------------------------- data files, through check and create
def create(ws: Workspace, *extra: str, files: list[Path] | None = None, out: Path | None = None) -> list[str]:
    out = out or ws.root / "data" / "new.yaml"
    names = [str(f) for f in files] if files is not None else [str(ws.data())]
    args = ["manifest", "create", *names, "--out", str(out), "--name", "n", "--version", "1"]
    return [*args, "--generator", "other-lab/teacher-7b", *extra]


DATA_CONTENTS: list[tuple[str, bytes, str]] = [
    ("binary-jsonl", bytes(range(256)) * 4, "cannot read"),
    ("provenance-is-a-number", b'{"text": "a", "provenance": 7}\n', "provenance"),
    ("provenance-is-an-object", b'{"text": "a", "provenance": {"x": 1}}\n', "provenance"),
    ("ansi-in-provenance", b'{"text": "a", "provenance": "other-lab/x\\u001b[2K"}\n', "control"),
    ("bidi-in-provenance", b'{"text": "a", "provenance": "other-lab/\\u202ex"}\n', "invisible"),
    ("zero-width-in-provenance", b'{"text": "a", "provenance": "other-lab/\\u200bteacher-7b"}\n', "invisible"),
    ("truncated-line", b'{"text": "a", "provenance": "other-lab/teacher-7b"}\n{"text": "b", "prov', "cannot read"),
    ("latin1-provenance", b'{"text": "a", "provenance": "other-lab/teacher-7b\xe9"}\n', "UTF-8"),
    ("top-level-array", b"[1, 2, 3]\n", "cannot read"),
]

for _name, _content, _message in DATA_CONTENTS:

    def _build_data(ws: Workspace, content: bytes = _content) -> tuple[list[str], str]:
        data = ws.data(content)
        return ws.check(manifest=ws.manifest(data=data)), str(data)

    case("data", _name, 1, _message)(_build_data)


@case("data", "corrupt-parquet", 1, "cannot read")
def _(ws):
    data = ws.data(b"PAR1" + os.urandom(100) + b"PAR1", name="numbers.parquet")
    return ws.check(manifest=ws.manifest(data=data)), str(data)


@case("data", "parquet-int-provenance", 1, "provenance")
def _(ws):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = ws.root / "data" / "numbers.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.table({"text": ["a"], "provenance": [7]}), path)
    return ws.check(manifest=ws.manifest(data=path)), str(path)


@case("data", "create-from-fifo", 1, "FIFO")
def _(ws):
    fifo = ws.fifo("data/numbers.jsonl")
    return create(ws, files=[fifo]), str(fifo)


@case("data", "create-from-directory", 1, "directory")
def _(ws):
    folder = ws.root / "data" / "numbers.jsonl"
    folder.mkdir(parents=True)
    return create(ws, files=[folder]), str(folder)


@case("data", "create-from-symlink-outside", 1, "outside")
def _(ws):
    secret = ws.outside("secret.jsonl", ROWS.encode())
    link = ws.root / "data" / "numbers.jsonl"
    link.parent.mkdir(parents=True)
    link.symlink_to(secret)
    return create(ws, files=[link]), str(link)


@case("data", "create-out-is-a-directory", 1, "directory")
def _(ws):
    out = ws.root / "data" / "new.yaml"
    out.mkdir(parents=True)
    return create(ws, out=out), str(out)


@case("data", "create-out-under-a-file", 1, "new.yaml")
def _(ws):
    ws.write("data/blocker", "x")
    out = ws.root / "data" / "blocker" / "new.yaml"
    return create(ws, out=out), str(out)


@case("data", "create-system-prompt-fifo", 1, "FIFO")
def _(ws):
    fifo = ws.fifo("prompt.txt")
    return create(ws, "--system-prompt", str(fifo)), str(fifo)


@case("data", "create-system-prompt-missing", 1, "cannot read")
def _(ws):
    return create(ws, "--system-prompt", str(ws.root / "nope.txt")), str(ws.root / "nope.txt")


@case("data", "create-system-prompt-directory", 1, "directory")
def _(ws):
    return create(ws, "--system-prompt", str(ws.root)), str(ws.root)


@case("data", "create-ansi-generator", 1, "control")
def _(ws):
    args = create(ws)
    args[args.index("other-lab/teacher-7b")] = "other-lab/x\x1b[2KALLOWED"
    return args, "--generator"


@case("data", "create-bidi-generator", 1, "invisible")
def _(ws):
    args = create(ws)
    args[args.index("other-lab/teacher-7b")] = "other-lab/\u202eteacher"
    return args, "--generator"


@case("data", "create-nan-sampling", 2, "finite")
def _(ws):
    return create(ws, "--sampling", "temperature=NaN"), "--sampling"


@case("data", "create-inf-sampling", 2, "finite")
def _(ws):
    return create(ws, "--sampling", "temperature=Infinity"), "--sampling"


# ---------------------------------------------------------------- keys
def sign(ws: Workspace, key: Path, *extra: str) -> list[str]:
    return ["manifest", "sign", str(ws.manifest()), "--key", str(key), *extra]


@case("key", "keygen-under-a-file", 1, "key.pem")
def _(ws):
    ws.write("blocker", "x")
    path = ws.root / "blocker" / "key.pem"
    return ["manifest", "keygen", str(path)], str(path)


@case("key", "keygen-over-a-directory", 1, "already exists")
def _(ws):
    return ["manifest", "keygen", str(ws.root)], str(ws.root)


@case("key", "keygen-over-a-fifo", 1, "already exists")
def _(ws):
    fifo = ws.fifo("key.pem")
    return ["manifest", "keygen", str(fifo)], str(fifo)


@case("key", "keygen-over-dangling-symlink", 1, "already exists")
def _(ws):
    path = ws.root / "key.pem"
    path.symlink_to(ws.root / "elsewhere.pem")
    return ["manifest", "keygen", str(path)], str(path)


@case("key", "sign-key-fifo", 1, "FIFO")
def _(ws):
    fifo = ws.fifo("key.pem")
    return sign(ws, fifo), str(fifo)


@case("key", "sign-key-directory", 1, "directory")
def _(ws):
    return sign(ws, ws.root), str(ws.root)


@case("key", "sign-key-missing", 1, "cannot read")
def _(ws):
    return sign(ws, ws.root / "nope.pem"), str(ws.root / "nope.pem")


@case("key", "sign-key-garbage", 1, "PEM")
def _(ws):
    key = ws.write("key.pem", os.urandom(300))
    return sign(ws, key), str(key)


@case("key", "sign-key-empty", 1, "PEM")
def _(ws):
    key = ws.write("key.pem", b"")
    return sign(ws, key), str(key)


@case("key", "sign-key-huge", 1, "limit")
def _(ws):
    key = ws.write("key.pem", b"-----BEGIN PRIVATE KEY-----\n" + b"A" * (2 * 1024 * 1024))
    return sign(ws, key), str(key)


@case("key", "sign-key-not-ed25519", 1, "Ed25519")
def _(ws):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key = ws.write("key.pem", pem)
    return sign(ws, key), str(key)


@case("key", "sign-key-encrypted", 1, "PEM")
def _(ws):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    )
    key = ws.write("key.pem", pem)
    return sign(ws, key), str(key)


@case("key", "sign-key-is-public", 1, "PEM")
def _(ws):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    key = ws.write("key.pem", pem)
    return sign(ws, key), str(key)


@case("key", "sign-key-permission-denied", 1, "ermission denied", denied=("key.pem",))
def _(ws):
    key = ws.root / "key.pem"
    ws_keygen(key)
    return sign(ws, key), str(key)


def sign_into_a_directory(ws: Workspace, option: str, name: str) -> tuple[list[str], str]:
    key = ws.root / "key.pem"
    ws_keygen(key)
    out = ws.root / name
    out.mkdir()
    return sign(ws, key, option, str(out)), str(out)


@case("key", "sign-out-is-a-directory", 1, "directory")
def _(ws):
    return sign_into_a_directory(ws, "--out", "signed.yaml")


@case("key", "sign-out-under-a-file", 1, "signed.yaml")
def _(ws):
    key = ws.root / "key.pem"
    ws_keygen(key)
    ws.write("blocker", "x")
    out = ws.root / "blocker" / "signed.yaml"
    return sign(ws, key, "--out", str(out)), str(out)


def sign_over(ws: Workspace, option: str, target: Path | None) -> tuple[list[str], str]:
    """Sign with a fresh key, writing the output over `target` (None: over the key itself)."""
    key = ws.root / "key.pem"
    ws_keygen(key)
    target = target or key
    return sign(ws, key, option, str(target)), str(target)


@case("key", "sign-in-toto-onto-the-data-file", 1, "the data file numbers.jsonl it lists")
def _(ws):
    return sign_over(ws, "--in-toto", ws.root / "data" / "numbers.jsonl")


@case("key", "sign-out-onto-the-private-key", 1, "the private key")
def _(ws):
    return sign_over(ws, "--out", None)


@case("key", "sign-in-toto-is-a-directory", 1, "directory")
def _(ws):
    return sign_into_a_directory(ws, "--in-toto", "signed.intoto.jsonl")


def ws_keygen(path: Path) -> None:
    from distill_guard.provenance.signing import generate_key

    generate_key(path)


# ---------------------------------------------------------------- audit logs
@case("audit", "audit-log-is-a-directory", 1, "directory")
def _(ws):
    return ws.check(extra=("--audit-log", str(ws.root))), str(ws.root)


@case("audit", "audit-log-under-a-file", 1, "audit.jsonl")
def _(ws):
    ws.write("blocker", "x")
    path = ws.root / "blocker" / "audit.jsonl"
    return ws.check(extra=("--audit-log", str(path))), str(path)


@case("audit", "audit-log-full-disk", 1, "/dev/full")
def _(ws):
    return ws.check(extra=("--audit-log", "/dev/full")), "/dev/full"


@case("audit", "audit-log-fifo", 1, "FIFO")
def _(ws):
    fifo = ws.fifo("audit.jsonl")
    return ws.check(extra=("--audit-log", str(fifo))), str(fifo)


REPORT_LINE = '{"event": "probes", "run_id": "r", "step": 2, "reports": []}'
AUDIT_LINES: list[tuple[str, str, str]] = [
    # (name, the audit log's first line, message after FILE:1), read by `distill-guard report`
    ("report-nested-too-deeply", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("report-value-nested-too-deeply", '{"event": "probes", "a": ' + deep_json(100_000) + "}", "nested too deeply"),
    ("report-5000-digit-step", REPORT_LINE.replace('"step": 2', '"step": ' + "9" * 5000), "digits"),
    ("report-nan-drift", REPORT_LINE.replace("[]", '[{"probe": "p", "step": 2, "drift": NaN}]'), "NaN is not JSON"),
    ("report-infinity-limit", REPORT_LINE.replace("[]", '[{"probe": "p", "step": 2, "limit": -Infinity}]'), "JSON"),
    ("report-policy-is-an-object", REPORT_LINE.replace("{", '{"policy": {"name": "x"}, ', 1), "'policy' must be a str"),
    ("report-policy-sha-is-a-number", REPORT_LINE.replace("{", '{"policy_sha256": 5, ', 1), "'policy_sha256'"),
]


def report_of(ws: Workspace, first_line: str) -> tuple[list[str], str]:
    log = ws.write("run/guard-audit.jsonl", first_line + "\n" + REPORT_LINE + "\n")
    return ["report", str(log.parent), "--out", str(ws.root / "report")], f"{log}:1"


for _name, _line, _message in AUDIT_LINES:
    case("audit", _name, 1, _message)(lambda ws, line=_line: report_of(ws, line))


# ---------------------------------------------------------------- checkpoint folders
def as_teacher(ws: Workspace, relative: str) -> tuple[list[str], str]:
    return ws.check(teacher=ws.teacher), str(ws.teacher / relative)


def as_student(ws: Workspace, relative: str) -> tuple[list[str], str]:
    return ws.check(), str(ws.student / relative)


def _tensor_header(ws: Workspace) -> tuple[dict, bytes]:
    raw = (ws.tiny / "model.safetensors").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def index_for(ws: Workspace, folder: Path, shard: str) -> None:
    header, _ = _tensor_header(ws)
    weight_map = {name: shard for name in header if name != "__metadata__"}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


FILE_CONTENTS: list[tuple[str, str, Callable[[Workspace], bytes | str], str]] = [
    # (name, file in the checkpoint, content, message)
    ("config-100k-deep", "config.json", lambda ws: deep_json(100_000), "nesting"),
    ("config-binary", "config.json", lambda ws: os.urandom(200), "JSON"),
    ("config-is-a-list", "config.json", lambda ws: "[1, 2]", "object"),
    ("config-lone-surrogate", "config.json", lambda ws: '{"model_type": "\\ud800"}', "surrogate"),
    ("config-huge", "config.json", lambda ws: '{"pad": "' + "x" * (20 * 1024 * 1024) + '"}', "limit"),
    (
        "config-string-hidden-size",
        "config.json",
        lambda ws: '{"model_type": "llama", "hidden_size": "64"}',
        "hidden_size",
    ),
    (
        "config-5000-digit",
        "config.json",
        lambda ws: '{"model_type": "llama", "hidden_size": ' + "9" * 5000 + "}",
        "digits",
    ),
    ("config-nan", "config.json", lambda ws: '{"model_type": "llama", "hidden_size": NaN}', "NaN"),
    (
        "config-duplicate-key",
        "config.json",
        lambda ws: '{"model_type": "llama", "model_type": "mistral"}',
        "duplicate key",
    ),
    ("config-empty", "config.json", lambda ws: "", "JSON"),
    ("config-ansi-model-type", "config.json", lambda ws: '{"model_type": "llama\\u001b[2K"}', "control"),
    (
        "tokenizer-lone-surrogate",
        "tokenizer.json",
        lambda ws: '{"model": {"vocab": {"\\ud800": 0, "a": 1}}}',
        "surrogate",
    ),
    ("tokenizer-100k-deep", "tokenizer.json", lambda ws: deep_json(100_000), "nesting"),
    ("tokenizer-binary", "tokenizer.json", lambda ws: bytes(range(256)), "JSON"),
    ("tokenizer-vocab-is-text", "tokenizer.json", lambda ws: '{"model": {"vocab": "abc"}}', "vocab"),
    (
        "card-100k-deep",
        "README.md",
        lambda ws: "---\nbase_model: " + "[" * 30_000 + "]" * 30_000 + "\n---\n",
        "nesting",
    ),
    ("card-alias-bomb", "README.md", lambda ws: "---\na: &a [x, x]\nbase_model: *a\n---\n", "aliases"),
    (
        "card-python-tag",
        "README.md",
        lambda ws: "---\nbase_model: !!python/object/apply:os.system [true]\n---\n",
        "tag",
    ),
    ("card-ansi-base-model", "README.md", lambda ws: '---\nbase_model: "x\\e[2K"\n---\n', "control"),
    (
        "card-unterminated",
        "README.md",
        lambda ws: "---\nbase_model: other-lab/base\n" + "x: y\n" * 20_000,
        "front matter",
    ),
    ("card-binary-front-matter", "README.md", lambda ws: b"---\nbase_model: \xff\xfe\n---\n", "UTF-8"),
    (
        "card-duplicate-base-model",
        "README.md",
        lambda ws: "---\nbase_model: other-lab/a\nbase_model: distill-guard/tiny-base\n---\n",
        "duplicate key",
    ),
    (  # the Hub reads front matter after leading blank lines; so must the check
        "card-duplicate-after-blank-line",
        "README.md",
        lambda ws: "\n---\nbase_model: other-lab/a\nbase_model: distill-guard/tiny-base\n---\n",
        "duplicate key",
    ),
    # huggingface_hub passes the front matter's keys as keyword arguments: a non-string key was a TypeError
    ("card-null-key", "README.md", lambda ws: "---\n~: x\nbase_model: other-lab/a\n---\n", "key"),
    ("card-integer-key", "README.md", lambda ws: "---\nbase_model: other-lab/a\n1: x\n---\n", "key"),
    ("card-boolean-key", "README.md", lambda ws: "---\nbase_model: other-lab/a\ntrue: x\n---\n", "key"),
    ("adapter-config-garbage", "adapter_config.json", lambda ws: os.urandom(64), "JSON"),
    (
        "adapter-config-base-is-int",
        "adapter_config.json",
        lambda ws: '{"base_model_name_or_path": 7}',
        "base_model_name_or_path",
    ),
    ("safetensors-random-bytes", "model.safetensors", lambda ws: os.urandom(4096), "safetensors"),
    ("safetensors-empty", "model.safetensors", lambda ws: b"", "safetensors"),
    (
        "safetensors-header-2-to-63",
        "model.safetensors",
        lambda ws: safetensors_bytes(b"{}", length=2**63),
        "safetensors",
    ),
    (
        "safetensors-header-not-json",
        "model.safetensors",
        lambda ws: safetensors_bytes(b"not json at all"),
        "safetensors",
    ),
    (
        "safetensors-header-100k-deep",
        "model.safetensors",
        lambda ws: safetensors_bytes(deep_json(100_000).encode()),
        "safetensors",
    ),
    (
        "safetensors-offsets-past-end",
        "model.safetensors",
        lambda ws: safetensors_bytes(
            {"w": {"dtype": "F32", "shape": [64, 64], "data_offsets": [0, 16384]}}, b"\0" * 16
        ),
        "safetensors",
    ),
    (
        "safetensors-bad-dtype",
        "model.safetensors",
        lambda ws: safetensors_bytes({"w": {"dtype": "EVIL", "shape": [2, 2], "data_offsets": [0, 16]}}, b"\0" * 16),
        "safetensors",
    ),
    (
        "safetensors-shape-overflow",
        "model.safetensors",
        lambda ws: safetensors_bytes(
            {"w": {"dtype": "F32", "shape": [2**62, 2**62], "data_offsets": [0, 16]}}, b"\0" * 16
        ),
        "safetensors",
    ),
    (
        "safetensors-truncated",
        "model.safetensors",
        lambda ws: (ws.tiny / "model.safetensors").read_bytes()[:50_000],
        "safetensors",
    ),
    ("index-not-json", "model.safetensors.index.json", lambda ws: "{weight_map", "JSON"),
    ("index-is-a-list", "model.safetensors.index.json", lambda ws: "[]", "object"),
    (
        "index-weight-map-is-a-list",
        "model.safetensors.index.json",
        lambda ws: '{"weight_map": ["model.safetensors"]}',
        "weight_map",
    ),
    ("index-shard-is-an-int", "model.safetensors.index.json", lambda ws: '{"weight_map": {"w": 7}}', "weight_map"),
    ("index-100k-deep", "model.safetensors.index.json", lambda ws: deep_json(100_000), "nesting"),
    (
        "index-duplicate-key",
        "model.safetensors.index.json",
        lambda ws: '{"weight_map": {}, "weight_map": {"w": "model.safetensors"}}',
        "duplicate key",
    ),
    (
        "index-shard-absolute",
        "model.safetensors.index.json",
        lambda ws: '{"weight_map": {"w": "/etc/passwd"}}',
        "outside",
    ),
    (
        "index-shard-dot-dot",
        "model.safetensors.index.json",
        lambda ws: '{"weight_map": {"w": "../teacher/model.safetensors"}}',
        "outside",
    ),
    (
        "index-shard-missing",
        "model.safetensors.index.json",
        lambda ws: '{"weight_map": {"w": "model-00001-of-00002.safetensors"}}',
        "model-00001-of-00002.safetensors",
    ),
    ("bin-garbage-only", "pytorch_model.bin", lambda ws: os.urandom(512), "pytorch_model.bin"),
]


def _with_file(role: str, file: str, content: Callable[[Workspace], bytes | str]) -> Build:
    """A copy of the tiny checkpoint as `role` (student or teacher) with `file` replaced by `content`."""

    def build(ws: Workspace) -> tuple[list[str], str]:
        folder = ws.checkpoint(role)
        if file == "pytorch_model.bin":
            (folder / "model.safetensors").unlink()
        payload = content(ws)
        (folder / file).write_bytes(payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload)
        return (as_teacher if role == "teacher" else as_student)(ws, file)

    return build


for _name, _file, _content, _message in FILE_CONTENTS:
    case("checkpoint", f"teacher-{_name}", 1, _message)(_with_file("teacher", _file, _content))
for _name, _file, _content, _message in FILE_CONTENTS[::3]:
    case("checkpoint", f"student-{_name}", 1, _message)(_with_file("student", _file, _content))


for _file in ("config.json", "tokenizer.json", "README.md", "model.safetensors", "model.safetensors.index.json"):

    def _build_fifo(ws: Workspace, file: str = _file) -> tuple[list[str], str]:
        (ws.teacher / file).unlink(missing_ok=True)
        ws.fifo(f"teacher/{file}")
        return as_teacher(ws, file)

    case("checkpoint", f"teacher-{_file}-fifo", 1, "FIFO")(_build_fifo)

    def _build_dir(ws: Workspace, file: str = _file) -> tuple[list[str], str]:
        (ws.teacher / file).unlink(missing_ok=True)
        (ws.teacher / file).mkdir()
        return as_teacher(ws, file)

    case("checkpoint", f"teacher-{_file}-directory", 1, "directory")(_build_dir)

    def _build_link(ws: Workspace, file: str = _file) -> tuple[list[str], str]:
        real = ws.teacher / file
        outside = ws.outside(f"elsewhere/{file}", real.read_bytes() if real.is_file() else b"{}")
        real.unlink(missing_ok=True)
        real.symlink_to(outside)
        return as_teacher(ws, file)

    case("checkpoint", f"teacher-{_file}-symlink-outside", 1, "outside")(_build_link)


@case("checkpoint", "student-config-fifo", 1, "FIFO")
def _(ws):
    (ws.student / "config.json").unlink()
    ws.fifo("student/config.json")
    return as_student(ws, "config.json")


@case("checkpoint", "teacher-config-permission-denied", 1, "ermission denied", denied=("teacher/config.json",))
def _(ws):
    return as_teacher(ws, "config.json")


@case(
    "checkpoint", "teacher-safetensors-permission-denied", 1, "ermission denied", denied=("teacher/model.safetensors",)
)
def _(ws):
    return as_teacher(ws, "model.safetensors")


@case("checkpoint", "teacher-no-weights-at-all", 1, "no weight")
def _(ws):
    (ws.teacher / "model.safetensors").unlink()
    return ws.check(teacher=ws.teacher), str(ws.teacher)


@case("checkpoint", "teacher-index-shard-symlink-outside", 1, "outside")
def _(ws):
    folder = ws.teacher
    outside = ws.outside("elsewhere/shard.safetensors", (folder / "model.safetensors").read_bytes())
    (folder / "model.safetensors").unlink()
    (folder / "model-00001-of-00001.safetensors").symlink_to(outside)
    index_for(ws, folder, "model-00001-of-00001.safetensors")
    return as_teacher(ws, "model-00001-of-00001.safetensors")


@case("checkpoint", "teacher-index-shard-in-sibling-folder", 1, "outside")
def _(ws):
    folder = ws.teacher
    ws.student  # noqa: B018 (the sibling the shard points into)
    (folder / "model.safetensors").unlink()
    index_for(ws, folder, "../student/model.safetensors")
    return as_teacher(ws, "model.safetensors.index.json")


@case("checkpoint", "teacher-bin-fifo", 1, "FIFO")
def _(ws):
    (ws.teacher / "model.safetensors").unlink()
    ws.fifo("teacher/pytorch_model.bin")
    return as_teacher(ws, "pytorch_model.bin")


@case("checkpoint", "probe-model-config-fifo", 1, "FIFO")
def _(ws):
    (ws.student / "config.json").unlink()
    ws.fifo("student/config.json")
    args = ["probe", "--model", str(ws.student), "--suite", "builtin:animal-preference"]
    return args, str(ws.student / "config.json")


@case("checkpoint", "probe-model-config-100k-deep", 1, "nesting")
def _(ws):
    (ws.student / "config.json").write_text(deep_json(100_000))
    args = ["probe", "--model", str(ws.student), "--suite", "builtin:animal-preference"]
    return args, str(ws.student / "config.json")


@case("checkpoint", "probe-model-safetensors-garbage", 1, "safetensors")
def _(ws):
    (ws.student / "model.safetensors").write_bytes(os.urandom(1000))
    args = ["probe", "--model", str(ws.student), "--suite", "builtin:animal-preference"]
    return args, str(ws.student / "model.safetensors")


@case("checkpoint", "probe-model-tokenizer-surrogate", 1, "surrogate")
def _(ws):
    (ws.student / "tokenizer.json").write_text('{"model": {"vocab": {"\\udc00": 0}}}')
    args = ["probe", "--model", str(ws.student), "--suite", "builtin:animal-preference"]
    return args, str(ws.student / "tokenizer.json")


assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"
_ = MANIFEST
