"""The package is layered: every import, at module or function level, points down the list below.

A subpackage (or top-level module) may import from its own subpackage and from lower layers,
never from its own layer or a higher one, so no import loop can form between subpackages.
Imports inside `if TYPE_CHECKING:` are annotations only and never run; they are skipped.
The same order is written down in docs/architecture.md.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "distill_guard"

LAYERS: list[set[str]] = [
    {"errors", "_version", "model_identity", "bundled", "extras", "quarantine"},  # foundations: no own imports
    {
        "atomic_files",
        "input_files",
        "row_files",
        "checkpoint_loading",
    },  # untrusted files in, whole files out; a saved model in
    {"policy"},  # reviewed file formats: GuardPolicy, ProbeSuite, DatasetProvenance, built-in suites
    {"dist"},  # rank logic and every collective
    {"probes"},  # probe kinds and the scoring engine
    {"screening"},  # a dataset's gradients along the probes' gradients, before training
    {"drift", "provenance"},  # probe scores -> halt decisions; data provenance -> gate decisions
    {"export"},  # audit log and Prometheus
    {"report"},  # reports of a run read back from its audit log (HTML, PNG, Markdown, JSON)
    {"exits"},  # which ways out (saves, pushes, uploads) a halted model still has
    {"callback"},  # the Trainer callback wiring the layers above
    {"scenarios"},  # tiny end-to-end runs built on the guard
    {"calibration"},  # benign runs under a policy's probes: the measured null
    {"cli"},  # the distill-guard command
    {"__init__"},  # the public face
]
LAYER_OF = {unit: index for index, units in enumerate(LAYERS) for unit in units}


def unit_of(module: str) -> str:
    """`distill_guard.probes.kinds.choice` -> `probes`; the package itself -> `__init__`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every distill_guard import that can run, at any depth (functions included)."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "distill_guard")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("distill_guard"):
            if node.module == "distill_guard":  # `from distill_guard import dist` names a submodule
                found.extend((node.lineno, f"distill_guard.{a.name}") for a in node.names)
            else:
                found.append((node.lineno, str(node.module)))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text("utf-8"), filename=str(path)))
    return found


def back_edges() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = module_name(path)
        own = unit_of(source)
        if own not in LAYER_OF:
            problems.append(f"{path.relative_to(PACKAGE.parent)}: '{own}' is in no layer")
            continue
        for line, target in imported_modules(path):
            other = unit_of(target)
            if other == own:
                continue
            if other not in LAYER_OF or LAYER_OF[other] >= LAYER_OF[own]:
                problems.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {own} imports {target}")
    return problems


def test_every_import_points_down_the_layers() -> None:
    assert back_edges() == []


def test_every_module_belongs_to_a_layer() -> None:
    units = {unit_of(module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert units == set(LAYER_OF)


def test_the_walker_sees_function_level_imports(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import distill_guard.callback\n"
        "def f():\n    from distill_guard.probes import prepared\n"
    )
    assert imported_modules(source) == [(5, "distill_guard.probes")]
