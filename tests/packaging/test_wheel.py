"""The built wheel is the whole product: installed into a fresh virtualenv, away from the checkout,
`distill-guard demo --fast` runs and `distill-guard export` writes the shipped files.

The fresh venv takes its dependencies (torch, transformers, ...) from the environment running the
tests, so the test costs a build and an install, not a download: `--system-site-packages` for
system-wide packages, plus a path file naming this interpreter's site-packages when that is itself
a venv. Only distill-guard comes from the wheel, which the test checks.
"""

from __future__ import annotations

import json
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.packaging.conftest import run
from tests.support.prometheus_operator import problems


@pytest.fixture(scope="module")
def installed(
    built_wheel: Path, clean_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, str]]:
    """(bin folder of a fresh venv holding the wheel, an environment without the checkout on any path)."""
    target = tmp_path_factory.mktemp("full") / "venv"
    venv.create(target, system_site_packages=True, with_pip=False)
    fresh = Path(sysconfig.get_path("purelib", vars={"base": str(target), "platbase": str(target)}))
    if sys.prefix != sys.base_prefix:  # the environment's packages, after the venv's own
        (fresh / "environment.pth").write_text(sysconfig.get_path("purelib") + "\n", "utf-8")
    python = target / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(built_wheel)]
    run(install, target, clean_env)
    return target / "bin", clean_env


@pytest.mark.slow
def test_the_installed_wheel_runs_the_demo_and_exports_from_another_folder(
    installed: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    bin_dir, env = installed
    where = "import distill_guard, distill_guard.bundled as b; print(distill_guard.__file__, b.data_path())"
    origin = run([str(bin_dir / "python"), "-c", where], tmp_path, env).stdout
    assert str(bin_dir.parent) in origin and str(REPO) not in origin, (
        f"distill_guard must come from the wheel: {origin}"
    )

    run([str(bin_dir / "distill-guard"), "export", "schema"], tmp_path, env)
    assert json.loads((tmp_path / "schema.json").read_text("utf-8"))["$id"].endswith("schema.json")
    run([str(bin_dir / "distill-guard"), "export", "prometheusrule"], tmp_path, env)
    rule = yaml.safe_load((tmp_path / "distill-guard-prometheusrule.yaml").read_text("utf-8"))
    assert rule["kind"] == "PrometheusRule" and rule["spec"]["groups"][0]["rules"]
    assert problems("prometheusrules", rule) == [], "the operator's CRD schema must accept it"

    run([str(bin_dir / "distill-guard"), "demo", "--fast", "--out", "demo"], tmp_path, env)
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text("utf-8"))
    assert summary["as_expected"] is True
    judged = [s["outcome"] for s in summary["steps"] if s["expected"] != "not judged"]  # different-init: shown only
    assert judged == ["denied", "halted", "completed", "halted", "completed"]
