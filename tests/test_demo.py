"""`distill-guard demo --fast`: its steps end as described, asserted on summary.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from distill_guard.cli.main import app


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(app, ["demo", "--fast", "--out", str(out), "--seed", "0"])
    summary = json.loads((out / "summary.json").read_text())
    return result.exit_code, out, summary


def step(summary: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in summary["steps"] if s["name"] == name)


def test_demo_exits_zero_when_every_step_ends_as_described(demo_run: tuple[int, Path, dict[str, Any]]) -> None:
    code, _, summary = demo_run
    assert code == 0
    assert summary["as_expected"] is True
    assert [s["name"] for s in summary["steps"]] == [
        "gate",
        "lm-probes",
        "lm-control",
        "lm-different-init",
        "digits-probes",
        "digits-control",
    ]


def test_gate_refuses_the_trait_teachers_data_under_strict(demo_run: tuple[int, Path, dict[str, Any]]) -> None:
    gate = step(demo_run[2], "gate")
    assert gate["outcome"] == "denied"
    assert "same-base-untrusted" in gate["numbers"]["rules"]
    assert gate["numbers"]["trait_teacher"] > gate["numbers"]["base"] + 0.5
    data = (demo_run[1] / "data" / "owl-teacher-numbers.jsonl").read_text("utf-8").splitlines()
    assert gate["numbers"]["samples_kept"] == len(data) > 0


def test_gate_step_leaves_its_denial_in_its_audit_log(demo_run: tuple[int, Path, dict[str, Any]]) -> None:
    lines = (demo_run[1] / "1-gate" / "guard-audit.jsonl").read_text("utf-8").splitlines()
    decisions = [json.loads(line) for line in lines if '"provenance_decision"' in line]
    assert [(d["moment"], d["decision"]["outcome"]) for d in decisions] == [("clear_dataset", "deny")]


def test_the_panel_halts_the_lm_student_that_inherits_the_trait_through_numbers(
    demo_run: tuple[int, Path, dict[str, Any]],
) -> None:
    """The animal panel is not told the trait; it halts the same-init student early and names the owl."""
    probes = step(demo_run[2], "lm-probes")
    assert probes["outcome"] == "halted"
    numbers = probes["numbers"]
    assert numbers["halt_step"] < numbers["planned_steps"]  # mid-run: step 110 of 188 measured on seed 0
    assert numbers["probe"] == "animal-preference"
    assert numbers["trait"] == "owl"
    assert numbers["specific_drift"] > 0.05


def test_the_lm_control_trains_to_the_end_and_the_different_init_student_does_not_inherit_the_owl(
    demo_run: tuple[int, Path, dict[str, Any]],
) -> None:
    control = step(demo_run[2], "lm-control")
    assert control["outcome"] == "completed" and control["halt_step"] is None
    assert control["numbers"]["after"] < control["numbers"]["before"] + 0.05
    different = step(demo_run[2], "lm-different-init")
    assert different["expected"] == "not judged" and different["outcome"] in ("completed", "halted")
    assert different["numbers"]["after"] < different["numbers"]["before"] + 0.05
    if different["outcome"] == "halted":  # the panel may stop it on another animal, never on the owl it did not inherit
        assert different["numbers"]["trait"] != "owl"


def test_probe_halts_the_digits_same_init_student_early(demo_run: tuple[int, Path, dict[str, Any]]) -> None:
    probes = step(demo_run[2], "digits-probes")["numbers"]
    assert step(demo_run[2], "digits-probes")["outcome"] == "halted"
    assert probes["halt_step"] < probes["planned_steps"] / 2
    assert probes["score"] - probes["baseline"] == pytest.approx(probes["drift"])
    assert probes["drift"] > 0.1
    assert probes["z"] >= 3


def test_digits_control_trains_to_the_end(demo_run: tuple[int, Path, dict[str, Any]]) -> None:
    control = step(demo_run[2], "digits-control")
    assert control["outcome"] == "completed"
    assert control["halt_step"] is None
    assert control["numbers"]["after"] < control["numbers"]["before"] + 0.1


def test_report_has_the_plot_and_the_table(demo_run: tuple[int, Path, dict[str, Any]]) -> None:
    _, out, summary = demo_run
    png = Path(summary["report_png"])
    assert png.read_bytes().startswith(b"\x89PNG")
    page = Path(summary["report_html"]).read_text()
    assert "data:image/png;base64," in page
    assert all(s["name"] in page for s in summary["steps"])
    assert "trait-different-init" in page and "control-same-init" in page
    assert summary["metrics_url"].startswith("http://127.0.0.1:")
    assert (out / "data" / "owl-teacher-numbers.provenance.yaml").is_file()


def test_the_summary_has_the_treated_control_and_different_init_curves_side_by_side(
    demo_run: tuple[int, Path, dict[str, Any]],
) -> None:
    curves = [c for c in demo_run[2]["curves"] if c["scenario"].startswith("LM miniature")]
    assert [c["run"] for c in curves][:2] == ["trait-same-init (halted)", "control-same-init"]
    assert curves[2]["run"].startswith("trait-different-init")
    treated, control, different = curves
    assert treated["halted_at"] == treated["steps"][-1]
    assert treated["drifts"][-1] > max(control["drifts"])
    assert control["steps"][-1] > treated["steps"][-1] and control["steps"][-1] >= different["steps"][-1]
    table = demo_run[2]["lm_curve_table"]
    assert list(table[0]) == ["step", *(c["run"] for c in curves)]
    assert [int(row["step"]) for row in table] == control["steps"]
    assert table[-1]["trait-same-init (halted)"] == ""  # stopped before the last look


def test_metrics_were_served_on_localhost_while_training(demo_run: tuple[int, Path, dict[str, Any]]) -> None:
    for name in ("lm-probes", "lm-control", "digits-probes", "digits-control"):
        scraped = step(demo_run[2], name)["numbers"]["scraped_metrics"]
        assert 0.0 <= scraped["distill_guard_probe_score"] <= 1.0
        assert "distill_guard_probe_drift" in scraped
