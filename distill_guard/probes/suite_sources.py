"""Where suites and user probe functions come from: `builtin:NAME`, a suite file, or `module:function`."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distill_guard.errors import DistillGuardError
from distill_guard.input_files import written_path
from distill_guard.policy.builtin_suites import BUILTIN_PREFIX, BUILTIN_SUITES
from distill_guard.policy.probe_suite import LoadedSuite, load_suite

PythonProbe = Callable[..., "list[float] | dict[str, float]"]


def load_builtin(name: str) -> LoadedSuite:
    suite = BUILTIN_SUITES.get(name.removeprefix(BUILTIN_PREFIX))
    if suite is None:
        known = ", ".join(sorted(BUILTIN_SUITES))
        raise DistillGuardError(f"unknown builtin suite '{name}'; known: {known}")
    return load_suite(suite.path())


def load_suite_reference(reference: str, *, relative_to: Path | None = None) -> LoadedSuite:
    """`builtin:NAME` or a path (relative paths read from `relative_to`, e.g. the policy's folder)."""
    if reference.startswith(BUILTIN_PREFIX):
        return load_builtin(reference)
    return load_suite(Path(reference) if relative_to is None else written_path(reference, relative_to))


def resolve_function(reference: str, *, suite_dir: Path | None = None) -> PythonProbe:
    """Import `module:function`; a module file next to the suite is found before installed packages."""
    module_name, _, function_name = reference.partition(":")
    module = _module_beside(module_name, suite_dir) or _import(module_name)
    function = getattr(module, function_name, None)
    if not callable(function):
        raise DistillGuardError(f"python probe '{reference}': module '{module_name}' has no function '{function_name}'")
    return function


def _module_beside(module_name: str, suite_dir: Path | None) -> Any:
    if suite_dir is None:
        return None
    file = suite_dir.joinpath(*module_name.split(".")).with_suffix(".py")
    if not file.is_file():
        return None
    key = f"distill_guard_user_probe.{file.resolve()}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module


def _import(module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise DistillGuardError(f"python probe: cannot import module '{module_name}': {exc}") from None
