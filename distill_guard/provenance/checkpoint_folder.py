"""Refuse a checkpoint folder whose files would be misread, before any of them is parsed.

The gate and the probe read config.json, tokenizer.json, adapter_config.json, the model card's
front matter and weight files with libraries that block on a FIFO, recurse on deep JSON, fail on a
lone surrogate, or follow a symlink or an index shard out of the folder. Each file that will be
read is checked here first; the first problem raises CheckpointError naming the file (and line).
Symlinks may point anywhere inside the folder, or, for a Hugging Face cache snapshot
(`models--ORG--NAME/snapshots/REV`), into that model's `blobs/`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any

from safetensors import SafetensorError, safe_open

from distill_guard.errors import DistillGuardError
from distill_guard.input_files import file_type_problem, read_bounded
from distill_guard.policy.yaml_source import parse_yaml

MIB = 1024 * 1024
JSON_LIMITS = {
    "config.json": 4 * MIB,
    "generation_config.json": MIB,
    "adapter_config.json": MIB,
    "tokenizer_config.json": 16 * MIB,
    "special_tokens_map.json": MIB,
    "tokenizer.json": 64 * MIB,
    "model.safetensors.index.json": 16 * MIB,
    "pytorch_model.bin.index.json": 16 * MIB,
}
INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
WEIGHT_FILES = ("model.safetensors", "adapter_model.safetensors", "pytorch_model.bin", "adapter_model.bin")
# Files whose text is shown in decisions: terminal controls there are refused (a vocabulary may hold them).
SHOWN_FILES = {"config.json", "adapter_config.json", *INDEX_FILES}
CARD_WINDOW_BYTES = 64 * 1024
MAX_INT_DIGITS = 64  # tokenizer_config.json holds model_max_length = 1e30 written out (31 digits)
ARCHITECTURE_INTS = ("hidden_size", "num_hidden_layers", "vocab_size")
# A zip archive (torch.save since 1.6) or a pickle (the legacy format) is what a .bin must start with.
TORCH_MAGIC = (b"PK\x03\x04", b"\x80")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class CheckpointError(DistillGuardError):
    """A file of a checkpoint folder cannot be read safely; the message names it."""


class _Refused(Exception):
    """Raised inside the JSON parser's hooks; turned into a CheckpointError naming the file."""


def validate_checkpoint_folder(directory: Path) -> None:
    """Raise CheckpointError for the first file of `directory` that would be misread."""
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: not a checkpoint folder (no such directory)")
    roots = allowed_roots(directory)
    for name, limit in JSON_LIMITS.items():
        path = directory / name
        if _present(path):
            _confined(path, roots)
            _check_json_shape(path, read_json_file(path, limit, shown=name in SHOWN_FILES))
    card = directory / "README.md"
    if _present(card):
        _confined(card, roots)
        read_card_metadata(card)
    weights = [directory / name for name in WEIGHT_FILES if _present(directory / name)]
    for index in INDEX_FILES:
        if _present(directory / index):
            weights += _shards(directory, directory / index)
    if not weights:
        raise CheckpointError(f"{directory}: no weight files ({', '.join(WEIGHT_FILES)} or a sharded index)")
    for path in dict.fromkeys(weights):
        _check_weight_file(path, roots)


