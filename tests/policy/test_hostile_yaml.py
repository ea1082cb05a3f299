"""Hostile YAML is refused with a located error: never a hang, a blow-up or an object constructed."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill_guard.errors import PolicyError
from distill_guard.policy.load import load_policy
from distill_guard.policy.yaml_source import MAX_FILE_BYTES, load_yaml

VALID_HEAD = "apiVersion: distill-guard/v1\nkind: GuardPolicy\nmetadata: {name: p}\n"


def _write(tmp_path: Path, content: str | bytes, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def _error(path: Path) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    return info.value


def test_billion_laughs_alias_bomb_is_refused_at_the_first_anchor(tmp_path: Path) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
    )
    err = _error(_write(tmp_path, bomb))
    assert (err.line, err.column) == (1, 4)
    assert "aliases are not allowed" in str(err)


def test_oversized_file_is_refused_without_parsing(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID_HEAD + "#" * (MAX_FILE_BYTES + 10) + "\n")
    err = _error(path)
    assert "limit" in str(err) and f"{path}:1:1:" in str(err)


def test_python_object_tag_is_refused_and_nothing_is_constructed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = VALID_HEAD + f"x: !!python/object/apply:os.system ['touch {marker}']\n"
    err = _error(_write(tmp_path, payload))
    assert err.line == 4 and "tag" in str(err)
    assert not marker.exists()


def test_custom_local_tag_is_refused(tmp_path: Path) -> None:
    err = _error(_write(tmp_path, VALID_HEAD + "probes: !include other.yaml\n"))
    assert err.line == 4 and "not allowed" in str(err)


def test_duplicate_key_is_refused_naming_both_lines(tmp_path: Path) -> None:
    text = VALID_HEAD + "halt:\n  action: stop\n  action: warn\n"
    err = _error(_write(tmp_path, text))
    assert (err.line, err.column) == (6, 3)
    assert "duplicate key 'action' (first defined at line 5)" in str(err)


def test_duplicate_top_level_key_is_refused(tmp_path: Path) -> None:
    err = _error(_write(tmp_path, VALID_HEAD + "kind: Other\n"))
    assert err.line == 4 and "duplicate key 'kind'" in str(err)


@pytest.mark.parametrize(("content", "what"), [("- a\n- b\n", "a list"), ("just text\n", "a single value")])
def test_non_mapping_root_is_refused(tmp_path: Path, content: str, what: str) -> None:
    err = _error(_write(tmp_path, content))
    assert f"root must be a mapping, not {what}" in str(err)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    assert "empty" in str(_error(_write(tmp_path, "")))


def test_binary_junk_is_refused(tmp_path: Path) -> None:
    err = _error(_write(tmp_path, bytes(range(256)) * 4))
    assert "binary" in str(err)


def test_nul_byte_in_text_is_located(tmp_path: Path) -> None:
    err = _error(_write(tmp_path, VALID_HEAD + "x: a\x00b\n"))
    assert (err.line, err.column) == (4, 5)


def test_deep_nesting_is_refused_not_a_recursion_crash(tmp_path: Path) -> None:
    err = _error(_write(tmp_path, "a: " + "[" * 5000 + "]" * 5000 + "\n"))
    assert "nesting deeper" in str(err)


def test_merge_key_is_refused(tmp_path: Path) -> None:
    err = _error(_write(tmp_path, VALID_HEAD + "halt:\n  <<: {action: warn}\n"))
    assert "merge keys" in str(err) or "aliases" in str(err)


def test_yaml_syntax_error_is_located(tmp_path: Path) -> None:
    err = _error(_write(tmp_path, VALID_HEAD + "halt: [stop\n"))
    assert "YAML syntax error" in str(err) and err.line >= 4


def test_multiple_documents_are_refused(tmp_path: Path) -> None:
    err = _error(_write(tmp_path, VALID_HEAD + "---\n" + VALID_HEAD))
    assert "YAML" in str(err)


def test_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read file"):
        load_yaml(tmp_path / "nope.yaml")
