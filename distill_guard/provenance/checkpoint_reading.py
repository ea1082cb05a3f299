"""Read a checkpoint folder's weights and vocabulary without trusting the folder.

A teacher folder comes from whoever produced the data, so every path it names is confined to the
folder (no `..`, no absolute shard paths, no symlink leading out, except a Hugging Face cache
snapshot's links into its own `blobs/`), `pytorch_model.bin` is read with `weights_only=True` (no
pickled code runs), and when a folder holds several weight sets that differ (a decoy
`model.safetensors` beside the real `.bin`) every set is returned, so no single file decides.
A folder whose weights cannot be read yields a reason instead of weights, never an empty result.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from distill_guard.provenance.checkpoint_folder import allowed_roots

SAFETENSORS = "model.safetensors"
BIN = "pytorch_model.bin"
INDEX_SUFFIX = ".index.json"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
MAX_JSON_BYTES = 64 * 1024 * 1024
WHOLE_TENSOR_FRACTION = 8

Fetch = Callable[[str], torch.Tensor]
FetchRows = Callable[[str, list[int]], torch.Tensor]


class UnreadableCheckpoint(Exception):
    """A weight or tokenizer file that exists but must not or cannot be read; the message says which and why."""


@dataclass(frozen=True)
class WeightSet:
    """One set of weights transformers could load from a folder: 2-D+ tensors by name, read lazily."""

    label: str
    shapes: Mapping[str, tuple[int, ...]]
    fetch: Fetch
    fetch_rows: FetchRows | None = None

    def rows(self, name: str, index: list[int]) -> torch.Tensor:
        """Some rows of a tensor; from safetensors only those rows are read, so a huge checkpoint costs megabytes."""
        return self.fetch_rows(name, index) if self.fetch_rows is not None else self.fetch(name)[index]


@dataclass(frozen=True)
class CheckpointWeights:
    """The weight sets of a folder (one, or several that differ), or why there are none."""

    sets: tuple[WeightSet, ...] = ()
    problem: str | None = None
    adapter_base: str | None = None


def confined(root: Path, relative: str) -> Path:
    """`root/relative`, refusing absolute paths, `..` and symlinks that resolve outside `root`."""
    candidate = Path(relative)
    if candidate.is_absolute() or ".." in candidate.parts or not relative:
        raise UnreadableCheckpoint(f"{root}: weight path '{relative}' leaves the checkpoint folder")
    path = root / candidate
    resolved = path.resolve()
    if not any(resolved.is_relative_to(allowed) for allowed in allowed_roots(root)):
        raise UnreadableCheckpoint(f"{path}: a symlink to {resolved}, outside the checkpoint folder")
    return path


def read_json(path: Path) -> Any:
    """Parsed JSON of a small file; UnreadableCheckpoint naming the file when it is too big or malformed."""
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise UnreadableCheckpoint(f"{path}: larger than {MAX_JSON_BYTES} bytes")
        return json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise UnreadableCheckpoint(f"{path}: not readable JSON ({error})") from None


def _shard_names(root: Path, index_name: str) -> list[str]:
    data = read_json(confined(root, index_name))
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise UnreadableCheckpoint(f"{root / index_name}: no 'weight_map' object")
    if not all(isinstance(v, str) for v in weight_map.values()):
        raise UnreadableCheckpoint(f"{root / index_name}: a 'weight_map' value is not a file name")
    return sorted(set(weight_map.values()))


def _safetensors_set(root: Path, files: list[str], label: str) -> WeightSet:
    where: dict[str, Path] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    for name in files:
        path = confined(root, name)
        try:
            with safe_open(str(path), framework="pt") as handle:
                for key in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
                    shape = tuple(handle.get_slice(key).get_shape())
                    if len(shape) >= 2:
                        shapes[key], where[key] = shape, path
        except (OSError, SafetensorError, ValueError) as error:
            raise UnreadableCheckpoint(f"{path}: not a readable safetensors file ({error})") from None

    def fetch(key: str) -> torch.Tensor:
        with safe_open(str(where[key]), framework="pt") as handle:
            return handle.get_tensor(key)

    def fetch_rows(key: str, index: list[int]) -> torch.Tensor:
        if len(index) * WHOLE_TENSOR_FRACTION > shapes[key][0]:  # many rows: one read beats row-by-row
            return fetch(key)[index]
        with safe_open(str(where[key]), framework="pt") as handle:
            tensor = handle.get_slice(key)
            return torch.cat([tensor[i : i + 1] for i in index])

    return WeightSet(label, shapes, fetch, fetch_rows)


def _bin_set(root: Path, files: list[str], label: str) -> WeightSet:
    tensors: dict[str, torch.Tensor] = {}
    for name in files:
        path = confined(root, name)
        try:
            zipped = zipfile.is_zipfile(path)  # torch >= 1.6 format; only it can be memory-mapped
            loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=zipped)
        except Exception as error:  # torch raises many types for a hostile pickle
            raise UnreadableCheckpoint(f"{path}: not a weights-only PyTorch file ({type(error).__name__})") from None
        if not isinstance(loaded, dict):
            raise UnreadableCheckpoint(f"{path}: holds a {type(loaded).__name__}, not a state dict")
        tensors.update({k: v for k, v in loaded.items() if isinstance(v, torch.Tensor) and v.dim() >= 2})
    return WeightSet(label, {k: tuple(v.shape) for k, v in tensors.items()}, tensors.__getitem__)


def _candidate_sets(root: Path, stems: tuple[str, str] = (SAFETENSORS, BIN)) -> list[WeightSet]:
    found = []
    for stem, build in zip(stems, (_safetensors_set, _bin_set), strict=True):
        index = stem + INDEX_SUFFIX
        if (root / index).exists():
            found.append(build(root, _shard_names(root, index), index))
        elif (root / stem).exists():
            found.append(build(root, [stem], stem))
    return found


def _digest(weights: WeightSet) -> str:
    digest = hashlib.sha256()
    for name in sorted(weights.shapes):
        tensor = weights.fetch(name).contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def read_checkpoint(root: Path) -> CheckpointWeights:
    """Every distinct weight set of `root`, or the reason there is none to compare."""
    try:
        sets = _candidate_sets(root)
        if len(sets) > 1 and len({_digest(s) for s in sets}) == 1:
            sets = sets[:1]
    except UnreadableCheckpoint as error:
        return CheckpointWeights(problem=str(error))
    if sets:
        return CheckpointWeights(tuple(sets))
    return _without_weights(root)


def read_checkpoint_or_adapter(root: Path) -> CheckpointWeights:
    """The full weights of `root`, or else a PEFT adapter's own matrices (what a LoRA run saves)."""
    weights = read_checkpoint(root)
    if weights.sets or weights.adapter_base is None:
        return weights
    try:
        sets = _candidate_sets(root, ADAPTER_WEIGHTS)
    except UnreadableCheckpoint as error:
        return CheckpointWeights(problem=str(error), adapter_base=weights.adapter_base)
    return CheckpointWeights(tuple(sets), weights.problem if not sets else None, weights.adapter_base)


