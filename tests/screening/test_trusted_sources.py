"""Distinct trusted sources: the canary's rank-test null (docs/screening.md, fifth and sixth notes).

Copies of one trusted dataset only say how two draws of it differ; n distinct sources say how far
trait-free data moves the student. The data's canary must beat every source's canary, which a
trait-free dataset exchangeable with them does with probability at most 1 / (n + 1) per probe.
The margin counts from the highest trait-free canary, the student's own samples included.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import datasets
import pytest
from typer.testing import CliRunner

from distill_guard.cli.main import app
from distill_guard.errors import DistillGuardError
from distill_guard.policy.load import load_policy
from distill_guard.probes.prepared import prepare_probes
from distill_guard.provenance.gate import ProvenanceGate
from distill_guard.scenarios.tiny_lm import load
from distill_guard.screening.canary import judge_canary
from distill_guard.screening.data import CompletionRows
from distill_guard.screening.enforce import settings_of
from distill_guard.screening.report import ScreenSettings
from distill_guard.screening.screen import screen_dataset
from tests.screening.conftest import sampled_rows, write_policy, write_rows
from tests.screening.test_canary import owl_probe_with_limit

CANARY_STEPS = 30
PLANNED = ScreenSettings(steps=200, canary_steps=30)  # rises are projected x 200/30
OWN = (0.1000, 0.1002)  # the self-sample canaries barely move the probe
runner = CliRunner()


def sources_rule(data: float, sources: tuple[float, ...], limit: float = 0.01):
    return judge_canary(owl_probe_with_limit(limit), 0.1, data, OWN, PLANNED, sources, distinct_sources=True)


def test_data_that_beats_every_source_by_a_projected_limit_is_flagged_by_the_sources() -> None:
    judged = sources_rule(0.1080, (0.1010, 0.1030, 0.1020))
    assert judged.flagged and judged.flagged_by == ("trusted sources",)
    assert judged.rise_trusted == pytest.approx(0.1080 - 0.1030)  # the margin over the highest null copy


def test_the_margin_counts_from_the_highest_null_copy_self_samples_included() -> None:
    """Sources that all fell do not make an unmoved dataset look raised (seed 9 of the fifth note)."""
    judged = sources_rule(0.1002, (0.0900, 0.0950, 0.0980))  # the data moved no further than its own samples
    assert not judged.flagged and judged.rise_trusted == pytest.approx(0.0)


def test_data_no_higher_than_one_source_passes_however_far_it_rose() -> None:
    """The rank test: a source rose as far, so trait-free data does this too (below the backstop)."""
    judged = sources_rule(0.1080, (0.1010, 0.1085, 0.1020))
    assert not judged.flagged and "no higher than on one of 3 trusted sources" in judged.reason


def test_beating_every_source_by_less_than_the_limit_projects_passes() -> None:
    judged = sources_rule(0.1035, (0.0900, 0.0910, 0.1034))  # far above their mean, barely above the highest
    assert not judged.flagged and "projection stays under the limit" in judged.reason


def test_sources_that_carry_the_trait_cannot_excuse_a_rise_that_reaches_the_limit_within_the_canary() -> None:
    judged = sources_rule(0.2, (0.2001, 0.2002))
    assert judged.flagged and judged.flagged_by == ("self-samples",)
    assert sources_rule(math.nan, (0.1, 0.1)).flagged


def test_under_exchangeable_sources_the_flag_rate_is_at_most_one_in_n_plus_one() -> None:
    """Data and 9 sources drawn alike: the data canary is the highest in about 1 of 10 looks.

    The limit is tiny so that the projection never decides; the sources' flag is counted alone
    (the self-sample backstop is a separate rule, tested above).
    """
    rng = random.Random(0)
    draws, n = 4000, 9
    flags = 0
    for _ in range(draws):
        scores = [0.1 + rng.gauss(0.01, 0.01) for _ in range(n + 1)]
        flags += "trusted sources" in sources_rule(scores[0], tuple(scores[1:]), limit=1e-9).flagged_by
    rate, bound = flags / draws, 1 / (n + 1)
    assert abs(rate - bound) < 4 * math.sqrt(bound * (1 - bound) / draws)


def sources_screen(tiny_checkpoint: Path, rows, sources, tmp_path: Path):
    loaded = load_policy(write_policy(tmp_path))
    model, tokenizer = load(tiny_checkpoint)
    settings = settings_of(loaded.policy.screening.model_copy(update={"canary_steps": CANARY_STEPS}))
    return screen_dataset(
        model,
        tokenizer,
        CompletionRows(tokenizer, rows),
        prepare_probes(loaded),
        settings,
        trusted_sources=[CompletionRows(tokenizer, s) for s in sources],
    )


@pytest.fixture(scope="module")
def sources(tiny_checkpoint: Path) -> list[list[dict[str, str]]]:
    """Three more draws of the student's own answers: trait-free datasets of the same task."""
    return [sampled_rows(tiny_checkpoint, seed=s) for s in (1001, 1002, 1003)]


