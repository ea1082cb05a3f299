"""What marks a checkpoint as halted: the quarantine marker's file names and the model card's section.

A foundation module because both sides need it: the halt (drift) writes the marker and the gate
(provenance) denies a marked checkpoint as a student or a teacher, so a halted model cannot come
back in as the start of a new run or as the source of its data.
"""

from __future__ import annotations

from pathlib import Path

QUARANTINE_MARKER_NAME = "distill-guard-quarantine.json"
"""Written into every checkpoint saved after a halt: the halt record plus `"quarantined": true`."""
LEGACY_QUARANTINE_MARKER_NAME = "DISTILL_GUARD_QUARANTINE.json"
"""The marker's name before 0.2; `read_quarantine_marker` still finds it in older checkpoints."""
CARD_SECTION = "distill_guard"
"""The model card's front-matter section the guard writes on save; `halted: true` on a halted checkpoint."""


def quarantine_marker_of(folder: Path) -> Path | None:
    """The marker file in `folder` under either name, or None: its presence alone quarantines."""
    for name in (QUARANTINE_MARKER_NAME, LEGACY_QUARANTINE_MARKER_NAME):
        marker = folder / name
        if marker.exists() or marker.is_symlink():
            return marker
    return None
