"""`distill-guard report RUN_DIR` on a real halted run: every output shows the halt step and the limit."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from datasets import Dataset
from PIL import Image
from typer.testing import CliRunner

from distill_guard import DistillGuard, ProvenanceDenied
from distill_guard.cli import exit_codes
from distill_guard.cli.main import app
from tests.packaging.test_light_start import run_in_fresh_interpreter
from tests.report.conftest import DRIFT_LIMIT, HALT_STEP
from tests.support.policies import write_guard_policy

runner = CliRunner()


def report(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["report", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def written(halted_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    code, output = report(str(halted_run), "--out", str(out))
    assert code == exit_codes.OK, output
    assert f"HALTED at step {HALT_STEP}" in output
    return out


def test_the_json_names_the_halt_step_and_each_step_s_limit(written: Path) -> None:
    summary = json.loads((written / "report.json").read_text("utf-8"))
    assert summary["halted"] is True and summary["halt_step"] == HALT_STEP
    (probe,) = summary["probes"]
    assert probe["steps"] == [0, 2, 4] and probe["halted_at"] == HALT_STEP
    assert probe["drift_limits"] == pytest.approx([DRIFT_LIMIT] * 3)
    assert probe["breached"] == [False, False, True]
    assert summary["provenance"] == "warn" and summary["policy"] == "report-policy"
    assert len(summary["policy_sha256"]) == 64
    assert summary["quarantined"] == [str(Path(summary["audit_log"]).parent / "checkpoint-4")]


def test_the_html_page_embeds_the_plot_and_states_halt_and_limit(written: Path) -> None:
    page = (written / "report.html").read_text("utf-8")
    assert "data:image/png;base64," in page
    assert f"HALTED at step {HALT_STEP} by probe &#x27;controlled&#x27;" in page
    assert f"<td>+{DRIFT_LIMIT:.4f}</td>" in page
    assert "dataset-not-cleared" in page  # the gate's warning at train begin


def test_the_markdown_states_halt_and_limit_and_links_the_plot(written: Path) -> None:
    markdown = (written / "report.md").read_text("utf-8")
    assert markdown.startswith(f"## distill-guard: HALTED at step {HALT_STEP}")
    assert f"| controlled | 2 | +0.3150 | +{DRIFT_LIMIT:.4f} | {HALT_STEP} | {HALT_STEP} |" in markdown
    assert "![drift over steps](report.png)" in markdown


def test_the_png_describes_the_limit_and_the_halt_it_draws(written: Path) -> None:
    with Image.open(written / "report.png") as image:
        assert image.format == "PNG" and image.width > 400
        description = image.info["Description"]
    assert f"drift limit +{DRIFT_LIMIT:g}" in description and f"halted at step {HALT_STEP}" in description


def test_json_flag_prints_the_summary_on_stdout(halted_run: Path, tmp_path: Path) -> None:
    code, output = report(str(halted_run), "--out", str(tmp_path), "--json")
    assert code == exit_codes.OK
    assert json.loads(output)["halt_step"] == HALT_STEP


def test_the_report_starts_without_torch(halted_run: Path, tmp_path: Path) -> None:
    ran = run_in_fresh_interpreter([["report", str(halted_run), "--out", str(tmp_path / "r")]], tmp_path)
    assert ran == {"codes": [0], "heavy": []}


def test_without_matplotlib_the_report_says_so_and_writes_everything_else(
    halted_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    code, output = report(str(halted_run), "--out", str(tmp_path))
    assert code == exit_codes.OK
    assert "install matplotlib" in output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.json", "report.md"]
    assert "No drift plot: install matplotlib" in (tmp_path / "report.html").read_text("utf-8")


# -- bad input: a located message, exit 1, no report files ---------------------------------------


def test_a_missing_run_folder_is_named(tmp_path: Path) -> None:
    code, output = report(str(tmp_path / "nope"), "--out", str(tmp_path / "r"))
    assert code == exit_codes.INVALID_INPUT
    assert f"{tmp_path / 'nope'}: not a run folder" in output
    assert not (tmp_path / "r").exists()


def test_a_folder_without_an_audit_log_says_which_file_it_looked_for(tmp_path: Path) -> None:
    code, output = report(str(tmp_path), "--out", str(tmp_path / "r"))
    assert code == exit_codes.INVALID_INPUT
    assert "no audit log guard-audit.jsonl" in output and "--audit-log" in output
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("damage", "located"),
    [
        ('{"event": "probes", "run_id": "x", "step": 2, "reports": [{"probe": "p"', ":3:"),
        ("[1, 2]", ":3: not a JSON object"),
        ('{"event": "probes", "run_id": "x", "reports": "none"}', ":3: 'reports' must be a list, found a str"),
    ],
)
def test_a_damaged_line_is_located_and_nothing_is_written(
    halted_run: Path, tmp_path: Path, damage: str, located: str
) -> None:
    lines = (halted_run / "guard-audit.jsonl").read_text("utf-8").splitlines()
    run = tmp_path / "run"
    run.mkdir()
    (run / "guard-audit.jsonl").write_text("\n".join([*lines[:2], damage, *lines[2:]]) + "\n", "utf-8")
    code, output = report(str(run), "--out", str(tmp_path / "r"))
    assert code == exit_codes.INVALID_INPUT
    assert f"{run / 'guard-audit.jsonl'}{located}" in output.replace("\n", "")
    assert not (tmp_path / "r").exists()


def test_a_run_the_gate_refused_is_reported_as_denied_without_a_plot(tmp_path: Path) -> None:
    policy = write_guard_policy(tmp_path / "deny-policy.yaml", unknown="deny")
    with pytest.raises(ProvenanceDenied):  # no manifest: unknown provenance, denied before any Trainer
        DistillGuard.from_policy(policy, output_dir=tmp_path / "run").clear_dataset(
            Dataset.from_dict({"text": ["7, 12, 33"]})
        )
    code, output = report(str(tmp_path / "run"), "--out", str(tmp_path / "r"), "--json")
    assert code == exit_codes.OK
    summary = json.loads(output)
    assert summary["status"] == "DENIED by the provenance gate at clear_dataset" and summary["probes"] == []
    assert summary["files"]["png"] is None
    assert "No probe evaluation was recorded." in (tmp_path / "r" / "report.html").read_text("utf-8")


def test_an_out_path_that_is_a_file_is_refused_naming_it(halted_run: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("mine", "utf-8")
    code, output = report(str(halted_run), "--out", str(blocker))
    assert code == exit_codes.INVALID_INPUT
    assert f"{blocker} is a file, not a directory" in output.replace("\n", "")
    assert blocker.read_text("utf-8") == "mine"


# -- hostile names in the audit log: reports stay inert text ---------------------------------------

HOSTILE_NAME = "<img src=x onerror=alert(1)>[click](javascript:alert(1))`x`|$x^$"


def hostile_run(root: Path) -> Path:
    """A hand-written audit log whose policy, probe, dataset and rule names carry HTML, Markdown and mathtext."""
    probe = {"probe": HOSTILE_NAME, "step": 2, "drift": 0.2, "baseline": 0.1, "limit": 0.15, "breached": True}
    lines = [
        {"event": "provenance_decision", "run_id": "r", "policy": HOSTILE_NAME, "moment": "train_begin",
         "decision": {"outcome": "warn", "dataset": HOSTILE_NAME, "rules": [{"id": HOSTILE_NAME}]}},
        {"event": "probes", "run_id": "r", "step": 2, "reports": [probe]},
        {"event": "halt", "run_id": "r", "step": 2, "record": {"step": 2, "probe": HOSTILE_NAME}},
    ]  # fmt: skip
    run = root / "run"
    run.mkdir()
    (run / "guard-audit.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines), "utf-8")
    return run


def test_names_from_the_audit_log_are_never_html_or_markdown_in_the_report(tmp_path: Path) -> None:
    code, output = report(str(hostile_run(tmp_path)), "--out", str(tmp_path / "r"))
    assert code == exit_codes.OK, output
    page = (tmp_path / "r" / "report.html").read_text("utf-8")
    markdown, fenced_halt_record = (tmp_path / "r" / "report.md").read_text("utf-8").split("```json\n")
    assert fenced_halt_record.count("```") == 1  # the record's JSON is one code block: text, never markup
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<img src=x" not in markdown and "&lt;img src=x onerror=alert(1)&gt;" in markdown
    assert "[click](" not in markdown and "\\[click\\](javascript:" in markdown  # no link, no code span
    assert "\\`x\\`" in markdown and "\\|" in markdown


def test_a_probe_name_that_is_broken_mathtext_still_gets_its_plot(tmp_path: Path) -> None:
    """'$x^$' is a syntax error to matplotlib's mathtext: the plot draws it as the text it is."""
    code, output = report(str(hostile_run(tmp_path)), "--out", str(tmp_path / "r"), "--json")
    assert code == exit_codes.OK, output
    assert json.loads(output)["files"]["png"] is not None
    with Image.open(tmp_path / "r" / "report.png") as image:
        assert HOSTILE_NAME in image.info["Description"]


@pytest.mark.parametrize(
    ("line", "located"),
    [
        ('{"event": "probes", "run_id": "r", "policy": ["p"], "reports": []}', ":1: 'policy' must be a str"),
        ('{"event": "probes", "run_id": "r", "reports": [{"probe": "p", "step": 2, "drift": NaN}]}', ":1: not a JSON"),
        ("[" * 100_000 + "]" * 100_000, ":1: not a JSON line: nested too deeply"),
    ],
)
def test_an_audit_line_the_guard_never_writes_is_located_not_a_crash(tmp_path: Path, line: str, located: str) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "guard-audit.jsonl").write_text(line + "\n", "utf-8")
    code, output = report(str(run), "--out", str(tmp_path / "r"))
    assert code == exit_codes.INVALID_INPUT
    assert f"{run / 'guard-audit.jsonl'}{located}" in output.replace("\n", "")
    assert not (tmp_path / "r").exists()