def test_owl_data_beats_every_trusted_source_and_is_flagged(tiny_checkpoint: Path, owl_rows, sources, tmp_path) -> None:
    report = sources_screen(tiny_checkpoint, owl_rows, sources, tmp_path)
    canary = report.canary
    assert canary.trusted_sources == 3 and canary.trusted_copies == 3
    (owl,) = canary.probes
    assert len(owl.after_trusted) == 3 and owl.after_data > max(owl.after_trusted)
    assert owl.flagged and "trusted sources" in owl.flagged_by
    assert "one on each of 3 trusted sources" in str(report) and "<= 0.250" in str(report)


def test_a_source_that_is_the_data_or_a_copy_of_another_source_is_refused(
    tiny_checkpoint: Path, owl_rows, sources, tmp_path: Path
) -> None:
    """Found by attacking it: the data listed as a source ties with its own canary and can never be beaten,
    so a flagged dataset passed; two copies of one source would weaken the bound unseen."""
    with pytest.raises(DistillGuardError, match="trusted source 1 shares 100% of its rows with the data"):
        sources_screen(tiny_checkpoint, owl_rows, [owl_rows, sources[1]], tmp_path)
    with pytest.raises(DistillGuardError, match="trusted sources 1 and 2 share 100% of their rows"):
        sources_screen(tiny_checkpoint, owl_rows, [sources[0], list(sources[0])], tmp_path)
    with pytest.raises(DistillGuardError, match="trusted source 2 has 6 rows; the data's canary trains on 24"):
        sources_screen(tiny_checkpoint, owl_rows, [sources[0], sources[1][:6]], tmp_path)


def test_a_null_copy_whose_score_is_not_finite_flags_instead_of_crashing() -> None:
    for sources in ((math.nan, 0.1), (0.1, math.inf)):
        judged = sources_rule(0.1, sources)
        assert judged.flagged and "not finite" in judged.reason
    alone = judge_canary(owl_probe_with_limit(), 0.1, 0.1, (0.1, math.nan), PLANNED)
    assert alone.flagged and "not finite" in alone.reason


def test_trusted_sources_need_a_canary_two_of_them_and_no_single_reference(
    tiny_checkpoint: Path, own_rows, sources, tmp_path: Path
) -> None:
    loaded = load_policy(write_policy(tmp_path))
    model, tokenizer = load(tiny_checkpoint)
    data, probes = CompletionRows(tokenizer, own_rows), prepare_probes(loaded)
    rows = [CompletionRows(tokenizer, s) for s in sources]
    settings = settings_of(loaded.policy.screening)
    with pytest.raises(DistillGuardError, match="set canary_steps > 0"):
        screen_dataset(model, tokenizer, data, probes, settings, trusted_sources=rows)
    with_canary = settings_of(loaded.policy.screening.model_copy(update={"canary_steps": 2}))
    with pytest.raises(DistillGuardError, match="at least 2 distinct"):
        screen_dataset(model, tokenizer, data, probes, with_canary, trusted_sources=rows[:1])
    with pytest.raises(DistillGuardError, match="not both"):
        screen_dataset(model, tokenizer, data, probes, with_canary, trusted=rows[0], trusted_sources=rows)


def test_the_policys_trusted_sources_are_read_relative_to_it_and_the_cli_refuses_a_lone_source(
    tiny_checkpoint: Path, owl_rows, sources, tmp_path: Path
) -> None:
    (tmp_path / "policy").mkdir()
    names = [write_rows(tmp_path / "policy" / f"source-{i}.jsonl", s).name for i, s in enumerate(sources[:2])]
    policy = write_policy(tmp_path / "policy")
    policy.write_text(
        policy.read_text("utf-8") + f"  canary_steps: {CANARY_STEPS}\n  trusted_sources: [{', '.join(names)}]\n",
        "utf-8",
    )
    data = write_rows(tmp_path / "owl.jsonl", owl_rows)
    args = ["screen", "--student", str(tiny_checkpoint), "--data", str(data), "--policy", str(policy)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 3, result.output
    canary = json.loads(result.stdout)["screen"]["canary"]
    assert canary["trusted_sources"] == 2 and "trusted sources" in canary["probes"][0]["flagged_by"]
    lone = runner.invoke(app, [*args, "--trusted-source", str(data)])
    assert lone.exit_code == 1 and "at least 2 distinct" in lone.output
    both = runner.invoke(app, [*args, "--reference", str(data)])
    assert both.exit_code == 1 and "screening.trusted_sources" in both.output
    no_canary = runner.invoke(app, [*args, "--canary-steps", "0"])
    assert no_canary.exit_code == 1 and "give --canary-steps K > 0" in no_canary.output
    other = str(policy.parent / names[1])
    itself = runner.invoke(app, [*args, "--trusted-source", str(data), "--trusted-source", other])
    assert itself.exit_code == 3 and "shares 100% of its rows with the data" in itself.output
    gate = ProvenanceGate(load_policy(policy), student=tiny_checkpoint)  # the gate reads the same sources
    decision = gate.clear_dataset(datasets.Dataset.from_list(owl_rows)).decision
    assert decision.outcome == "deny" and any(r.id == "screening" for r in decision.rules)
    explained = runner.invoke(app, ["policy", "explain", str(policy)])
    assert explained.exit_code == 0, explained.output
    assert "2 distinct trusted sources" in explained.output and "<= 1/3" in explained.output
