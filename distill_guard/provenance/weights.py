"""Weight test: does a checkpoint share its initialisation with another one?

Fine-tuning moves weights a little; two independent initialisations of the same architecture are
uncorrelated. For every weight matrix the two models share (same name, same shape, 2 or more
dimensions; norms initialised to ones are skipped because they match trivially) we take the
Pearson correlation over its leading rows (about 16k entries: rows are exchangeable at init, and a
contiguous slice is all safetensors has to read, so a 70B checkpoint costs megabytes, not its
size), and report the median over matrices.
Thresholds are calibrated in tests/provenance/test_weights.py on tiny models: fine-tuned copies
score near 1, fresh initialisations near 0.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from safetensors import safe_open

if TYPE_CHECKING:  # torch loads only when two checkpoints' weights are really compared
    import torch

SAME_INIT_AT_LEAST = 0.1
INDEPENDENT_AT_MOST = 0.05
MIN_TENSORS = 2
MIN_ENTRIES = 1024
SAMPLE_ENTRIES = 16_384

InitRelation = Literal["same_init", "independent", "inconclusive"]


@dataclass(frozen=True)
class WeightComparison:
    relation: InitRelation
    median_correlation: float | None
    tensors_compared: int

    def describe(self) -> str:
        if self.median_correlation is None:
            return f"weight test inconclusive: {self.tensors_compared} comparable weight matrices"
        words = {
            "same_init": "same initialisation",
            "independent": "independently initialised",
            "inconclusive": "inconclusive",
        }[self.relation]
        return (
            f"weight test: {words} (median correlation {self.median_correlation:.3f} "
            f"over {self.tensors_compared} weight matrices)"
        )


class TensorSource:
    """Weight matrices by name, read lazily from safetensors files or taken from a live module."""

    def __init__(self, shapes: Mapping[str, tuple[int, ...]], fetch: Callable[[str, int], torch.Tensor]) -> None:
        self.shapes = dict(shapes)
        self._fetch = fetch

    def leading_rows(self, name: str, rows: int) -> torch.Tensor:
        return self._fetch(name, rows)

    @classmethod
    def from_module(cls, module: torch.nn.Module) -> TensorSource:
        state = {k: v for k, v in module.state_dict().items() if v.dim() >= 2}
        return cls({k: tuple(v.shape) for k, v in state.items()}, lambda name, rows: state[name][:rows])

    @classmethod
    def from_dir(cls, directory: Path) -> TensorSource | None:
        """None when the folder holds no full safetensors weights (e.g. a PEFT adapter only)."""
        files = _safetensors_files(directory)
        if not files:
            return None
        where: dict[str, Path] = {}
        shapes: dict[str, tuple[int, ...]] = {}
        for file in files:
            with safe_open(str(file), framework="pt") as handle:
                for name in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
                    shape = tuple(handle.get_slice(name).get_shape())
                    if len(shape) >= 2:
                        shapes[name] = shape
                        where[name] = file

        def fetch(name: str, rows: int) -> torch.Tensor:
            with safe_open(str(where[name]), framework="pt") as handle:
                return handle.get_slice(name)[:rows]

        return cls(shapes, fetch)


def _safetensors_files(directory: Path) -> list[Path]:
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text("utf-8")).get("weight_map", {})
        return sorted({directory / f for f in weight_map.values()})
    single = directory / "model.safetensors"
    return [single] if single.is_file() else []


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float | None:
    import torch

    x = a.detach().reshape(-1).to(torch.float64)
    y = b.detach().reshape(-1).to(torch.float64)
    x, y = x - x.mean(), y - y.mean()
    denominator = float(x.norm() * y.norm())
    return float((x @ y) / denominator) if denominator > 0 else None


def _correlations(a: TensorSource, b: TensorSource) -> Iterator[float]:
    for name in sorted(a.shapes.keys() & b.shapes.keys()):
        shape = a.shapes[name]
        if shape == b.shapes[name] and math.prod(shape) >= MIN_ENTRIES:
            rows = min(shape[0], math.ceil(SAMPLE_ENTRIES / math.prod(shape[1:])))
            value = _correlation(a.leading_rows(name, rows), b.leading_rows(name, rows))
            if value is not None:
                yield value


def compare_weights(a: TensorSource, b: TensorSource) -> WeightComparison:
    values = list(_correlations(a, b))
    if len(values) < MIN_TENSORS:
        return WeightComparison("inconclusive", None, len(values))
    median = statistics.median(values)
    if median >= SAME_INIT_AT_LEAST:
        relation: InitRelation = "same_init"
    elif median <= INDEPENDENT_AT_MOST:
        relation = "independent"
    else:
        relation = "inconclusive"
    return WeightComparison(relation, median, len(values))
