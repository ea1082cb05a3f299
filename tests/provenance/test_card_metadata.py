"""A model card's front matter is read as the Hub reads it, and refused, located, when it cannot be read safely."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import metadata_load

from distill_guard.errors import PolicyError
from distill_guard.provenance.checkpoint_folder import CheckpointError, read_card_metadata
from distill_guard.provenance.lineage import card_base_models

CARDS = [
    "---\nbase_model: org/base\nlicense: mit\n---\n# Model\n",
    "\n\n---\r\nbase_model:\r\n- org/a\r\n- org/b\r\n---\r\nbody\r\n",  # blank lines and CRLF, as the Hub allows
    "# a card without metadata\n",
]


@pytest.mark.parametrize("text", CARDS)
def test_the_metadata_is_what_huggingface_hub_reads(tmp_path: Path, text: str) -> None:
    card = tmp_path / "README.md"
    card.write_bytes(text.encode("utf-8"))
    assert read_card_metadata(card) == (metadata_load(card) or {})


def test_base_models_come_from_the_front_matter_the_hub_would_show(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_bytes(CARDS[1].encode("utf-8"))
    assert card_base_models(tmp_path) == ["org/a", "org/b"]


def test_a_yaml_error_names_the_card_s_own_line(tmp_path: Path) -> None:
    card = tmp_path / "README.md"
    card.write_text("\n---\nlicense: mit\nbase_model: [org/a\n---\n", "utf-8")
    with pytest.raises(PolicyError) as info:
        read_card_metadata(card)
    assert str(info.value).startswith(f"{card}:4:")  # line 4 opens the list that never closes


def test_a_malformed_card_stops_the_lineage_instead_of_dropping_its_claim(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("---\nbase_model: org/a\nbase_model: org/b\n---\n", "utf-8")
    with pytest.raises(PolicyError, match="duplicate key 'base_model'"):
        card_base_models(tmp_path)


def test_front_matter_that_never_closes_is_refused(tmp_path: Path) -> None:
    card = tmp_path / "README.md"
    card.write_text("---\nbase_model: org/a\n" + "x: y\n" * 20_000, "utf-8")
    with pytest.raises(CheckpointError, match="not closed by '---'"):
        read_card_metadata(card)
