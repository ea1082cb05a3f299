"""A saved checkpoint's model card carries the guard's section, read back with huggingface_hub."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from huggingface_hub import ModelCard, metadata_load

from distill_guard.export.model_card import HALTED_BANNER, card_section, write_card_section
from tests.report.conftest import HALT_STEP


def test_a_clean_checkpoint_s_card_names_policy_decision_and_probes(halted_run: Path) -> None:
    section = metadata_load(halted_run / "checkpoint-2" / "README.md")["distill_guard"]
    policy = halted_run.parent / "report-policy.yaml"
    assert section["policy"] == "report-policy"
    assert section["policy_sha256"] == hashlib.sha256(policy.read_bytes()).hexdigest()
    assert section["provenance"]["outcome"] == "warn"
    assert section["provenance"]["rules_fired"] == ["dataset-not-cleared"]
    assert [(p["probe"], p["step"], p["breached"]) for p in section["probes"]] == [("controlled", 2, False)]
    assert section["halted"] is False and "halt" not in section


def test_a_quarantined_checkpoint_s_card_says_it_is_halted(halted_run: Path) -> None:
    card = ModelCard.load(halted_run / f"checkpoint-{HALT_STEP}" / "README.md")
    section = card.data.to_dict()["distill_guard"]
    assert section["halted"] is True and section["quarantined"] is True
    assert section["halt"]["step"] == HALT_STEP and section["halt"]["probe"] == "controlled"
    assert section["halt"]["weights_digest"].startswith("sha256:")
    assert section["probes"][0]["breached"] is True
    assert card.text.startswith(HALTED_BANNER)


def test_an_existing_card_keeps_its_metadata_and_text(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("---\nbase_model: org/base\nlicense: mit\n---\n# My model\n\nNotes.\n", "utf-8")
    section = card_section(
        policy="p", policy_sha256="0" * 64, run_id=None, step=3, decision=None, reports=[], halt=None
    )
    write_card_section(tmp_path, section)
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.base_model == "org/base" and card.data.license == "mit"
    assert card.data.to_dict()["distill_guard"]["step"] == 3
    assert card.text == "# My model\n\nNotes.\n"


def test_an_existing_card_with_a_key_that_is_not_a_string_is_refused_naming_it(tmp_path: Path) -> None:
    """huggingface_hub passes front-matter keys as keyword arguments: `1:` was a TypeError out of on_save."""
    (tmp_path / "README.md").write_text("---\n1: x\n---\n# My model\n", "utf-8")
    section = card_section(
        policy="p", policy_sha256="0" * 64, run_id=None, step=3, decision=None, reports=[], halt=None
    )
    with pytest.raises(ValueError, match=r"README\.md: a front matter key is not a string"):
        write_card_section(tmp_path, section)
    assert (tmp_path / "README.md").read_text("utf-8") == "---\n1: x\n---\n# My model\n"
