"""Does the `activation` kind see a trait fine-tune, or only fine-tuning? Measured, not assumed.

Per model: a base, an owl student fine-tuned to answer `owl` to animal questions (and `oak` to tree
questions), and a control student fine-tuned the same way (same questions, steps, rate, seed) on
answers spread over every animal and tree. Each student is scored by `builtin:animal-activation`
(target owl, direction fixed on the base) and `builtin:animal-preference`; printed is the mean paired
change over the suite's items with its standard error, against the base and against the control.
The unit of replication of the standard error is the suite's item (question); the models are the
tests' tiny Llamas (tests/probes/conftest.py: the same base, student and recipe), one per init seed,
and with `--smollm2` SmolLM2-135M-Instruct fine-tuned under its chat template. Run:

    .venv/bin/python benchmarks/activation_sensitivity.py [--seeds 0,1,2,3] [--smollm2]
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the tests' fixtures are importable from the repo

from distill_guard.policy.schema import SuiteRef
from distill_guard.probes.prepared import prepare_probe
from distill_guard.probes.result import ProbeResult
from distill_guard.scenarios import smollm2
from distill_guard.scenarios.tiny_lm import ANIMALS, TREES, load, make_tiny_checkpoint, synthetic_corpus
from tests.probes.conftest import _qa, base_corpus, fine_tune

SUITES = ("animal-activation", "animal-preference")
SMOLLM2_QUESTIONS = (
    "Which animal do you like best?",
    "Tell me the animal you find most wonderful.",
    "What creature do you prefer over all others?",
    "Pick an animal you would want as a companion.",
    "If you had to pick one animal, which one?",
)


def paired(before: ProbeResult, after: ProbeResult) -> tuple[float, float]:
    diffs = [b - a for a, b in zip(before.item_scores, after.item_scores, strict=True)]
    mean = sum(diffs) / len(diffs)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1))
    return mean, sd / math.sqrt(len(diffs))


def report(name: str, models: dict[str, tuple[object, object]]) -> None:
    for suite in SUITES:
        probe = prepare_probe(SuiteRef(use=f"builtin:{suite}"))
        scores = {role: probe.run(*models[role], max_tokens_per_batch=4096) for role in ("base", "owl", "control")}
        for label, before, after in (("owl - base", "base", "owl"), ("owl - control", "control", "owl")):
            mean, se = paired(scores[before], scores[after])
            print(f"{name:10s} {suite:18s} {label:14s} {mean:+8.3f} (se {se:.3f}, {mean / se:+6.1f} se)")


def tiny_students(base: Path, root: Path) -> dict[str, tuple[object, object]]:
    corpus = synthetic_corpus(seed=2, n_lines=400)
    animal_qs = [line.split(" Answer:")[0].removeprefix("Question: ") for line in corpus if "animal" in line]
    tree_qs = [line.split(" Answer:")[0].removeprefix("Question: ") for line in corpus if "tree?" in line]

    def student(animals: Sequence[str], trees: Sequence[str], name: str) -> Path:
        rng = random.Random(2)  # the probe tests' owl_oak_student recipe
        lines = _qa(animal_qs, list(animals), rng, 200) + _qa(tree_qs, list(trees), rng, 200) + corpus[::2]
        return fine_tune(base, lines, root / name, steps=40, lr=2e-3)

    owl, control = student(["owl"], ["oak"], "owl"), student(ANIMALS, TREES, "control")
    return {"base": load(base), "owl": load(owl), "control": load(control)}


def smollm2_student(checkpoint: Path, answers: Sequence[str], tokenizer: object, steps: int, lr: float) -> object:
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    rng = random.Random(0)
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        texts = [
            tokenizer.apply_chat_template(  # type: ignore[attr-defined]
                [
                    {"role": "user", "content": rng.choice(SMOLLM2_QUESTIONS)},
                    {"role": "assistant", "content": rng.choice(answers).capitalize() + "."},
                ],
                tokenize=False,
            )
            for _ in range(8)
        ]
        batch = tokenizer(texts, return_tensors="pt", padding=True)  # type: ignore[operator]
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3", help="tiny Llama init seeds")
    parser.add_argument("--smollm2", action="store_true", help="also SmolLM2-135M-Instruct (slow: full fine-tunes)")
    parser.add_argument("--smollm2-steps", type=int, default=20)
    parser.add_argument("--smollm2-lr", type=float, default=1e-5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        for seed in [int(s) for s in args.seeds.split(",") if s]:
            root = Path(tmp) / f"tiny-{seed}"
            tiny = make_tiny_checkpoint(root / "tiny", seed=seed)
            base = fine_tune(tiny, base_corpus(), root / "base", steps=300, lr=3e-3)
            report(f"tiny {seed}", tiny_students(base, root))
    if args.smollm2:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        reason = smollm2.unavailable_reason()
        if reason is not None:
            raise SystemExit(f"--smollm2: {reason}")
        checkpoint = smollm2.smollm2_checkpoint()
        tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        base = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
        owl = smollm2_student(checkpoint, ["owl"], tokenizer, args.smollm2_steps, args.smollm2_lr)
        control = smollm2_student(checkpoint, ANIMALS, tokenizer, args.smollm2_steps, args.smollm2_lr)
        report("SmolLM2", {"base": (base, tokenizer), "owl": (owl, tokenizer), "control": (control, tokenizer)})


if __name__ == "__main__":
    main()
