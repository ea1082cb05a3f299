"""Limits derived from the measured benign null (`benign_margin`), on real tiny models.

The base knows the favourite-animal format; the fox student is the base after a short SFT that
makes it answer fox (test_detection.py). A benign-drift file says how far each candidate moved in
benign runs; the policy's `benign_margin` turns that into per-candidate limits.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill_guard.drift.assess import assess
from distill_guard.drift.halt_record import HaltRecord
from distill_guard.errors import SourceIssue
from distill_guard.policy.benign_drift import BenignDrift, ProbeCalibration
from distill_guard.policy.benign_limits import BenignLimits, suite_file, suite_sha256
from distill_guard.policy.load import load_policy, validate_policy_file
from distill_guard.policy.schema import SuiteRef, Threshold
from distill_guard.probes.prepared import prepare_probe
from distill_guard.probes.result import ProbeResult
from distill_guard.scenarios.tiny_lm import load
from tests.probes.test_detection import ALPHA, UNNAMED, fox_student  # noqa: F401 (a fixture)

PANEL = SuiteRef(use="builtin:animal-preference", panel=True, threshold=Threshold(max_increase=0.05))
POLICY = """apiVersion: distill-guard/v1
kind: GuardPolicy
metadata: {{name: calibrated}}
probes:
  every_n_steps: 50
{benign}  suites:
    - use: builtin:animal-preference
      panel: true
      threshold: {{max_increase: 0.05{margin}}}
