"""Names of the built-in probe suites, known to the policy schema before any model is loaded."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path


@dataclass(frozen=True)
class BuiltinSuite:
    """A suite shipped as package data under distill_guard/policy/suites/."""

    name: str
    kind: str
    summary: str
    needs_target: bool
    default_target: str | None = None

    @property
    def scores_are_probabilities(self) -> bool:
        """Preference and choice scores live in [0, 1]; activation projections do not."""
        return self.kind in {"preference", "choice"}

    def path(self) -> Path:
        return Path(str(resources.files("distill_guard.policy") / "suites" / f"{self.name}.yaml"))


BUILTIN_SUITES: dict[str, BuiltinSuite] = {
    suite.name: suite
    for suite in (
        BuiltinSuite("animal-preference", "preference", "favourite-animal questions, one word answers", True, "owl"),
        BuiltinSuite(
            "animal-preference-numbers",
            "preference",
            "favourite-animal questions prefixed with a number sequence (the paper's variant)",
            True,
            "owl",
        ),
        BuiltinSuite("tree-preference", "preference", "favourite-tree questions, one word answers", True, "oak"),
        BuiltinSuite("colour-preference", "preference", "favourite-colour questions, a panel of 16 colours", True),
        BuiltinSuite("food-preference", "preference", "favourite-food questions, a panel of 16 foods", True),
        BuiltinSuite("place-preference", "preference", "favourite country or city, a panel of 16 places", True),
        BuiltinSuite("number-preference", "preference", "favourite-number questions, a panel of 0-20", True),
        BuiltinSuite(
            "misalignment-choice",
            "choice",
            "multiple-choice items on the emergent-misalignment themes",
            False,
        ),
        BuiltinSuite(
            "animal-activation",
            "activation",
            "persona-vector direction for loving the target animal",
            True,
            "owl",
        ),
    )
}

BUILTIN_PREFIX = "builtin:"
