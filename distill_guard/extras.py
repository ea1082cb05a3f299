"""Which extra a third-party module comes with, so a missing one is reported with the command that installs it.

The core install carries only what the review commands need (`policy`, `manifest`, `export`); the
training stack is the `train` extra, the demo's and PEFT's modules are theirs. Reaching code that needs
one of them without it says `pip install "distill-guard[EXTRA]"` instead of a bare ModuleNotFoundError.
"""

from __future__ import annotations

EXTRA_OF_MODULE: dict[str, str] = {
    "torch": "train",
    "transformers": "train",
    "prometheus_client": "train",
    "pyarrow": "train",
    "numpy": "train",
    "scipy": "train",
    "datasets": "train",
    "safetensors": "train",
    "jinja2": "train",
    "accelerate": "train",
    "huggingface_hub": "train",
    "tokenizers": "demo",
    "sklearn": "demo",
    "matplotlib": "report",
    "peft": "peft",
}
"""Top-level module -> the extra in pyproject.toml that installs it (tests/packaging/test_dependencies.py checks)."""


def missing_extra_message(exc: ModuleNotFoundError, needed_by: str) -> str | None:
    """What to install when `exc` is a module of one of our extras; None for any other missing module."""
    module = (exc.name or "").partition(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    if extra is None:
        return None
    return (
        f"{needed_by} needs {module}, which comes with the {extra!r} extra and is not installed: "
        f'pip install "distill-guard[{extra}]"'
    )
