"""pyproject.toml declares what the package imports, and imports what it declares as core."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions

import pytest

from tests.conftest import REPO

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11; the check needs to run on one version only

PACKAGE = REPO / "distill_guard"


def imported_top_level_modules() -> set[str]:
    """Every third-party module distill_guard imports, at module or function level (TYPE_CHECKING too)."""
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m not in {"distill_guard", "__future__"}}


def requirement_name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"]
    core = {requirement_name(r) for r in project["dependencies"]}
    extras = {requirement_name(r) for group in project["optional-dependencies"].values() for r in group}
    return core, extras - {"distill-guard"}


def test_every_imported_distribution_is_declared_and_every_core_one_is_imported() -> None:
    core, extras = declared()
    providers = packages_distributions()
    unprovided = [m for m in imported_top_level_modules() if not providers.get(m)]
    assert unprovided == [], "imported, but no installed distribution provides it"
    imported = {providers[m][0].lower().replace("_", "-") for m in imported_top_level_modules()}
    assert imported - core - extras == set(), "imported but not declared in pyproject.toml"
    assert core - imported == set(), "a core dependency the package never imports: drop it or move it to an extra"


def test_trl_which_the_package_never_imports_is_not_required_while_accelerate_comes_with_training() -> None:
    core, _ = declared()
    project = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"]
    train = {requirement_name(r) for r in project["optional-dependencies"]["train"]}
    assert "trl" not in core | train
    assert "accelerate" in train  # dist.py gathers through accelerate's helpers; core stays light (no torch)


def test_each_module_named_in_the_missing_extra_message_is_installed_by_that_extra() -> None:
    from distill_guard.extras import EXTRA_OF_MODULE

    project = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"]
    extras = {name: {requirement_name(r) for r in group} for name, group in project["optional-dependencies"].items()}
    providers = packages_distributions()
    wrong = {
        module: extra
        for module, extra in EXTRA_OF_MODULE.items()
        if providers[module][0].lower().replace("_", "-") not in extras[extra]
    }
    assert wrong == {}
    core, _ = declared()
    unmapped = {m for m in imported_top_level_modules() if providers[m][0].lower().replace("_", "-") not in core}
    assert unmapped - set(EXTRA_OF_MODULE) == set(), "an extra's module a user could miss without a hint"