"""
MARGIN = 0.05


def _policy(tmp_path: Path, *, benign: str | None = "benign.json", margin: str = f", benign_margin: {MARGIN}") -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.format(benign=f"  benign_drift: {benign}\n" if benign else "", margin=margin))
    return path


def _candidates() -> list[str]:
    return list(prepare_probe(PANEL).scorer.candidates)


def _benign_file(tmp_path: Path, maxima: dict[str, float], **changes: object) -> Path:
    """A format-2 file for the animal panel: every candidate at 0 benign drift except `maxima`."""
    per_candidate = {name: [0.0, maxima.get(name, 0.0)] for name in _candidates()}
    calibration = ProbeCalibration(suite_sha256(suite_file(PANEL, tmp_path)), per_candidate)
    per_probe = {"animal-preference": [0.0, max(maxima.values(), default=0.0)]}
    data = BenignDrift("tiny", 2, per_probe, probes={"animal-preference": calibration}).to_json()
    for key, value in changes.items():  # a damaged or mismatched file
        data["probes"]["animal-preference"][key] = value
    path = tmp_path / "benign.json"
    path.write_text(json.dumps(data))
    return path


def _limits(tmp_path: Path, maxima: dict[str, float]) -> BenignLimits:
    _benign_file(tmp_path, maxima)
    return load_policy(_policy(tmp_path)).benign_limits["animal-preference"]


@pytest.fixture(scope="module")
def fox_looks(base_checkpoint: Path, fox_student: Path) -> tuple[ProbeResult, ProbeResult]:  # noqa: F811
    def scored(checkpoint: Path) -> ProbeResult:
        model, tokenizer = load(checkpoint)
        return prepare_probe(PANEL).run(model, tokenizer, max_tokens_per_batch=4096)

    return scored(base_checkpoint), scored(fox_student)


def _look(fox_looks: tuple[ProbeResult, ProbeResult], benign: BenignLimits | None):
    return assess(*fox_looks, PANEL.threshold, step=50, alpha=ALPHA, panel=True, benign=benign)


def test_a_candidate_calibrated_above_its_drift_does_not_halt_and_an_uncalibrated_one_still_does(
    fox_looks: tuple[ProbeResult, ProbeResult], tmp_path: Path
) -> None:
    plain = _look(fox_looks, None)
    assert plain.breached and plain.trait == UNNAMED and plain.drift_limit == 0.05
    fox = next(c for c in plain.candidates if c[0] == UNNAMED)
    assert fox[1] > 0.05 and fox[2] > 0.05  # mean and one-sided bound of the fox's specific drift
    # benign runs moved the fox as far as this student did: its limit (drift + margin) is above the drift
    calibrated = _look(fox_looks, _limits(tmp_path, {UNNAMED: fox[1]}))
    assert not calibrated.breached
    # another candidate's raised limit leaves the fox at max_increase: it still halts, at 0.05
    other = _look(fox_looks, _limits(tmp_path, {"cat": fox[1]}))
    assert other.breached and other.trait == UNNAMED and other.drift_limit == 0.05
    assert "max_increase 0.05" in other.reasons[0]


def test_a_rise_beyond_the_calibrated_limit_halts_and_the_record_states_that_limit(
    fox_looks: tuple[ProbeResult, ProbeResult], tmp_path: Path
) -> None:
    fox = next(c for c in _look(fox_looks, None).candidates if c[0] == UNNAMED)
    benign_max = fox[2] - MARGIN - 0.02  # the limit sits just below the fox's one-sided bound
    report = _look(fox_looks, _limits(tmp_path, {UNNAMED: benign_max}))
    assert report.breached and report.trait == UNNAMED
    assert report.drift_limit == pytest.approx(benign_max + MARGIN) and report.drift_limit > 0.05
    assert f"calibrated limit {benign_max + MARGIN:.4f}" in report.reasons[0]
    record = HaltRecord.from_report(report, action="stop", threshold={}, **dict.fromkeys(_CONTEXT, ""))
    assert record.drift_limit == pytest.approx(benign_max + MARGIN) and "limit" in str(record)


_CONTEXT = ("policy", "policy_file", "policy_sha256", "weights_digest")


def _errors(policy: Path) -> list[SourceIssue]:
    return [i for i in validate_policy_file(policy) if i.severity == "error"]


def test_validate_prints_the_limits_calibration_raises(tmp_path: Path) -> None:
    _benign_file(tmp_path, {"panda": 0.30, "cat": 0.01})
    issues = validate_policy_file(_policy(tmp_path))
    raised = [i for i in issues if "benign_margin raises" in i.message]
    assert len(raised) == 1 and raised[0].severity == "warning" and raised[0].line == 10
    assert "panda 0.3500, cat 0.0600" in raised[0].message and "fox" not in raised[0].message
    assert not [i for i in issues if "inside the benign range" in i.message]  # derived limits sit above it


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ({"suite_sha256": "sha256:" + "0" * 64}, "suite animal-preference.yaml changed since benign.json"),
        ({"per_candidate": {"dragon": [0.1]}}, "unknown candidates ['dragon']"),
        ({"per_candidate": {"cat": [0.1]}}, "no measurement of candidates"),
    ],
)
def test_a_file_measured_on_another_probe_set_is_a_located_error(
    tmp_path: Path, damage: dict[str, object], message: str
) -> None:
    _benign_file(tmp_path, {}, **damage)
    errors = _errors(_policy(tmp_path))
    assert len(errors) == 1 and errors[0].line == 10 and message in errors[0].message, errors


def test_a_margin_without_a_usable_file_is_a_located_error(tmp_path: Path) -> None:
    assert "needs probes.benign_drift" in _errors(_policy(tmp_path, benign=None))[0].message
    old = BenignDrift("tiny", 1, {"animal-preference": [0.2]}, version=1).to_json()
    (tmp_path / "benign.json").write_text(json.dumps({k: v for k, v in old.items() if k != "version"}))
    errors = _errors(_policy(tmp_path))
    assert len(errors) == 1 and errors[0].line == 10 and "format-1 file" in errors[0].message
    still_read = validate_policy_file(_policy(tmp_path, margin=""))  # without a margin: the range warning, as before
    assert [i.severity for i in still_read if "benign" in i.message] == ["warning"]
    other = BenignDrift("tiny", 1, {"tree-preference": [0.2]}, probes={"tree-preference": ProbeCalibration("x")})
    (tmp_path / "benign.json").write_text(json.dumps(other.to_json()))
    assert "no calibration of probe 'animal-preference'" in _errors(_policy(tmp_path))[0].message
    (tmp_path / "benign.json").write_text(json.dumps({**other.to_json(), "version": 3}))
    unreadable = _errors(_policy(tmp_path))
    assert unreadable[0].line == 6 and "format 3" in unreadable[0].message
    policy = _policy(tmp_path)
    policy.write_text(policy.read_text().replace("max_increase: 0.05", "max_score: 0.9"))
    assert "benign_margin raises max_increase per candidate; give max_increase too" in _errors(policy)[0].message
