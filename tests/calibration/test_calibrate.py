"""Calibration: benign runs on a real tiny model write the measured null; validate flags limits inside it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distill_guard.calibration import benign_run, calibrate
from distill_guard.cli.main import app
from distill_guard.errors import DistillGuardError, PolicyError
from distill_guard.policy.benign_drift import BenignDrift
from distill_guard.policy.load import load_policy, validate_policy_file
from distill_guard.scenarios.tiny_lm import make_tiny_checkpoint
from distill_guard.scenarios.training import StudentRun

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


PANEL_POLICY = """apiVersion: distill-guard/v1
kind: GuardPolicy
metadata: {{name: calibrated-panel}}
probes:
  every_n_steps: 2
{benign}  suites:
    - use: builtin:colour-preference
      panel: true
      threshold: {{max_increase: 0.05{margin}}}
"""


def test_a_panel_calibration_backs_benign_margin_limits_for_the_model_it_measured_only(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    measuring = tmp_path / "measure.yaml"
    measuring.write_text(PANEL_POLICY.format(benign="", margin=""))
    run = StudentRun(max_steps=2, batch_size=4, learning_rate=1e-3, seed=0)
    result = calibrate(
        load_policy(measuring),
        tiny_checkpoint,
        LINES,
        seeds=[0],
        steps=2,
        learning_rate=1e-3,
        batch_size=4,
        work_dir=tmp_path / "work",
        out_file=tmp_path / "benign.json",
    )
    written = BenignDrift.from_file(tmp_path / "benign.json")
    assert written.version == 2 and written.weights_digest == result.weights_digest
    per_candidate = written.probes["colour-preference"].per_candidate
    assert len(per_candidate) >= 5 and max(max(v) for v in per_candidate.values()) == max(
        result.per_probe["colour-preference"]
    )
    calibrated = tmp_path / "calibrated.yaml"
    calibrated.write_text(PANEL_POLICY.format(benign="  benign_drift: benign.json\n", margin=", benign_margin: 0.05"))
    loaded = load_policy(calibrated)
    assert set(loaded.benign_limits["colour-preference"].benign_max) == set(per_candidate)
    guard = benign_run(tiny_checkpoint, LINES, run, tmp_path / "same", loaded)  # the measured weights: runs
    assert guard.monitor.looks == 1
    other = make_tiny_checkpoint(tmp_path / "other", seed=1)
    with pytest.raises(PolicyError, match=r"calibrated\.yaml:6:\d+: probes\.benign_drift: the file measured weights"):
        benign_run(other, LINES, run, tmp_path / "other-run", loaded)
