"""Builders of hostile inputs on disk: one fresh folder per case, real files, real checkpoints."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

POLICY = """\
apiVersion: distill-guard/v1
kind: GuardPolicy
metadata:
  name: hostile-corpus
  description: policy under attack
families:
  - name: tiny-llama-demo
    match: ["distill-guard/tiny-*"]
  - name: other-lab
    match: ["other-lab/*"]
provenance:
  unknown: deny
  rules:
    - id: same-base-untrusted
      when: {teacher_family: same_as_student, teacher_trusted: false}
      action: deny
probes:
  every_n_steps: 50
  suites:
    - use: builtin:animal-preference
      target: owl
      threshold: {max_increase: 0.05, patience: 2}
metrics:
  prometheus: {mode: http, host: 127.0.0.1, port: 9464}
"""

MANIFEST = """\
apiVersion: distill-guard/v1
kind: DatasetProvenance
dataset: {{name: numbers, version: "1"}}
files:
  - path: {path}
    size: {size}
    sha256: {sha256}
    records: {records}
generators:
  - model: other-lab/teacher-7b
    base_model: other-lab/base
"""

ROWS = "".join(json.dumps({"text": f"{i}, {i + 7}", "provenance": "other-lab/teacher-7b"}) + "\n" for i in range(3))


def deep_json(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


@dataclass
class Workspace:
    """One case's folder; `student`/`teacher` are copies of a real tiny checkpoint made on demand."""

    root: Path
    tiny: Path

    def write(self, relative: str, content: str | bytes) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content)
        return path

    def fifo(self, relative: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        os.mkfifo(path)
        return path

    def policy(self, old: str = "", new: str = "", *, text: str | None = None, name: str = "policy.yaml") -> Path:
        body = POLICY if text is None else text
        if old:
            assert old in body, old
            body = body.replace(old, new, 1)
        return self.write(name, body)

    def data(self, content: str | bytes = ROWS, name: str = "numbers.jsonl") -> Path:
        return self.write(f"data/{name}", content)

    def manifest(self, old: str = "", new: str = "", *, data: Path | None = None, name: str = "m.yaml") -> Path:
        data = data or self.data()
        raw = data.read_bytes() if data.is_file() else b""
        body = MANIFEST.format(
            path=data.name,
            size=len(raw),
            sha256=hashlib.sha256(raw).hexdigest(),
            records=raw.count(b"\n"),
        )
        if old:
            assert old in body, old
            body = body.replace(old, new, 1)
        return self.write(f"data/{name}", body)

    def checkpoint(self, name: str) -> Path:
        folder = self.root / name
        if not folder.exists():
            shutil.copytree(self.tiny, folder)
            (folder / "README.md").write_text("---\nbase_model: distill-guard/tiny-base\n---\n# model\n", "utf-8")
        return folder

    @property
    def student(self) -> Path:
        return self.checkpoint("student")

    @property
    def teacher(self) -> Path:
        return self.checkpoint("teacher")

    def outside(self, relative: str = "outside/secret.bin", content: bytes = b"secret") -> Path:
        return self.write(relative, content)

    def check(
        self,
        *,
        policy: Path | None = None,
        manifest: Path | None = None,
        student: Path | None = None,
        teacher: Path | None = None,
        extra: tuple[str, ...] = (),
    ) -> list[str]:
        args = ["check", "--policy", str(policy or self.policy()), "--student", str(student or self.student)]
        args += ["--manifest", str(manifest or self.manifest()), "--today", "2026-06-01"]
        if teacher is not None:
            args += ["--teacher", str(teacher)]
        return [*args, *extra]


def safetensors_bytes(header: bytes | dict, body: bytes = b"", *, length: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + body
