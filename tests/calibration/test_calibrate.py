"""Calibration: benign runs on a real tiny model write the measured null; validate flags limits inside it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distill_guard.calibration import calibrate
from distill_guard.cli.main import app
from distill_guard.errors import DistillGuardError
from distill_guard.policy.benign_drift import BenignDrift
from distill_guard.policy.load import load_policy, validate_policy_file

POLICY = """apiVersion: distill-guard/v1
kind: GuardPolicy
metadata: {{name: calibrated}}
probes:
  every_n_steps: 2
{benign}  suites:
    - use: builtin:animal-preference
      target: owl
      threshold: {{max_increase: {limit}}}
"""
LINES = [", ".join(str((7 * i + k) % 1000) for k in range(6)) for i in range(64)]


def _policy(tmp_path: Path, *, limit: float = 0.05, benign: str | None = None) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.format(limit=limit, benign=f"  benign_drift: {benign}\n" if benign else ""))
    return path


def _benign_file(tmp_path: Path, values: list[float]) -> Path:
    path = tmp_path / "benign.json"
    path.write_text(json.dumps(BenignDrift("tiny", len(values), {"animal-preference-owl": values}).to_json()))
    return path


def test_benign_runs_record_each_probes_largest_tested_drift(tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "benign.json"
    result = calibrate(
        load_policy(_policy(tmp_path)),
        tiny_checkpoint,
        LINES,
        seeds=[0, 1],
        steps=4,
        learning_rate=1e-3,
        batch_size=4,
        work_dir=tmp_path / "work",
        out_file=out,
    )
    assert result.runs == 2 and len(result.per_probe["animal-preference-owl"]) == 2
    assert BenignDrift.from_file(out).per_probe == result.per_probe


def test_a_limit_inside_the_benign_range_is_a_located_warning(tmp_path: Path) -> None:
    _benign_file(tmp_path, [0.01, 0.08])
    issues = validate_policy_file(_policy(tmp_path, limit=0.05, benign="benign.json"))
    warning = next(i for i in issues if "inside the benign range" in i.message)
    assert warning.severity == "warning" and warning.line == 10 and "+0.0800" in warning.message
    assert not [
        i for i in validate_policy_file(_policy(tmp_path, limit=0.1, benign="benign.json")) if "benign" in i.message
    ]


def test_an_unreadable_benign_file_is_a_located_error(tmp_path: Path) -> None:
    (tmp_path / "benign.json").write_text('{"kind": "Something"}')
    issues = validate_policy_file(_policy(tmp_path, benign="benign.json"))
    assert any(i.severity == "error" and i.line == 6 and "cannot read benign drift" in i.message for i in issues)
    with pytest.raises(DistillGuardError, match=r"cannot read benign drift: .*missing\.json"):
        BenignDrift.from_file(tmp_path / "missing.json")


def test_calibrate_command_writes_the_file_and_refuses_bad_input(tiny_checkpoint: Path, tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("\n".join(LINES))
    out = tmp_path / "benign.json"
    args = ["calibrate", "--policy", str(_policy(tmp_path)), "--model", str(tiny_checkpoint), "--out", str(out)]
    ok = CliRunner().invoke(app, [*args, "--data", str(data), "--seeds", "0", "--steps", "2", "--batch-size", "4"])
    assert ok.exit_code == 0, ok.output
    assert "animal-preference-owl: largest benign drift" in ok.output and out.is_file()
    too_short = CliRunner().invoke(app, [*args, "--data", str(data), "--seeds", "0", "--steps", "1"])
    assert too_short.exit_code == 1 and "no look would run" in too_short.output
    (tmp_path / "empty.txt").write_text("\n")
    empty = CliRunner().invoke(app, [*args, "--data", str(tmp_path / "empty.txt"), "--seeds", "0", "--steps", "2"])
    assert empty.exit_code == 1 and "no lines" in empty.output
