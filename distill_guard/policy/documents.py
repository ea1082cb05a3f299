"""Turn a located YAML document into a validated model, with every error as FILE:LINE:COL."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from distill_guard.errors import PolicyError, SourceIssue
from distill_guard.policy.yaml_source import Path_, YamlDocument, load_yaml

SchemaT = TypeVar("SchemaT", bound=BaseModel)


def _dotted(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(root)"


def _clean_loc(loc: tuple[Any, ...]) -> Path_:
    """Drop pydantic's union-branch and function-validator names, which are not keys in the file."""
    return tuple(p for p in loc if isinstance(p, int) or not str(p).startswith(("function-", "tagged-union[")))


def validation_issues(doc: YamlDocument, error: ValidationError) -> list[SourceIssue]:
    """One SourceIssue per pydantic error, located at the offending key (or its nearest parent)."""
    issues: list[SourceIssue] = []
    for err in error.errors(include_url=False):
        loc = _clean_loc(err["loc"])
        loc = _strip_branch_tags(loc, doc)
        message = err["msg"]
        if err["type"] == "union_tag_invalid":
            loc = (*loc, str(err["ctx"]["discriminator"]).strip("'"))
        if err["type"] == "missing":
            message = f"missing required key '{loc[-1]}'" if loc else "missing required key"
        elif message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        where = _dotted(loc)
        issues.append(doc.issue(loc, f"{where}: {message}"))
    return _dedupe(issues)


def _strip_branch_tags(loc: Path_, doc: YamlDocument) -> Path_:
    """Remove discriminator tags pydantic inserts (e.g. 'http' in metrics.prometheus.http.port)."""
    out: list[str | int] = []
    for part in loc:
        candidate = (*out, part)
        if isinstance(part, str) and candidate not in doc.key_marks and tuple(out) in doc.value_marks:
            parent = _value_at(doc.data, tuple(out))
            if (
                isinstance(parent, dict)
                and part not in parent
                and any(isinstance(v, str) and v == part for v in parent.values())
            ):
                continue
        out.append(part)
    return tuple(out)


def _value_at(data: Any, path: Path_) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _dedupe(issues: list[SourceIssue]) -> list[SourceIssue]:
    seen: set[tuple[int, int, str]] = set()
    unique = []
    for issue in issues:
        key = (issue.line, issue.column, issue.message)
        if key not in seen:
            seen.add(key)
            unique.append(issue)
    return unique


def parse_document(doc: YamlDocument, model: type[SchemaT], context: dict[str, Any] | None = None) -> SchemaT:
    """Validate `doc` against `model`, raising one PolicyError that lists every problem."""
    try:
        return model.model_validate(doc.data, context={"doc": doc, **(context or {})})
    except ValidationError as exc:
        raise PolicyError(validation_issues(doc, exc)) from None


def load_validated(
    path: str | Path, model: type[SchemaT], context: dict[str, Any] | None = None
) -> tuple[SchemaT, YamlDocument]:
    """Load a YAML file and validate it; returns the model and the located document."""
    doc = load_yaml(path)
    return parse_document(doc, model, context), doc
