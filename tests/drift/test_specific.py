"""Specific drift: shared shifts and sharpening cancel; one candidate rising on its own does not."""

from __future__ import annotations

import numpy as np
import pytest

from distill_guard.drift.specific import specific_changes, specific_changes_per_candidate

RNG = np.random.default_rng(0)
BASE = RNG.normal(-3.0, 1.0, size=(20, 26))
OWL = np.arange(26) == 0


def test_a_shift_every_candidate_shares_is_not_specific() -> None:
    shifted = BASE + RNG.normal(0, 2.0, size=(20, 1))
    assert specific_changes(BASE, shifted, [OWL] * 20) == pytest.approx([0.0] * 20, abs=1e-9)


def test_sharpening_is_not_specific() -> None:
    sharpened = BASE / 0.7  # a temperature change: frequent answers gain, rare ones lose
    assert specific_changes(BASE, sharpened, [OWL] * 20) == pytest.approx([0.0] * 20, abs=1e-9)


def test_one_candidate_rising_alone_is_specific_and_a_panel_names_it() -> None:
    risen = BASE / 0.7
    risen[:, 5] += 1.5
    per_candidate = specific_changes_per_candidate(BASE, risen)
    assert int(np.argmax(per_candidate.mean(axis=1))) == 5
    assert per_candidate[5].mean() == pytest.approx(1.5, abs=0.2)
    assert np.abs(np.delete(per_candidate, 5, axis=0)).max() < 0.3
