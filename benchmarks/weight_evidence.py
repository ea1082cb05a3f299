"""Calibration of the weight test against every disguise of issue 11, on tiny models and SmolLM2-135M.

Each row is one teacher checkpoint compared with the student's checkpoint by the gate's own code
(`compare_checkpoint`); the unit of replication is one (teacher, student) pair of real saved
checkpoints. Positives: disguised copies of the student's own initialisation. Negatives (the null:
no shared initialisation): independent init seeds, independent seeds trained on the same data as
the student, another architecture, and for SmolLM2 random initialisations of its config.

    python benchmarks/weight_evidence.py            # tiny models and SmolLM2 (about 10 minutes on 1 core)
    python benchmarks/weight_evidence.py --tiny-only
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

from distill_guard.provenance import weights
from distill_guard.provenance.weights import TensorSource, compare_checkpoint
from distill_guard.scenarios import disguises, smollm2, tiny_lm

SEED = 0
Build = Callable[[Path], Path]


@dataclass(frozen=True)
class Case:
    model: str
    name: str
    same_init: bool
    build: Build
    student: Path | None = None  # None: the run's base checkpoint
    expected: str | None = None  # None: "same_init" for a shared init, "independent" otherwise

    @property
    def should_read(self) -> str:
        return self.expected or ("same_init" if self.same_init else "independent")


def _fresh_tiny(seed: int, base: Path) -> Build:
    def build(out: Path) -> Path:
        _, tokenizer = tiny_lm.load(base)
        return tiny_lm.save(tiny_lm.build_model(tokenizer, seed=seed), tokenizer, out)

    return build


def _gpt2_tiny(base: Path) -> Build:
    def build(out: Path) -> Path:
        _, tokenizer = tiny_lm.load(base)
        config = GPT2Config(vocab_size=len(tokenizer), n_embd=96, n_layer=2, n_head=4, n_positions=256)
        torch.manual_seed(11)
        return tiny_lm.save(GPT2LMHeadModel(config), tokenizer, out)

    return build


def _trained_seed(seed: int, base: Path, steps: int, lr: float) -> Build:
    def build(out: Path) -> Path:
        fresh = _fresh_tiny(seed, base)(out.with_name(out.name + "-init"))
        return disguises.fine_tuned(fresh, out, steps=steps, lr=lr, batch=4)

    return build


def _random_like(directory: Path, seed: int) -> Build:
    def build(out: Path) -> Path:
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(directory))
        model.save_pretrained(out)
        shutil.copy2(directory / "tokenizer.json", out / "tokenizer.json")
        return out

    return build


def disguise_cases(
    model: str, base: Path, decoy: Build, sigmas: tuple[float, ...], tune: tuple[int, float]
) -> list[Case]:
    steps, lr = tune

    def with_decoy(out: Path) -> Path:
        return disguises.with_decoy(base, decoy(out.with_name(out.name + "-decoy")), out)

    return [
        Case(
            model,
            f"fine-tuned {steps} steps, lr {lr:g}",
            True,
            lambda o: disguises.fine_tuned(base, o, steps=steps, lr=lr, batch=4),
        ),
        Case(model, "tensors renamed and reordered", True, lambda o: disguises.renamed(base, o)),
        Case(model, "hidden units permuted", True, lambda o: disguises.permuted(base, o)),
        *(
            Case(model, f"noise {s:g} x each matrix's std", True, lambda o, s=s: disguises.noised(base, o, s))
            for s in sigmas
        ),
        Case(model, "leading rows re-randomised", True, lambda o: disguises.leading_rows_rerandomised(base, o)),
        Case(model, "permuted + 3 vocabulary tokens", True, lambda o: disguises.permuted_with_added_tokens(base, o)),
        Case(model, "permuted, re-saved as Mistral", True, lambda o: disguises.permuted_as_mistral(base, o)),
        Case(model, "pytorch_model.bin only", True, lambda o: disguises.bin_only(base, o)),
        Case(model, "real .bin beside a decoy model.safetensors", True, with_decoy),
        Case(model, "adapter-only folder, base on disk", True, lambda o: disguises.adapter_only(str(base), o)),
        Case(
            model,
            "permuted token ids and units, tokenizer withheld (fails closed)",
            True,
            lambda o: disguises.permuted_ids_without_tokenizer(base, o),
            expected="inconclusive",
        ),
    ]


def tiny_cases(base: Path, seeds: int, work: Path) -> list[Case]:
    name = "tiny"
    cases = disguise_cases(name, base, _fresh_tiny(99, base), (0.5, 1.0, 2.0), (300, 1e-3))
    cases.insert(
        1,
        Case(
            name,
            "fine-tuned 300 steps, lr 0.01 (far beyond a real fine-tune)",
            True,
            lambda o: disguises.fine_tuned(base, o, steps=300, lr=1e-2, batch=4),
        ),
    )
    cases += [Case(name, f"independent init, seed {s}", False, _fresh_tiny(s, base)) for s in range(1, seeds + 1)]
    trained = disguises.fine_tuned(base, work / "tiny-trained", steps=300, lr=1e-3, batch=4)
    cases += [
        Case(
            name,
            f"seed {s} and the student both trained 300 steps on the same data",
            False,
            _trained_seed(s, base, 300, 1e-3),
            trained,
        )
        for s in (1, 2)
    ]
    cases.append(Case(name, "other architecture (GPT-2, width 96)", False, _gpt2_tiny(base)))
    return cases


def smollm2_cases(base: Path, tiny_base: Path) -> list[Case]:
    name = "SmolLM2-135M"
    cases = disguise_cases(name, base, _random_like(base, 99), (0.1, 0.5, 1.0), (30, 1e-4))
    cases += [Case(name, f"random init of its config, seed {s}", False, _random_like(base, s)) for s in (1, 2)]
    cases.append(Case(name, "other architecture (the tiny Llama)", False, lambda o: tiny_base))
    return cases


def run(cases: list[Case], student: Path, work: Path) -> list[tuple[Case, str, float | None, float | None, float]]:
    rows = []
    for index, case in enumerate(cases):
        out = work / f"case-{index}"
        teacher = case.build(out)
        started = time.perf_counter()
        result = compare_checkpoint(teacher, TensorSource.from_dir(case.student or student), seed=SEED)
        rows.append(
            (case, result.relation, result.unit_margin, result.median_correlation, time.perf_counter() - started)
        )
        print(f"  {case.model}: {case.name}: {result.describe()}", flush=True)
        for leftover in work.glob(f"case-{index}*"):
            shutil.rmtree(leftover, ignore_errors=True)
    return rows


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def table(rows: list[tuple[Case, str, float | None, float | None, float]]) -> str:
    lines = [
        "| model | teacher checkpoint | shares the init | unit-pairing margin | sampled-row median | reads | test s |",
        "|---|---|---|---|---|---|---|",
    ]
    for case, relation, margin, median, seconds in rows:
        shared = "yes" if case.same_init else "no"
        numbers = f"{_number(margin)} | {_number(median)} | {relation} | {seconds:.1f}"
        lines.append(f"| {case.model} | {case.name} | {shared} | {numbers} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny-only", action="store_true", help="skip SmolLM2-135M")
    parser.add_argument("--seeds", type=int, default=5, help="independent tiny init seeds (negatives)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="weight-evidence-") as folder:
        work = Path(folder)
        tiny_base = tiny_lm.make_tiny_checkpoint(work / "tiny-base", seed=SEED)
        rows = run(tiny_cases(tiny_base, args.seeds, work), tiny_base, work)
        if not args.tiny_only:
            reason = smollm2.unavailable_reason()
            if reason is not None:
                raise SystemExit(reason)
            base = smollm2.smollm2_checkpoint()
            rows += run(smollm2_cases(base, tiny_base), base, work)
    print()
    print(table(rows))
    wrong = [c.name for c, relation, *_ in rows if relation != c.should_read]
    print(
        f"\nthresholds: same initialisation when margin >= {weights.UNITS_SAME_INIT_AT_LEAST} or sampled-row "
        f"median >= {weights.SAME_INIT_AT_LEAST}; independent when margin <= {weights.UNITS_INDEPENDENT_AT_MOST} "
        f"and median <= {weights.INDEPENDENT_AT_MOST}"
    )
    print(f"{len(rows)} pairs, {len(wrong)} read otherwise than expected" + (f": {', '.join(wrong)}" if wrong else ""))


if __name__ == "__main__":
    main()
