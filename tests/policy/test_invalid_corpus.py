"""Every file in tests/policy/invalid is refused with the expected message at the expected place.

Each file's first line is `# expect: LINE:COL: text`; the CLI must print `FILE:LINE:COL:` with it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distill_guard.cli.main import app
from distill_guard.policy.load import validate_policy_file

CORPUS = sorted((Path(__file__).parent / "invalid").glob("*.yaml"))
EXPECT = re.compile(r"^# expect: (\d+):(\d+): (.+)$")


def _expectation(path: Path) -> tuple[int, int, str]:
    match = EXPECT.match(path.read_text().splitlines()[0])
    assert match, f"{path} has no '# expect: LINE:COL: text' first line"
    return int(match[1]), int(match[2]), match[3]


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 25


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_invalid_policy_is_reported_at_its_location(path: Path) -> None:
    line, column, text = _expectation(path)
    errors = [i for i in validate_policy_file(path) if i.severity == "error"]
    assert any(i.line == line and i.column == column and text in i.message for i in errors), [str(i) for i in errors]


@pytest.mark.parametrize("path", CORPUS[:5], ids=[p.stem for p in CORPUS[:5]])
def test_cli_exits_1_and_prints_file_line_col(path: Path) -> None:
    line, column, text = _expectation(path)
    result = CliRunner().invoke(app, ["policy", "validate", str(path)])
    assert result.exit_code == 1
    assert f"{path}:{line}:{column}: " in result.output
    assert text in result.output
