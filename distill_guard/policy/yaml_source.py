"""Load untrusted YAML into plain Python data while keeping where each value came from.

Policies are reviewed by people and read by machines, so the two must agree: duplicate keys
(a reviewer reads the first, a plain loader keeps the last), anchors and aliases (which make
"billion laughs" bombs possible), custom tags (which construct objects) and non-text input are
refused here, before any value reaches a schema.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from distill_guard.errors import PolicyError, SourceIssue
from distill_guard.input_files import InputFileError, read_bounded

MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 200_000
MAX_INT_DIGITS = 30

_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
# Characters that can rewrite a terminal line or make text read differently from what it is:
# C0/C1 controls (ANSI escapes start with ESC or CSI), bidi overrides and isolates ("Trojan
# Source" reordering) and lone surrogates (unencodable as UTF-8). Keys also refuse zero-width ones.
_UNSAFE_IN_VALUES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_UNSAFE_IN_KEYS = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\ud800-\udfff]")

Path_ = tuple[str | int, ...]

_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

_ALLOWED_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
}


@dataclass(frozen=True)
class Mark:
    line: int
    column: int


@dataclass
class YamlDocument:
    """Plain data (dicts, lists, scalars) plus the 1-based position of every key and value."""

    file: str
    data: dict[str, Any]
    key_marks: dict[Path_, Mark] = field(default_factory=dict)
    value_marks: dict[Path_, Mark] = field(default_factory=dict)

    def locate(self, path: Path_, *, prefer_key: bool = True) -> Mark:
        """The most precise position known for `path`, walking up to a parent when needed."""
        probe = tuple(path)
        while True:
            table = (self.key_marks, self.value_marks) if prefer_key else (self.value_marks, self.key_marks)
            for marks in table:
                if probe in marks:
                    return marks[probe]
            if not probe:
                return Mark(1, 1)
            probe = probe[:-1]

    def issue(self, path: Path_, message: str, *, severity: str = "error", prefer_key: bool = True) -> SourceIssue:
        mark = self.locate(path, prefer_key=prefer_key)
        return SourceIssue(self.file, mark.line, mark.column, message, severity)


class _GuardedLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases and tracks nesting depth while composing."""

    def __init__(self, stream: str, file: str) -> None:
        super().__init__(stream)
        self._file = file
        self._depth = 0
        self._nodes = 0

    def _fail(self, mark: yaml.Mark | None, message: str) -> PolicyError:
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return PolicyError([SourceIssue(self._file, line, col, message)])

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:  # type: ignore[override]
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise self._fail(event.start_mark, "anchors and aliases are not allowed (they enable alias bombs)")
        if getattr(event, "anchor", None):
            raise self._fail(event.start_mark, "anchors and aliases are not allowed (they enable alias bombs)")
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise self._fail(event.start_mark, f"document has more than {MAX_NODES} nodes")
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise self._fail(event.start_mark, f"nesting deeper than {MAX_DEPTH} levels")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _read_text(path: Path, display: str) -> str:
    def fail(message: str) -> PolicyError:
        return PolicyError([SourceIssue(display, 1, 1, message)])

    try:
        raw = read_bounded(path, MAX_FILE_BYTES)
    except InputFileError as exc:
        raise fail(exc.reason) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise fail(f"not UTF-8 text (invalid byte at offset {exc.start}); is this a binary file?") from None
    bad = _CONTROL_CHARS.search(text)
    if bad:
        offset = bad.start()
        line = text.count("\n", 0, offset) + 1
        column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        message = f"control character U+{ord(bad.group()):04X}; is this a binary file?"
        raise PolicyError([SourceIssue(display, line, column, message)])
    return text


def _number_problem(node: ScalarNode) -> str | None:
    """YAML 1.1 readings a reviewer would not expect, refused before they become values."""
    text = node.value.replace("_", "").lstrip("+-")
    if node.tag == _INT_TAG:
        if len(text) > MAX_INT_DIGITS:
            return f"integer with {len(text)} digits; the limit is {MAX_INT_DIGITS} digits"
        if ":" in text:
            read_as = _sexagesimal(text)
            return f"'{node.value}' is a YAML 1.1 base-60 number (read as {read_as}); quote it or write the number"
        if len(text) > 1 and text[0] == "0" and text[1:].isdigit():
            read_as = int(text, 8)
            return f"'{node.value}' is a YAML 1.1 octal number (read as {read_as}); write it without the leading 0"
    if node.tag == _FLOAT_TAG and ":" in text:
        return f"'{node.value}' is a YAML 1.1 base-60 number; quote it or write the number"
    return None


