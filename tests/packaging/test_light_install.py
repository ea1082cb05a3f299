"""The core install is the review tooling: from the built wheel, without the `train` extra, into a fresh
virtualenv that cannot see torch, the pre-commit hook's command validates the shipped policies, manifests
are written and verified, and the PrometheusRule export passes the operator's schema.

No download: the fresh venv gets links to exactly the distributions the wheel's core requirements
resolve to (read from its METADATA, followed through each dependency's own requirements) out of the
environment running the tests, and pip installs the wheel with `--no-index`, so a core requirement
the wheel declares but the closure lacks (torch, say) fails the install itself.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import sysconfig
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO
from tests.packaging.conftest import run
from tests.support.prometheus_operator import problems

pytestmark = pytest.mark.slow  # builds the wheel (shared with test_wheel.py); about ten seconds


def core_requirements(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(name).decode("utf-8"))
    return [Requirement(line) for line in metadata.get_all("Requires-Dist") or []]


def applies(requirement: Requirement) -> bool:
    """A requirement of the plain install: its marker holds here with no extra asked for."""
    return requirement.marker is None or requirement.marker.evaluate({"extra": ""})


def closure(requirements: list[Requirement]) -> dict[str, importlib.metadata.Distribution]:
    """Every installed distribution the requirements pull in, through each one's own requirements."""
    found: dict[str, importlib.metadata.Distribution] = {}
    todo = [r for r in requirements if applies(r)]
    while todo:
        requirement = todo.pop()
        key = canonicalize_name(requirement.name)
        if key in found:
            continue
        found[key] = importlib.metadata.distribution(requirement.name)
        todo += [r for r in map(Requirement, found[key].requires or []) if applies(r)]
    return found


def link_into(site: Path, distribution: importlib.metadata.Distribution) -> None:
    """The distribution's top-level files and folders (package, .dist-info) linked into `site`."""
    assert distribution.files, f"{distribution.metadata['Name']} has no RECORD to link from"
    for top in {f.parts[0] for f in distribution.files if f.parts[0] != ".."}:
        if not (site / top).exists():
            (site / top).symlink_to(Path(str(distribution.locate_file(top))))


@pytest.fixture(scope="module")
def light(built_wheel: Path, clean_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin folder of a fresh venv holding the wheel and only its core dependencies."""
    target = tmp_path_factory.mktemp("light") / "venv"
    venv.create(target, system_site_packages=False, with_pip=False)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(target), "platbase": str(target)}))
    for distribution in closure(core_requirements(built_wheel)).values():
        link_into(site, distribution)
    python = target / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-index", str(built_wheel)]
    run(install, target, clean_env)
    return target / "bin"


def test_the_core_install_declares_no_training_stack(built_wheel: Path) -> None:
    pulled = set(closure(core_requirements(built_wheel)))
    assert pulled & {"torch", "transformers", "numpy", "scipy", "pyarrow", "datasets", "nvidia-cublas-cu12"} == set()


def test_the_pre_commit_hook_command_validates_the_shipped_policies_without_torch(
    light: Path, clean_env: dict[str, str], tmp_path: Path
) -> None:
    python = str(light / "python")
    absent = "import importlib.util as u; print([m for m in ('torch', 'transformers') if u.find_spec(m)])"
    assert run([python, "-c", absent], tmp_path, clean_env).stdout.strip() == "[]"
    where = "import distill_guard.bundled as b; print(b.data_path('policies'))"
    policies = Path(run([python, "-c", where], tmp_path, clean_env).stdout.strip())
    assert str(light.parent) in str(policies) and str(REPO) not in str(policies)
    shipped = sorted(str(p) for p in policies.glob("*.yaml"))
    assert [Path(p).name for p in shipped] == sorted(p.name for p in (REPO / "policies").glob("*.yaml"))
    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text("utf-8"))
    entry = hook["entry"].split()  # pre-commit runs the entry with the changed file names appended
    assert entry[0] == "distill-guard"
    validated = run([str(light / entry[0]), *entry[1:], *shipped], tmp_path, clean_env)
    assert validated.stdout.count(": ok") == len(shipped)


def test_the_core_install_writes_and_verifies_a_manifest(
    light: Path, clean_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "numbers.jsonl").write_text('{"text": "1 2 3"}\n', "utf-8")
    create = ["manifest", "create", "numbers.jsonl", "--out", "m.yaml", "--name", "n", "--version", "1"]
    run([str(light / "distill-guard"), *create, "--generator", "a/b"], tmp_path, clean_env)
    run([str(light / "distill-guard"), "manifest", "verify", "m.yaml"], tmp_path, clean_env)


def test_the_core_install_exports_a_prometheusrule_the_operators_schema_accepts(
    light: Path, clean_env: dict[str, str], tmp_path: Path
) -> None:
    run([str(light / "distill-guard"), "export", "prometheusrule", "--namespace", "monitoring"], tmp_path, clean_env)
    rule = yaml.safe_load((tmp_path / "distill-guard-prometheusrule.yaml").read_text("utf-8"))
    assert rule["spec"]["groups"] and problems("prometheusrules", rule) == []


def test_a_command_that_needs_the_training_stack_says_how_to_install_it(
    light: Path, clean_env: dict[str, str], tmp_path: Path
) -> None:

    checked = subprocess.run(
        [str(light / "distill-guard"), "check", "--help"], cwd=tmp_path, env=clean_env, capture_output=True, text=True
    )
    assert checked.returncode == 1 and 'pip install "distill-guard[train]"' in checked.stderr
    assert "Traceback" not in checked.stderr
    library = subprocess.run(
        [str(light / "python"), "-c", "import distill_guard; distill_guard.DistillGuard"],
        cwd=tmp_path,
        env=clean_env,
        capture_output=True,
        text=True,
    )
    assert library.returncode == 1 and 'pip install "distill-guard[train]"' in library.stderr
