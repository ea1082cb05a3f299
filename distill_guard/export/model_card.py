"""The guard's section in a saved checkpoint's model card, where the Hub and reviewers look first.

The card is README.md with YAML front matter; huggingface_hub's `ModelCard` reads and writes it, so
the front matter is exactly what the Hub will show, and the rest of an existing card is kept. The
section is the guard's view at save time: policy name and sha256, the provenance decision, each
probe's latest evaluation, and whether the run is halted. A halted (quarantined) checkpoint's card
also says so in its text, above everything else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill_guard._version import __version__
from distill_guard.atomic_files import write_atomically
from distill_guard.drift.halt_record import HaltRecord
from distill_guard.provenance.decision import Decision
from distill_guard.quarantine import CARD_SECTION

MODEL_CARD_NAME = "README.md"
HALTED_BANNER = "> **HALTED by distill-guard**: this checkpoint is quarantined; do not publish or fine-tune from it."
_PROBE_FIELDS = ("probe", "trait", "step", "baseline", "score", "drift", "limit", "breached")


def card_section(
    *,
    policy: str,
    policy_sha256: str,
    run_id: str | None,
    step: int,
    decision: Decision | None,
    reports: list[dict[str, Any]],
    halt: HaltRecord | None,
) -> dict[str, Any]:
    """The `distill_guard` front-matter section: plain YAML types only, so any card reader can load it."""
    provenance: dict[str, Any] = {"outcome": "none recorded"}
    if decision is not None:
        fired = [rule.id for rule in decision.rules if rule.waived_by is None]
        provenance = {"outcome": decision.outcome, "dataset": decision.dataset, "rules_fired": fired}
    section: dict[str, Any] = {
        "version": __version__,
        "policy": policy,
        "policy_sha256": policy_sha256,
        "run_id": run_id,
        "step": step,
        "provenance": provenance,
        "probes": [{key: report.get(key) for key in _PROBE_FIELDS} for report in reports],
        "halted": halt is not None,
    }
    if halt is not None:
        section["quarantined"] = True
        section["halt"] = {
            "step": halt.step,
            "probe": halt.probe,
            "reasons": list(halt.reasons),
            "weights_digest": halt.weights_digest,
        }
    return section


def write_card_section(folder: Path, section: dict[str, Any]) -> Path:
    """Set the section in `folder`'s model card (created when there is none), written atomically.

    Raises ValueError (or yaml's error) for an existing card whose front matter cannot be read,
    and OutputFileError when the card cannot be written.
    """
    from huggingface_hub import ModelCard, ModelCardData  # only a save pays for it

    path = folder / MODEL_CARD_NAME
    if path.is_file():
        try:
            card = ModelCard.load(path)
        except TypeError:  # ModelCardData(**front_matter) with a key like `1:` or `~:`
            raise ValueError(f"{path}: a front matter key is not a string (a number, null or boolean)") from None
    else:
        text = f"# {folder.name}\n\nTrained under the distill-guard policy `{section['policy']}`; the guard's findings"
        front = ModelCardData(distill_guard=section).to_yaml()
        card = ModelCard(f"---\n{front}\n---\n{text} are in the `{CARD_SECTION}` section of this card's metadata.\n")
    card.data.distill_guard = section  # ModelCardData keeps unknown keys in the front matter
    if section["halted"] and HALTED_BANNER not in card.text:
        card.text = f"{HALTED_BANNER}\n\n{card.text.lstrip()}"
    write_atomically(path, str(card))
    return path
