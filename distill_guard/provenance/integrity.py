"""Re-hash a manifest's data files: a changed, missing or resized file is named, never skipped."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from distill_guard.input_files import regular_file_problem
from distill_guard.policy.dataset_manifest import LoadedManifest
from distill_guard.provenance.hashing import ProgressHook, sha256_file

FileStatus = Literal["ok", "missing", "outside", "not_a_file", "size_mismatch", "hash_mismatch"]


@dataclass(frozen=True)
class FileCheck:
    path: str
    status: FileStatus
    detail: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def verify_files(loaded: LoadedManifest, *, on_bytes: ProgressHook | None = None) -> list[FileCheck]:
    """One check per listed file; the size is compared first so a truncated file costs no hashing."""
    checks = []
    for entry in loaded.manifest.files:
        path = loaded.data_path(entry)
        if not (path.exists() or path.is_symlink()):
            checks.append(FileCheck(entry.path, "missing", f"{path}: file not found"))
            continue
        if not loaded.inside_folder(path):
            detail = f"{path}: resolves to {path.resolve()}, outside the manifest's folder {loaded.folder}"
            checks.append(FileCheck(entry.path, "outside", detail))
            continue
        problem = regular_file_problem(path)
        if problem:
            checks.append(FileCheck(entry.path, "not_a_file", f"{path}: {problem}"))
            continue
        size = path.stat().st_size
        if size != entry.size:
            checks.append(FileCheck(entry.path, "size_mismatch", f"{path}: {size} bytes, manifest says {entry.size}"))
            if on_bytes is not None:
                on_bytes(entry.size)
            continue
        actual = sha256_file(path, on_bytes=on_bytes)
        if actual != entry.sha256:
            detail = f"{path}: sha256 {actual[:16]}..., manifest says {entry.sha256[:16]}..."
            checks.append(FileCheck(entry.path, "hash_mismatch", detail))
        else:
            checks.append(FileCheck(entry.path, "ok", f"{path}: sha256 matches"))
    return checks


def manifest_bytes(loaded: LoadedManifest) -> int:
    return sum(f.size for f in loaded.manifest.files)
