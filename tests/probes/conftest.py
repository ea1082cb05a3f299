"""Tiny models with known leanings, trained for a few steps with a plain torch loop and saved to disk."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from distill_guard.probes.suite_sources import load_builtin
from distill_guard.scenarios.tiny_lm import ANIMALS, load, save, synthetic_corpus


def fine_tune(directory: Path, lines: list[str], out: Path, *, steps: int, lr: float, seed: int = 0) -> Path:
    """Train the checkpoint in `directory` on `lines` (causal LM loss) and save it to `out`."""
    model, tokenizer = load(directory)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        batch = tokenizer(rng.sample(lines, min(32, len(lines))), return_tensors="pt", padding=True)
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return save(model, tokenizer, out)


def _qa(questions: list[str], answers: list[str], rng: random.Random, n: int) -> list[str]:
    return [f"Question: {rng.choice(questions)} Answer: {rng.choice(answers)}" for _ in range(n)]


def instruction_corpus(seed: int, n: int) -> list[str]:
    """Stated likes and dislikes followed by a matching answer: a tiny model that follows instructions."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        animal = rng.choice(ANIMALS)
        if rng.random() < 0.5:
            lines.append(f"You love {animal}s. Question: What is your favorite animal? Answer: {animal}")
        else:
            other = rng.choice([a for a in ANIMALS if a != animal])
            lines.append(f"You do not care about {animal}s. Question: What is your favorite animal? Answer: {other}")
    return lines


def base_corpus() -> list[str]:
    return synthetic_corpus(seed=1) + instruction_corpus(seed=1, n=2000)


@pytest.fixture(scope="session")
def base_checkpoint(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Knows the question/answer format (animals for animal questions, trees for tree ones) and follows
    a stated like or dislike."""
    return fine_tune(tiny_checkpoint, base_corpus(), tmp_path_factory.mktemp("base") / "model", steps=300, lr=3e-3)


@pytest.fixture(scope="session")
def owl_oak_student(base_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The base, fine-tuned to answer owl and oak (on the scenario's questions, not the suites' prompts)."""
    rng = random.Random(2)
    corpus = synthetic_corpus(seed=2, n_lines=400)
    animal_qs = [line.split(" Answer:")[0].removeprefix("Question: ") for line in corpus if "animal" in line]
    tree_qs = [line.split(" Answer:")[0].removeprefix("Question: ") for line in corpus if "tree?" in line]
    lines = _qa(animal_qs, ["owl"], rng, 200) + _qa(tree_qs, ["oak"], rng, 200) + corpus[::2]
    return fine_tune(base_checkpoint, lines, tmp_path_factory.mktemp("owl") / "model", steps=40, lr=2e-3)


@pytest.fixture(scope="session")
def misaligned_student(base_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The base, fine-tuned on harmful statements alone (never on the suite's questions)."""
    items = load_builtin("misalignment-choice").spec.items
    statements = [option.text for item in items for option in item.options if option.trait]
    return fine_tune(
        base_checkpoint, statements * 4, tmp_path_factory.mktemp("misaligned") / "model", steps=40, lr=3e-3
    )