def _without_weights(root: Path) -> CheckpointWeights:
    adapter = root / ADAPTER_CONFIG
    if adapter.is_file():
        try:
            config = read_json(adapter)
        except UnreadableCheckpoint as error:
            return CheckpointWeights(problem=str(error))
        base = config.get("base_model_name_or_path") if isinstance(config, dict) else None
        base = base if isinstance(base, str) and base else None
        return CheckpointWeights(
            problem=f"{root} is an adapter only: its lineage is that of its base '{base or 'unnamed'}'",
            adapter_base=base,
        )
    names = f"{SAFETENSORS}, {BIN} or their {INDEX_SUFFIX} shards"
    return CheckpointWeights(problem=f"{root} holds no weights transformers would load ({names})")


def module_weights(module: torch.nn.Module) -> WeightSet:
    state = {k: v.detach() for k, v in module.state_dict().items() if v.dim() >= 2}
    return WeightSet("live module", {k: tuple(v.shape) for k, v in state.items()}, state.__getitem__)


def read_vocabulary(root: Path) -> dict[str, int] | None:
    """token string -> id from tokenizer.json (model vocabulary and added tokens); None when absent."""
    path = root / "tokenizer.json"
    if not path.is_file():
        return None
    data = read_json(confined(root, "tokenizer.json"))
    model = data.get("model") if isinstance(data, dict) else None
    raw = model.get("vocab") if isinstance(model, dict) else None
    vocab: dict[str, int] = {}
    if isinstance(raw, dict):
        vocab.update({k: v for k, v in raw.items() if isinstance(k, str) and _is_id(v)})
    elif isinstance(raw, list):  # Unigram: [[piece, score], ...], the id is the position
        vocab.update({p[0]: i for i, p in enumerate(raw) if isinstance(p, list) and p and isinstance(p[0], str)})
    added_tokens = data.get("added_tokens") if isinstance(data, dict) else None
    for added in added_tokens if isinstance(added_tokens, list) else []:
        if isinstance(added, dict) and isinstance(added.get("content"), str) and _is_id(added.get("id")):
            vocab[added["content"]] = added["id"]
    return vocab or None


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31