def _sexagesimal(text: str) -> int:
    value = 0
    for part in text.split(":"):
        value = value * 60 + int(part or "0")
    return value


def _scalar(node: ScalarNode, doc: YamlDocument, loader: _GuardedLoader) -> Any:
    problem = _number_problem(node)
    if problem:
        raise PolicyError([doc_issue(doc, node, problem)])
    if node.tag == "tag:yaml.org,2002:timestamp":
        try:
            return loader.construct_object(node, deep=True)
        except ValueError:
            return node.value  # left as text so the schema reports the malformed date where it is used
    value = loader.construct_object(node, deep=True)
    if isinstance(value, float) and not math.isfinite(value):
        raise PolicyError([doc_issue(doc, node, f"'{node.value}' is not a finite number")])
    if isinstance(value, str):
        _refuse_unsafe_text(value, node, doc, _UNSAFE_IN_VALUES)
    return value


def _refuse_unsafe_text(value: str, node: Node, doc: YamlDocument, unsafe: re.Pattern[str]) -> None:
    bad = unsafe.search(value)
    if bad:
        code = ord(bad.group())
        what = "lone surrogate" if 0xD800 <= code <= 0xDFFF else "control or invisible character"
        message = f"{what} U+{code:04X} in text; terminal escapes and bidi overrides are not allowed"
        raise PolicyError([doc_issue(doc, node, message)])


def _build(node: Node, path: Path_, doc: YamlDocument, loader: _GuardedLoader) -> Any:
    if node.tag not in _ALLOWED_TAGS:
        raise PolicyError([doc_issue(doc, node, f"tag {node.tag!r} is not allowed; write plain YAML values")])
    doc.value_marks[path] = Mark(node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise PolicyError([doc_issue(doc, key_node, "merge keys ('<<') are not allowed")])
            if not isinstance(key_node, ScalarNode) or key_node.tag not in _ALLOWED_TAGS:
                raise PolicyError([doc_issue(doc, key_node, "mapping keys must be plain strings")])
            key = str(loader.construct_scalar(key_node))
            _refuse_unsafe_text(key, key_node, doc, _UNSAFE_IN_KEYS)
            key_mark = Mark(key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in result:
                first = doc.key_marks[(*path, key)]
                raise PolicyError(
                    [
                        SourceIssue(
                            doc.file,
                            key_mark.line,
                            key_mark.column,
                            f"duplicate key '{key}' (first defined at line {first.line}); "
                            "a reader would see one value and the loader another",
                        )
                    ]
                )
            doc.key_marks[(*path, key)] = key_mark
            result[key] = _build(value_node, (*path, key), doc, loader)
        return result
    if isinstance(node, SequenceNode):
        return [_build(item, (*path, i), doc, loader) for i, item in enumerate(node.value)]
    assert isinstance(node, ScalarNode)
    return _scalar(node, doc, loader)


def doc_issue(doc: YamlDocument, node: Node, message: str) -> SourceIssue:
    return SourceIssue(doc.file, node.start_mark.line + 1, node.start_mark.column + 1, message)


def load_yaml(path: str | Path, *, display: str | None = None) -> YamlDocument:
    """Parse one YAML mapping from `path`, refusing hostile input with a located PolicyError."""
    path = Path(path)
    shown = display or str(path)
    return parse_yaml(_read_text(path, shown), shown)


def parse_yaml(text: str, shown: str) -> YamlDocument:
    """Parse one YAML mapping from `text` (read from the file named `shown`) with the same guards."""
    loader = _GuardedLoader(text, shown)
    doc = YamlDocument(file=shown, data={})
    try:
        root = loader.get_single_node()
        if root is None:
            raise PolicyError([SourceIssue(shown, 1, 1, "file is empty; expected a mapping")])
        if not isinstance(root, MappingNode):
            kind = "a list" if isinstance(root, SequenceNode) else "a single value"
            raise PolicyError([doc_issue(doc, root, f"the document root must be a mapping, not {kind}")])
        doc.data = _build(root, (), doc, loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        raise PolicyError([SourceIssue(shown, line, col, f"YAML syntax error: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise PolicyError([SourceIssue(shown, 1, 1, f"YAML error: {exc}")]) from None
    except RecursionError:
        raise PolicyError([SourceIssue(shown, 1, 1, f"nesting deeper than {MAX_DEPTH} levels")]) from None
    finally:
        loader.dispose()
    return doc
