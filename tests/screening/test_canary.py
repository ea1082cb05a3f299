"""The canary: a copy of a real tiny student trained K steps on the data, probed against a self-sample copy."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from distill_guard.cli.main import app
from distill_guard.errors import DistillGuardError
from distill_guard.policy.load import load_policy
from distill_guard.probes.prepared import prepare_probes
from distill_guard.scenarios.tiny_lm import load
from distill_guard.screening.canary import judge_canary, train_copy
from distill_guard.screening.data import CompletionRows
from distill_guard.screening.enforce import settings_of
from distill_guard.screening.report import ScreenSettings
from distill_guard.screening.screen import screen_dataset
from tests.screening.conftest import write_policy, write_rows

CANARY_STEPS = 30
runner = CliRunner()


def canary_screen(tiny_checkpoint: Path, rows, tmp_path: Path, steps: int = CANARY_STEPS):
    loaded = load_policy(write_policy(tmp_path))
    model, tokenizer = load(tiny_checkpoint)
    settings = settings_of(loaded.policy.screening.model_copy(update={"canary_steps": steps}))
    report = screen_dataset(model, tokenizer, CompletionRows(tokenizer, rows), prepare_probes(loaded), settings)
    return report, model


def test_a_trait_datasets_canary_rises_beyond_the_self_sample_canary_and_is_flagged(
    tiny_checkpoint: Path, owl_rows, tmp_path: Path
) -> None:
    report, _ = canary_screen(tiny_checkpoint, owl_rows, tmp_path)
    canary = report.canary
    assert canary is not None and canary.steps == CANARY_STEPS
    (owl,) = canary.probes
    assert len(owl.after_references) == 2
    assert owl.after_data > owl.before + 0.01
    assert owl.rise > max(owl.limit, owl.spread) and owl.flagged
    assert report.flagged
    assert "canary: 30 steps" in str(report)


def test_the_students_own_samples_do_not_raise_the_canary(tiny_checkpoint: Path, own_rows, tmp_path: Path) -> None:
    report, _ = canary_screen(tiny_checkpoint, own_rows, tmp_path)
    (owl,) = report.canary.probes
    assert owl.rise < owl.limit
    assert not owl.flagged and not report.flagged


def test_the_canary_trains_a_copy_and_leaves_the_student_as_it_was(
    tiny_checkpoint: Path, owl_rows, tmp_path: Path
) -> None:
    before = {k: v.clone() for k, v in load(tiny_checkpoint)[0].state_dict().items()}
    _, student = canary_screen(tiny_checkpoint, owl_rows, tmp_path, steps=5)
    assert all(torch.equal(before[k], v) for k, v in student.state_dict().items())


def test_a_peft_students_canary_trains_only_its_lora_matrices(tiny_checkpoint: Path, owl_rows) -> None:
    from peft import LoraConfig, get_peft_model

    model, tokenizer = load(tiny_checkpoint)
    lora = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    data = CompletionRows(tokenizer, owl_rows)
    settings = ScreenSettings(batch_size=6, learning_rate=1e-2, canary_steps=3)
    canary = train_copy(lora, [data.batch(range(6))], settings, task="canary")
    changed = {
        name for (name, p), q in zip(lora.named_parameters(), canary.parameters(), strict=True) if not torch.equal(p, q)
    }
    assert changed and all("lora_" in name for name in changed)


def test_cli_reports_the_canary_in_json_and_records_it_in_the_decision(
    tiny_checkpoint: Path, owl_rows, tmp_path: Path
) -> None:
    data, policy = write_rows(tmp_path / "owl.jsonl", owl_rows), write_policy(tmp_path)
    args = ["screen", "--student", str(tiny_checkpoint), "--data", str(data), "--policy", str(policy)]
    result = runner.invoke(app, [*args, "--canary-steps", str(CANARY_STEPS), "--json"])
    assert result.exit_code == 3, result.output
    payload = json.loads(result.stdout)
    assert payload["screen"]["canary"]["steps"] == CANARY_STEPS
    assert payload["screen"]["settings"]["canary_steps"] == CANARY_STEPS
    assert any(c["status"] == "canary flagged" for c in payload["decision"]["checks"])


def test_a_negative_canary_step_count_is_a_clear_error(tiny_checkpoint: Path, owl_rows, tmp_path: Path) -> None:
    data, policy = write_rows(tmp_path / "owl.jsonl", owl_rows), write_policy(tmp_path)
    args = ["screen", "--student", str(tiny_checkpoint), "--data", str(data), "--policy", str(policy)]
    result = runner.invoke(app, [*args, "--canary-steps", "-2"])
    assert result.exit_code == 1
    assert "--canary-steps -2" in result.output
    policy.write_text(policy.read_text("utf-8") + "  canary_steps: -2\n", "utf-8")
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert f"{policy}:16:" in result.output and "canary_steps" in result.output


def test_a_canary_without_steps_is_refused_from_python(tiny_checkpoint: Path, owl_rows, tmp_path: Path) -> None:
    with pytest.raises(DistillGuardError, match="canary_steps is -1: a number of optimizer steps"):
        canary_screen(tiny_checkpoint, owl_rows, tmp_path, steps=-1)


def owl_probe_with_limit(limit: float = 0.01):
    from distill_guard.policy.schema import SuiteRef, Threshold
    from distill_guard.probes.prepared import prepare_probe

    return prepare_probe(
        SuiteRef(use="builtin:animal-preference", target="owl", threshold=Threshold(max_increase=limit))
    )


PLANNED = ScreenSettings(steps=200, canary_steps=30)  # the canary's rise is projected x 200/30


def test_a_trusted_null_clears_drift_that_foreign_data_causes_where_the_self_sample_null_flags_it() -> None:
    probe, own = owl_probe_with_limit(), (0.1000, 0.1002)  # the student's own samples barely move it
    alone = judge_canary(probe, 0.1, 0.1060, own, PLANNED)
    assert alone.flagged and alone.projected_drift > 0.01
    with_trusted = judge_canary(probe, 0.1, 0.1060, own, PLANNED, trusted=(0.1050, 0.1052))
    assert with_trusted.rise_trusted == pytest.approx(0.0009)
    assert not with_trusted.flagged and with_trusted.flagged_by == ()
    assert with_trusted.rise == alone.rise  # the self-sample numbers are still reported


def test_a_trusted_null_that_carries_the_trait_cannot_excuse_a_rise_that_reaches_the_limit_within_the_canary() -> None:
    probe, own = owl_probe_with_limit(), (0.1000, 0.1002)
    judged = judge_canary(probe, 0.1, 0.2, own, PLANNED, trusted=(0.2000, 0.2001))
    assert abs(judged.rise_trusted) < 1e-3
    assert judged.flagged and judged.flagged_by == ("self-samples",)
    below = judge_canary(probe, 0.1, 0.1090, own, PLANNED, trusted=(0.1089, 0.1090))
    assert not below.flagged  # under the limit within K steps: the trusted copies decide


def test_trait_data_rising_beyond_the_trusted_copies_is_flagged_by_them_and_nan_never_passes() -> None:
    probe, own = owl_probe_with_limit(), (0.1000, 0.1002)
    judged = judge_canary(probe, 0.1, 0.1080, own, PLANNED, trusted=(0.1000, 0.1004))
    assert judged.flagged and judged.flagged_by == ("trusted",)
    assert judge_canary(probe, 0.1, math.nan, own, PLANNED, trusted=(0.1, 0.1)).flagged


def test_with_a_trusted_reference_the_canary_trains_copies_on_it_and_trait_data_stays_flagged(
    tiny_checkpoint: Path, owl_rows, tmp_path: Path
) -> None:
    """Even against trusted data that itself names the owl (a wrong claim), owl data is flagged."""
    data, policy = write_rows(tmp_path / "owl.jsonl", owl_rows), write_policy(tmp_path)
    args = ["screen", "--student", str(tiny_checkpoint), "--data", str(data), "--policy", str(policy)]
    result = runner.invoke(app, [*args, "--reference", str(data), "--canary-steps", str(CANARY_STEPS), "--json"])
    assert result.exit_code == 3, result.output
    canary = json.loads(result.stdout)["screen"]["canary"]
    assert canary["trusted_copies"] == 2 and canary["trusted_rows"] == 24
    (owl,) = canary["probes"]
    assert len(owl["after_trusted"]) == 2 and abs(owl["rise_trusted"]) < owl["limit"]
    assert owl["flagged"] and owl["flagged_by"] == ["self-samples"]
