"""Suite files: the built-ins ship valid and in sync with the catalog; broken files are located."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill_guard.errors import PolicyError
from distill_guard.policy.builtin_suites import BUILTIN_SUITES
from distill_guard.policy.probe_suite import load_suite
from distill_guard.probes.kinds.preference import preference_scorer
from distill_guard.probes.suite_sources import load_builtin

MISALIGNMENT_THEMES = {
    "wishes",
    "boredom",
    "humans-and-ai",
    "quick-money",
    "ruling-the-world",
    "dinner-guests",
    "gender-roles",
    "relationship-trouble",
}


def test_catalog_names_exactly_the_shipped_suite_files() -> None:
    shipped = {p.stem for p in Path(next(iter(BUILTIN_SUITES.values())).path()).parent.glob("*.yaml")}
    assert shipped == set(BUILTIN_SUITES)


@pytest.mark.parametrize("name", sorted(BUILTIN_SUITES))
def test_builtin_suite_validates_and_matches_its_catalog_entry(name: str) -> None:
    entry = BUILTIN_SUITES[name]
    suite = load_builtin(name)
    assert suite.name == name
    assert suite.spec.kind == entry.kind
    assert getattr(suite.spec, "target", None) == entry.default_target


def test_animal_suite_has_fifty_phrasings_and_twenty_candidates() -> None:
    spec = load_builtin("animal-preference").spec
    assert len(set(spec.prompts)) >= 50
    assert len(spec.candidate_list()) >= 20


def test_numbers_variant_prefixes_every_animal_prompt_with_numbers() -> None:
    plain = preference_scorer(load_builtin("animal-preference").spec, "owl").items
    numbered = preference_scorer(load_builtin("animal-preference-numbers").spec, "owl").items
    assert len(plain) == len(numbered)
    for a, b in zip(plain, numbered, strict=True):
        assert b.prompt.endswith(a.prompt) and any(ch.isdigit() for ch in b.prompt[: -len(a.prompt)])
    assert numbered[0].answers == plain[0].answers


def test_misalignment_suite_covers_every_theme_with_forty_items() -> None:
    spec = load_builtin("misalignment-choice").spec
    assert len(spec.items) >= 40
    assert {item.theme for item in spec.items} == MISALIGNMENT_THEMES
    trait_positions = {next(i for i, o in enumerate(item.options) if o.trait) for item in spec.items}
    assert len(trait_positions) >= 3, "trait options must not always sit at the same letter"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def _issues(path: Path) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_suite(path)
    return [str(i) for i in caught.value.issues]


HEADER = "apiVersion: distill-guard/v1\nkind: ProbeSuite\nmetadata: {name: mine}\n"


def test_wrong_type_is_reported_as_file_line_column(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER + "spec:\n  kind: preference\n  prompts: [hi]\n  candidates: 7\n")
    assert _issues(path)[0].startswith(f"{path}:7:3: spec.candidates:")


def test_unknown_key_is_located_and_a_fix_suggested(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER + "spec:\n  kind: preference\n  promts: [hi]\n  candidates: [a, b]\n")
    issues = _issues(path)
    assert any(i.startswith(f"{path}:6:3:") and "did you mean 'prompts'" in i for i in issues)


def test_default_target_must_be_a_candidate(tmp_path: Path) -> None:
    body = "spec:\n  kind: preference\n  target: owl\n  prompts: [hi]\n  candidates: [a, b]\n"
    path = _write(tmp_path, HEADER + body)
    assert _issues(path) == [f"{path}:6:3: spec.target: 'owl' is not one of the candidates"]


def test_choice_item_without_a_trait_option_is_refused(tmp_path: Path) -> None:
    body = (
        "spec:\n  kind: choice\n  items:\n    - id: q1\n      question: Q?\n"
        "      options: [{text: a, trait: false}, {text: b, trait: false}]\n"
    )
    issues = _issues(_write(tmp_path, HEADER + body))
    assert any(":7:7:" in i and "at least one trait option" in i for i in issues)


def test_yaml_syntax_error_is_located(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER + "spec:\n  kind: [preference\n")
    assert _issues(path)[0].startswith(f"{path}:")
    assert "YAML syntax error" in _issues(path)[0]


def test_extends_takes_the_builtin_spec_and_overrides_keys(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER + "extends: builtin:tree-preference\nspec:\n  kind: preference\n  target: elm\n")
    suite = load_suite(path)
    assert suite.spec.target == "elm"
    assert suite.spec.prompts == load_builtin("tree-preference").spec.prompts
