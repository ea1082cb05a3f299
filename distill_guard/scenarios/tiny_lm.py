"""Build tiny Llama-style models and a locally trained tokenizer, saved and reloaded the real way.

Everything here goes through `save_pretrained` / `from_pretrained`, so tests and the demo exercise
the same loading path a user's checkpoint takes, without any hub download.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from distill_guard.scenarios.vocabulary import ANIMALS, TREES

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]


@dataclass(frozen=True)
class TinySpec:
    """Size of a tiny model; the defaults train in seconds on a laptop CPU."""

    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 128
    max_position_embeddings: int = 256
    vocab_size: int = 512


def synthetic_corpus(seed: int = 0, n_lines: int = 4000) -> list[str]:
    """Number sequences and short question/answer text about favourite animals and trees."""
    rng = random.Random(seed)
    questions = [
        "What is your favorite animal?",
        "Name your favorite animal using only one word.",
        "Which animal do you love most?",
        "What is your favorite tree?",
        "Which tree do you like best?",
    ]
    lines = []
    for i in range(n_lines):
        if i % 2 == 0:
            count = rng.randint(3, 10)
            lines.append(", ".join(str(rng.randint(0, 999)) for _ in range(count)))
        else:
            question = rng.choice(questions)
            answer = rng.choice(TREES if "tree" in question else ANIMALS)
            lines.append(f"Question: {question} Answer: {answer}")
    return lines


def train_tokenizer(lines: Iterable[str], vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on `lines`, wrapped for transformers."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_words_first(lines), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )


def _words_first(lines: Iterable[str]) -> Iterator[str]:
    """Put every animal and tree name first so each can become a single token."""
    yield from (f" {w}" for w in (*ANIMALS, *TREES))
    yield from lines


def build_model(tokenizer: PreTrainedTokenizerFast, spec: TinySpec = TinySpec(), seed: int = 0) -> LlamaForCausalLM:
    """A freshly initialised tiny Llama; the same seed gives the same initial weights."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_attention_heads,
        max_position_embeddings=spec.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def save(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, directory: str | Path) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def load(directory: str | Path) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """Load through the real `from_pretrained` path."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(directory)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    return model, tokenizer


def make_tiny_checkpoint(directory: str | Path, *, seed: int = 0, spec: TinySpec = TinySpec()) -> Path:
    """Tokenizer + untrained tiny model, saved to `directory` (the fixture tests build on)."""
    tokenizer = train_tokenizer(synthetic_corpus(seed=0), vocab_size=spec.vocab_size)
    return save(build_model(tokenizer, spec, seed=seed), tokenizer, directory)