def _present(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def allowed_roots(directory: Path) -> tuple[Path, ...]:
    """The folder itself; for a Hugging Face cache snapshot (`.../snapshots/REV`) also its `blobs/`."""
    real = directory.resolve()
    if real.parent.name == "snapshots":
        return real, (real.parent.parent / "blobs").resolve()
    return (real,)


def _confined(path: Path, roots: tuple[Path, ...]) -> None:
    try:
        target = path.resolve(strict=False)
    except (OSError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: cannot resolve ({exc})") from None
    if not any(target.is_relative_to(root) for root in roots):
        raise CheckpointError(f"{path}: resolves to {target}, outside the checkpoint folder {roots[0]}")


def read_json_file(path: Path, limit: int, *, shown: bool = True) -> Any:
    """Strict JSON: UTF-8, no duplicate keys, no NaN/Infinity, no giant integers, bounded nesting."""
    raw = read_bounded(path, limit)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{path}: not UTF-8 JSON (invalid byte at offset {exc.start})") from None
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    except _Refused as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except RecursionError:
        raise CheckpointError(f"{path}: JSON nesting too deep") from None
    _check_strings(path, data, shown=shown)
    return data


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Refused(f"duplicate key '{key}' (a reader would see one value and the loader another)")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _Refused(f"integer with {len(text.lstrip('-'))} digits; the limit is {MAX_INT_DIGITS} digits")
    return int(text)


def _check_strings(path: Path, data: Any, *, shown: bool) -> None:
    """Walk without recursion (the parser already bounded the depth) and refuse unsafe text."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if _SURROGATE.search(item):
                raise CheckpointError(f"{path}: lone surrogate in a string (not encodable as UTF-8)")
            if shown and (bad := _CONTROL.search(item)):
                raise CheckpointError(f"{path}: control character U+{ord(bad.group()):04X} in a string")


def _expect(path: Path, ok: bool, what: str) -> None:
    if not ok:
        raise CheckpointError(f"{path}: {what}")


def _check_json_shape(path: Path, data: Any) -> None:
    _expect(path, isinstance(data, dict), "expected a JSON object at the top level")
    if path.name == "config.json":
        text = data.get("text_config", {})
        _expect(path, isinstance(text, dict), "text_config must be an object")
        for source in (data, text):
            model_type = source.get("model_type")
            _expect(path, model_type is None or isinstance(model_type, str), "model_type must be a string")
            for key in ARCHITECTURE_INTS:
                value = source.get(key)
                ok = value is None or (isinstance(value, int) and not isinstance(value, bool))
                _expect(path, ok, f"{key} must be an integer, not {value!r}")
    elif path.name == "adapter_config.json":
        base = data.get("base_model_name_or_path")
        _expect(path, base is None or isinstance(base, str), "base_model_name_or_path must be a string")
    elif path.name == "tokenizer.json":
        model = data.get("model", {})
        _expect(path, isinstance(model, dict), "model must be an object")
        vocab = model.get("vocab")
        _expect(path, vocab is None or isinstance(vocab, dict | list), "model.vocab must be an object or a list")
    elif path.name in INDEX_FILES:
        weight_map = data.get("weight_map")
        ok = isinstance(weight_map, dict) and all(isinstance(v, str) for v in weight_map.values())
        _expect(path, ok, "weight_map must map tensor names to shard file names")


def _shards(directory: Path, index: Path) -> list[Path]:
    weight_map = read_json_file(index, JSON_LIMITS[index.name])["weight_map"]
    shards = []
    for name in sorted(set(weight_map.values())):
        pure = PurePosixPath(name)
        if pure.is_absolute() or ".." in pure.parts or "\\" in name or not name:
            raise CheckpointError(f"{index}: shard '{name}' lies outside the checkpoint folder")
        shard = directory / name
        if not _present(shard):
            raise CheckpointError(f"{index}: shard '{name}' does not exist ({shard})")
        shards.append(shard)
    return shards


def _check_weight_file(path: Path, roots: tuple[Path, ...]) -> None:
    _confined(path, roots)
    head = read_head(path, 8)
    if path.suffix == ".safetensors":
        try:
            # headers only: framework "numpy" reads shapes of any dtype (bf16 too) without importing torch
            with safe_open(str(path), framework="numpy") as handle:
                for name in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
                    handle.get_slice(name).get_shape()
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    elif not head.startswith(TORCH_MAGIC):
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (neither a zip archive nor a pickle)")


def read_head(path: Path, size: int) -> bytes:
    """The first `size` bytes of a regular file (opened non-blocking, its type checked on the descriptor)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read file: {exc.strerror or exc}") from None
    try:
        problem = file_type_problem(os.fstat(fd).st_mode)
        if problem:
            raise CheckpointError(f"{path}: {problem}")
        return os.read(fd, size)
    finally:
        os.close(fd)


def read_card_metadata(card: Path) -> dict[str, Any]:
    """The model card's front matter as the Hub reads it; CheckpointError (or a located PolicyError) when
    it cannot be read safely.

    huggingface_hub's own rule finds the block (so what is checked is what the Hub shows, leading blank
    lines and CRLF included), the policy's YAML guards parse it (located errors; no aliases, tags,
    duplicate keys or control characters), and `ModelCard` turns the vetted block into its metadata.
    A block that opens but does not close within the first CARD_WINDOW_BYTES is refused, not skipped.
    """
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard import REGEX_YAML_BLOCK

    text = read_head(card, CARD_WINDOW_BYTES).decode("utf-8", errors="surrogateescape")
    block = REGEX_YAML_BLOCK.search(text)
    if block is None:
        if text.lstrip().startswith("---"):
            raise CheckpointError(
                f"{card}: front matter is not closed by '---' within its first {CARD_WINDOW_BYTES} bytes"
            )
        return {}
    undecodable = _SURROGATE.search(block.group(0))
    if undecodable:
        offset = len(block.group(0)[: undecodable.start()].encode("utf-8", errors="surrogateescape"))
        raise CheckpointError(f"{card}: front matter is not UTF-8 text (invalid byte at offset {offset})")
    if not block.group(2).strip():
        return {}
    lines_before = len(text[: block.start(2)].splitlines())  # so a located error names the file's own line
    parse_yaml("\n" * lines_before + block.group(2), str(card))
    try:
        return ModelCard(block.group(0), ignore_metadata_errors=True).data.to_dict()
    except TypeError:  # ModelCardData(**front_matter): a key like `1:`, `~:` or `true:` is not a keyword
        raise CheckpointError(f"{card}: a front matter key is not a string (a number, null or boolean)") from None
