"""The review commands start without the training stack: CI jobs and pre-commit hooks that lint policies
and check manifests must not pay for importing torch and transformers (seconds of CPU each run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml
from safetensors.numpy import save_file

from tests.conftest import REPO

HEAVY = ("torch", "transformers")

# Runs the commands one after another in ONE interpreter, then reports which heavy modules got loaded
# and every command's exit code (so a command that failed early cannot pass for a light one).
DRIVER = """
import json, sys
from distill_guard.cli.main import main

commands, report, HEAVY = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3:]
codes = []
for args in commands:
    sys.argv = ["distill-guard", *args]
    try:
        main()
        codes.append(0)
    except SystemExit as exc:
        codes.append(exc.code or 0)
heavy = [name for name in HEAVY if name in sys.modules]
with open(report, "w") as f:
    json.dump({"codes": codes, "heavy": heavy}, f)
"""


def run_in_fresh_interpreter(commands: list[list[str]], tmp_path: Path, watched: tuple[str, ...] = HEAVY) -> dict:
    report = tmp_path / "report.json"
    subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(commands), str(report), *watched],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return json.loads(report.read_text())


def test_import_and_policy_validate_leave_torch_and_transformers_unloaded(tmp_path: Path) -> None:
    code = f"import sys, distill_guard; print([m for m in {HEAVY!r} if m in sys.modules])"
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert imported.stdout.strip() == "[]"
    # nor what only other commands need: the manifest models, Ed25519, Arrow (the CLI loads per command)
    others = ("distill_guard.policy.dataset_manifest", "cryptography", "pyarrow")
    validate = [["policy", "validate", str(REPO / "policies/strict.yaml")]]
    assert run_in_fresh_interpreter(validate, tmp_path, HEAVY + others) == {"codes": [0], "heavy": []}


def test_help_policy_manifest_and_check_leave_torch_and_transformers_unloaded(tmp_path: Path) -> None:
    data = tmp_path / "numbers.jsonl"
    data.write_text('{"text": "1 2 3"}\n', "utf-8")
    student = tmp_path / "student"  # real weights, but no teacher to compare them with: no torch needed
    student.mkdir()
    (student / "README.md").write_text("---\nbase_model: other-lab/base\n---\n", "utf-8")
    (student / "config.json").write_text('{"model_type": "llama"}', "utf-8")
    save_file({"w": np.zeros((4, 4), dtype=np.float32)}, str(student / "model.safetensors"))
    policy = tmp_path / "policy.yaml"
    strict = yaml.safe_load((REPO / "policies/strict.yaml").read_text("utf-8"))
    policy.write_text(yaml.safe_dump(strict), "utf-8")
    manifest = str(tmp_path / "numbers.provenance.yaml")
    commands = [
        ["--help"],
        ["policy", "validate", str(policy)],
        ["policy", "explain", "--markdown", str(policy)],
        ["policy", "schema"],
        ["manifest", "create", str(data), "--out", manifest, "--name", "n", "--version", "1", "--generator", "a/b"],
        ["manifest", "verify", manifest],
        ["check", "--policy", str(policy), "--student", str(student), "--manifest", manifest],
        ["export", "schema", "--out", str(tmp_path / "schema.json")],
        ["export", "prometheusrule", "--out", str(tmp_path / "rule.yaml")],
        ["probe", "--help"],
        ["demo", "--help"],
    ]
    report = run_in_fresh_interpreter(commands, tmp_path)
    assert report["heavy"] == []
    assert report["codes"][:6] == [0, 0, 0, 0, 0, 0]
    assert report["codes"][6] in (0, 3), "check must reach a decision (allowed or denied), not fail on its input"
    assert report["codes"][7:] == [0, 0, 0, 0]


def test_every_public_name_still_resolves_and_an_unknown_one_is_an_attribute_error() -> None:
    import distill_guard

    assert all(getattr(distill_guard, name) is not None for name in distill_guard.__all__)
    assert distill_guard.DistillGuard.__module__ == "distill_guard.callback"
    assert set(distill_guard.__all__) <= set(dir(distill_guard))
    try:
        distill_guard.NotAName  # noqa: B018
    except AttributeError as exc:
        assert "NotAName" in str(exc)
    else:
        raise AssertionError("an unknown attribute must raise AttributeError")


def test_the_help_listing_imports_no_command_module_and_shows_each_commands_own_help(tmp_path: Path) -> None:
    from distill_guard.cli.main import COMMANDS, load_command

    modules = tuple(module for module, _, _ in COMMANDS.values())
    assert run_in_fresh_interpreter([["--help"]], tmp_path, modules) == {"codes": [0], "heavy": []}
    listed = {name: summary for name, (_, _, summary) in COMMANDS.items()}
    assert listed == {name: load_command(name).get_short_help_str(limit=1000) for name in COMMANDS}
