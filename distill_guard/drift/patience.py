"""Consecutive breaches per probe: one noisy evaluation should not halt a run when patience > 1."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PatienceTracker:
    """Counts consecutive breaching evaluations of each probe; a clean evaluation resets the count."""

    streaks: dict[str, int] = field(default_factory=dict)

    def update(self, probe: str, breached: bool, patience: int) -> bool:
        """Record one evaluation; True when the probe has now breached `patience` times in a row."""
        self.streaks[probe] = self.streaks.get(probe, 0) + 1 if breached else 0
        return self.streaks[probe] >= patience
