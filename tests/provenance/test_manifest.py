"""Manifests: round trip in YAML and JSON, located errors, paths kept inside, no half-written files."""

from __future__ import annotations

import os

import pytest

from distill_guard.errors import PolicyError
from distill_guard.policy.dataset_manifest import load_manifest, save_manifest


def test_yaml_and_json_manifests_load_to_the_same_content(make_manifest, data_file, tmp_path):
    yaml_path = make_manifest([data_file])
    manifest = load_manifest(yaml_path).manifest
    json_path = save_manifest(manifest, tmp_path / "data" / "copy.json")
    assert load_manifest(json_path).manifest == manifest
    assert manifest.files[0].path == "numbers.jsonl" and manifest.files[0].records == 40


def test_invalid_manifest_is_reported_at_file_line_column(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "kind: DatasetProvenance\ndataset: {name: d, version: '1'}\nfiles:\n"
        "  - {path: a.jsonl, size: 3, sha256: abc}\ngenerators: [{model: m}]\n",
        "utf-8",
    )
    with pytest.raises(PolicyError) as caught:
        load_manifest(path)
    assert (caught.value.line, caught.value.column) == (4, 30)
    assert str(caught.value).startswith(f"{path}:4:30: files[0].sha256")


@pytest.mark.parametrize("escape", ["../secrets.jsonl", "/etc/passwd", "a\\b.jsonl"])
def test_data_paths_must_stay_inside_the_manifest_folder(tmp_path, escape):
    path = tmp_path / "m.yaml"
    path.write_text(
        f"kind: DatasetProvenance\ndataset: {{name: d, version: '1'}}\nfiles:\n"
        f"  - {{path: '{escape}', size: 3, sha256: '{'0' * 64}'}}\ngenerators: [{{model: m}}]\n",
        "utf-8",
    )
    with pytest.raises(PolicyError, match="relative POSIX path"):
        load_manifest(path)


def test_a_failed_write_leaves_the_old_manifest_and_no_temp_file(make_manifest, data_file, monkeypatch):
    path = make_manifest([data_file])
    before = path.read_text("utf-8")
    manifest = load_manifest(path).manifest.model_copy(update={"generators": []})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        save_manifest(manifest, path)
    assert path.read_text("utf-8") == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["numbers.jsonl", "numbers.provenance.yaml"]
