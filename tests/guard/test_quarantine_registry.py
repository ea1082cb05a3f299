"""The quarantine registry: a kept halted checkpoint stays refused after its marker and card are deleted.

The marker and the card live inside the checkpoint folder, so whoever holds the folder can delete
both. `halt.quarantine_registry` keeps a name-free fingerprint of the weights elsewhere.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from distill_guard import DistillGuard, ProvenanceDenied, TrainingHalted
from distill_guard.errors import DistillGuardError
from distill_guard.policy.load import load_policy, validate_policy_file
from distill_guard.provenance.checkpoint_reading import UnreadableCheckpoint
from distill_guard.provenance.gate import ProvenanceGate
from distill_guard.provenance.quarantine_registry import best_match, fingerprint_folder, read_registry, register
from distill_guard.quarantine import QUARANTINE_MARKER_NAME
from distill_guard.scenarios import disguises, tiny_lm
from tests.guard.conftest import make_trainer

BASE = [0.10, 0.12, 0.11, 0.09]
HIGH = [0.40, 0.45, 0.42, 0.41]


def _keep_halted(registry: Path | None) -> dict:
    halt: dict = {"action": "stop", "save_halted_checkpoint": True}
    if registry is not None:
        halt["quarantine_registry"] = str(registry)
    return {"halt": halt}


def _halted_checkpoint(tiny: Path, tmp_path: Path, policy: Path, controlled_scores, *, strip: bool = True) -> Path:
    """A run halted at step 2 with its checkpoint kept, then (`strip`) stripped of its marker and its card."""
    controlled_scores([BASE, HIGH])
    out = tmp_path / "out"
    trainer = make_trainer(
        tiny, out, DistillGuard.from_policy(policy), max_steps=8, save_strategy="steps", save_steps=2
    )
    with pytest.raises(TrainingHalted):
        trainer.train()
    halted = out / "checkpoint-2"
    if strip:
        (halted / QUARANTINE_MARKER_NAME).unlink()
        (halted / "README.md").unlink()
    return halted


def _registered_halt(tiny: Path, tmp_path: Path, write_policy, controlled_scores) -> tuple[Path, Path, Path]:
    """The registry, the policy naming it, and a stripped halted checkpoint the halt registered there."""
    registry = tmp_path / "registry.jsonl"
    policy = write_policy(every=2, sections=_keep_halted(registry))
    return registry, policy, _halted_checkpoint(tiny, tmp_path, policy, controlled_scores)


def _fresh_run_from(halted: Path, tmp_path: Path, policy: Path, controlled_scores) -> None:
    controlled_scores([BASE])
    make_trainer(halted, tmp_path / "again", DistillGuard.from_policy(policy), max_steps=2).train()


def test_without_a_registry_a_stripped_halted_checkpoint_starts_a_new_run(
    tiny_checkpoint, tmp_path, write_policy, controlled_scores
):
    """The attack the registry closes: with marker and card deleted, nothing in the folder says halted."""
    policy = write_policy(every=2, sections=_keep_halted(None))
    halted = _halted_checkpoint(tiny_checkpoint, tmp_path, policy, controlled_scores)
    _fresh_run_from(halted, tmp_path, policy, controlled_scores)  # the test policy only warns on uncleared data


def test_with_a_registry_the_stripped_halted_checkpoint_is_denied_and_the_registry_says_which_run(
    tiny_checkpoint, tmp_path, write_policy, controlled_scores
):
    registry, policy, halted = _registered_halt(tiny_checkpoint, tmp_path, write_policy, controlled_scores)
    (entry,) = read_registry(registry)
    assert entry.step == 2 and entry.checkpoint == str(halted.resolve())
    audit = [json.loads(line) for line in (tmp_path / "out" / "guard-audit.jsonl").read_text().splitlines()]
    (registered,) = [line for line in audit if line["event"] == "quarantine_registered"]
    assert registered["registry"] == f"{registry}:1" and entry.run_id == registered["run_id"]
    with pytest.raises(ProvenanceDenied) as info:
        _fresh_run_from(halted, tmp_path, policy, controlled_scores)
    (rule,) = [rule for rule in info.value.decision.rules if rule.id == "quarantined-checkpoint"]
    assert rule.evidence == (f"{registry}:1",)
    assert "halted at step 2" in rule.message and entry.run_id in rule.message


def _renamed_as_bin(halted: Path, target: Path, dtype: torch.dtype) -> Path:
    """The same weights under other tensor names, converted to `dtype`, saved as `pytorch_model.bin` only."""
    shutil.copytree(halted, target, ignore=shutil.ignore_patterns("model.safetensors", "*.pt", "*.pth", "rng*"))
    tensors = load_file(str(halted / "model.safetensors"))
    renamed = {f"renamed.{i}": t.to(dtype) for i, t in enumerate(tensors.values())}
    torch.save(renamed, target / "pytorch_model.bin")
    return target


def test_a_renamed_converted_and_resaved_copy_still_matches_but_the_base_it_started_from_does_not(
    tiny_checkpoint, tmp_path, write_policy, controlled_scores
):
    registry, _, halted = _registered_halt(tiny_checkpoint, tmp_path, write_policy, controlled_scores)
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        disguised = _renamed_as_bin(halted, tmp_path / f"disguised-{dtype}", dtype)
        match = best_match(registry, fingerprint_folder(disguised))
        assert match is not None and match.shared == len(match.entry.matrices), dtype
    assert best_match(registry, fingerprint_folder(tiny_checkpoint)) is None


def test_a_stripped_halted_checkpoint_offered_as_the_teacher_is_denied(
    tiny_checkpoint, tmp_path, write_policy, controlled_scores
):
    registry, policy, halted = _registered_halt(tiny_checkpoint, tmp_path, write_policy, controlled_scores)
    gate = ProvenanceGate(load_policy(policy), student=tiny_checkpoint)
    clearance = gate.clear_dataset(_rows(), teacher=halted)
    (rule,) = [rule for rule in clearance.decision.rules if rule.id == "quarantined-checkpoint"]
    assert rule.message.startswith("the teacher matches") and rule.evidence == (f"{registry}:1",)


def _rows():
    import datasets

    return datasets.Dataset.from_dict({"text": ["1 2 3", "4 5 6"]})


def test_a_corrupt_registry_stops_the_gate_at_its_line(tiny_checkpoint, tmp_path, write_policy):
    registry = tmp_path / "registry.jsonl"
    registry.write_text('{"matrices": [{"shape": [2, 2], "values": [1.0]}], "step": 1}\nnot json\n', "utf-8")
    policy = write_policy(every=2, sections=_keep_halted(registry))
    gate = ProvenanceGate(load_policy(policy), student=tiny_checkpoint)
    with pytest.raises(DistillGuardError, match=rf"{registry}:2: not a JSON object"):
        gate.clear_dataset(_rows())
    registry.write_text('{"matrices": [{"shape": [2, -2], "values": [1.0]}]}\n', "utf-8")
    with pytest.raises(DistillGuardError, match=rf"{registry}:1: each matrix needs 'shape'"):
        gate.clear_dataset(_rows())


def test_a_registry_in_a_missing_folder_is_a_warning_in_review_and_a_refusal_at_the_gate(
    tiny_checkpoint, tmp_path, write_policy
):
    registry = tmp_path / "nowhere" / "registry.jsonl"
    policy = write_policy(every=2, sections=_keep_halted(registry))
    (warning,) = [w for w in validate_policy_file(policy) if "quarantine_registry" in w.message]
    assert warning.severity == "warning" and warning.line > 0
    gate = ProvenanceGate(load_policy(policy), student=tiny_checkpoint)
    with pytest.raises(DistillGuardError, match="does not exist"):
        gate.clear_dataset(_rows())


# -- a kept halted copy with its hidden units permuted, noised and rounded ----------------------------


def _disguised(halted: Path, tmp_path: Path, dtype: torch.dtype = torch.bfloat16) -> Path:
    """Hidden units permuted (the same function), 1e-3 relative noise on every matrix, saved in `dtype`."""
    permuted = disguises.permuted(halted, tmp_path / "permuted")
    noised = disguises.noised(permuted, tmp_path / "noised", 1e-3)
    out = tmp_path / f"disguised-{dtype}".replace("torch.", "")
    AutoModelForCausalLM.from_pretrained(noised).to(dtype).save_pretrained(out)
    AutoTokenizer.from_pretrained(noised).save_pretrained(out)
    return out


def _format_one_line(folder: Path) -> str:
    """The line an earlier distill-guard wrote for `folder` (no version, 32 values at fixed positions)."""
    matrices = [{"shape": list(m.shape), "values": list(m.values)} for m in fingerprint_folder(folder).positional]
    return json.dumps({"checkpoint": str(folder), "run_id": "old-run", "step": 2, "matrices": matrices}) + "\n"


def test_regression_a_permuted_noised_copy_evades_a_format_one_entry_but_not_the_entry_a_halt_now_writes(
    tiny_checkpoint, tmp_path, write_policy, controlled_scores
):
    registry, _, halted = _registered_halt(tiny_checkpoint, tmp_path, write_policy, controlled_scores)
    (entry,) = read_registry(registry)
    assert entry.version == 2
    old = tmp_path / "old-registry.jsonl"
    old.write_text(_format_one_line(halted), "utf-8")
    assert read_registry(old)[0].version == 1
    assert best_match(old, fingerprint_folder(halted)) is not None  # an old line still matches what it matched
    for dtype in (torch.bfloat16, torch.float16):
        disguised = _renamed_as_bin(_disguised(halted, tmp_path, dtype), tmp_path / f"renamed-{dtype}", dtype)
        assert best_match(old, fingerprint_folder(disguised)) is None, dtype  # the attack on format 1
        match = best_match(registry, fingerprint_folder(disguised))
        assert match is not None and match.shared == len(entry.matrices), dtype


def test_the_disguised_copy_is_refused_as_the_student_even_when_the_model_claims_another_origin(
    tiny_checkpoint, tmp_path, write_policy, controlled_scores
):
    registry, policy, halted = _registered_halt(tiny_checkpoint, tmp_path, write_policy, controlled_scores)
    disguised = _disguised(halted, tmp_path)
    with pytest.raises(ProvenanceDenied) as info:
        _fresh_run_from(disguised, tmp_path, policy, controlled_scores)
    (rule,) = [rule for rule in info.value.decision.rules if rule.id == "quarantined-checkpoint"]
    assert rule.message.startswith("the student matches") and rule.evidence == (f"{registry}:1",)

    controlled_scores([BASE])
    trainer = make_trainer(disguised, tmp_path / "claims", DistillGuard.from_policy(policy), max_steps=2)
    trainer.model.name_or_path = "HuggingFaceTB/SmolLM2-135M"  # no folder for the gate to read
    with pytest.raises(ProvenanceDenied) as info:
        trainer.train()
    (rule,) = [rule for rule in info.value.decision.rules if rule.id == "quarantined-checkpoint"]
    assert rule.message.startswith("the student being trained matches") and rule.evidence == (f"{registry}:1",)
    audit = [json.loads(line) for line in (tmp_path / "claims" / "guard-audit.jsonl").read_text().splitlines()]
    (denied,) = [line for line in audit if line["event"] == "provenance_decision"]
    assert denied["decision"]["outcome"] == "deny" and "quarantined-checkpoint" in json.dumps(denied)


def test_the_disguised_renamed_copy_is_refused_as_the_teacher_and_neither_the_base_nor_another_init_matches(
    tiny_checkpoint, tmp_path, write_policy, controlled_scores
):
    registry, policy, halted = _registered_halt(tiny_checkpoint, tmp_path, write_policy, controlled_scores)
    gate = ProvenanceGate(load_policy(policy), student=tiny_checkpoint)
    teacher = _renamed_as_bin(_disguised(halted, tmp_path), tmp_path / "renamed", torch.bfloat16)
    clearance = gate.clear_dataset(_rows(), teacher=teacher)
    (rule,) = [rule for rule in clearance.decision.rules if rule.id == "quarantined-checkpoint"]
    assert rule.message.startswith("the teacher matches") and rule.evidence == (f"{registry}:1",)
    another_init = tiny_lm.make_tiny_checkpoint(tmp_path / "another-init", seed=1)
    assert best_match(registry, fingerprint_folder(another_init)) is None
    assert best_match(registry, fingerprint_folder(tiny_checkpoint)) is None


def test_a_halt_that_moved_no_matrix_from_its_start_registers_nothing_rather_than_refusing_the_base(
    tiny_checkpoint, tmp_path
):
    registry = tmp_path / "registry.jsonl"
    start = fingerprint_folder(tiny_checkpoint)
    with pytest.raises(UnreadableCheckpoint, match="would also refuse the base"):
        register(registry, tiny_checkpoint, run_id="r", step=1, start=start)
    assert not registry.exists()


def test_a_registry_line_of_an_unknown_format_stops_the_gate_at_its_line(tiny_checkpoint, tmp_path, write_policy):
    registry = tmp_path / "registry.jsonl"
    profile = {"shape": [2, 2], "row_norms": [1.0], "column_norms": [1.0]}
    registry.write_text(json.dumps({"version": 3, "matrices": [profile]}) + "\n", "utf-8")
    gate = ProvenanceGate(load_policy(write_policy(every=2, sections=_keep_halted(registry))), student=tiny_checkpoint)
    with pytest.raises(DistillGuardError, match=rf"{registry}:1: registry line format 3 is unknown"):
        gate.clear_dataset(_rows())
    registry.write_text(json.dumps({"version": 2, "matrices": [{"shape": [2, 2], "row_norms": [1.0]}]}) + "\n")
    with pytest.raises(DistillGuardError, match=rf"{registry}:1: each matrix needs .* 'column_norms'"):
        gate.clear_dataset(_rows())


# -- what an adversary or a careless colleague tries next ----------------------------------------------


def _transposed_as_bin(halted: Path, target: Path) -> Path:
    """Every matrix stored transposed (GPT-2's Conv1D layout), as a custom loader would read it back."""
    shutil.copytree(halted, target, ignore=shutil.ignore_patterns("model.safetensors", "*.pt", "*.pth", "rng*"))
    tensors = load_file(str(halted / "model.safetensors"))
    torch.save({k: t.T.contiguous() if t.dim() == 2 else t for k, t in tensors.items()}, target / "pytorch_model.bin")
    return target


def _adapter_over(halted: Path, target: Path) -> Path:
    """A fresh LoRA adapter saved with the halted checkpoint as its base: its function is the halted model's."""
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(halted), LoraConfig(r=4, target_modules=["q_proj"]))
    model.save_pretrained(target)
    return target


def test_a_transposed_copy_and_an_adapter_over_the_halted_checkpoint_are_refused_as_the_teacher(
    tiny_checkpoint, tmp_path, write_policy, controlled_scores
):
    registry, policy, halted = _registered_halt(tiny_checkpoint, tmp_path, write_policy, controlled_scores)
    gate = ProvenanceGate(load_policy(policy), student=tiny_checkpoint)
    for teacher in (_transposed_as_bin(halted, tmp_path / "transposed"), _adapter_over(halted, tmp_path / "adapter")):
        clearance = gate.clear_dataset(_rows(), teacher=teacher)
        (rule,) = [rule for rule in clearance.decision.rules if rule.id == "quarantined-checkpoint"]
        assert rule.message.startswith("the teacher matches") and rule.evidence == (f"{registry}:1",), teacher.name


def test_an_adapter_over_a_quarantined_checkpoint_is_refused_by_its_marker_without_a_registry(
    tiny_checkpoint, tmp_path, write_policy, controlled_scores
):
    """The careless path: the marker is still there, but the folder handed over is a LoRA adapter."""
    policy = write_policy(every=2, sections=_keep_halted(None))
    halted = _halted_checkpoint(tiny_checkpoint, tmp_path, policy, controlled_scores, strip=False)
    gate = ProvenanceGate(load_policy(policy), student=tiny_checkpoint)
    clearance = gate.clear_dataset(_rows(), teacher=_adapter_over(halted, tmp_path / "adapter"))
    (rule,) = [rule for rule in clearance.decision.rules if rule.id == "quarantined-checkpoint"]
    assert rule.evidence == (str(halted / QUARANTINE_MARKER_NAME),)


def test_a_sibling_fine_tune_of_the_same_base_is_not_refused(
    tiny_checkpoint, tmp_path, write_policy, controlled_scores
):
    """The team's other runs from the base a halted run started from must still train."""
    registry, _, _ = _registered_halt(tiny_checkpoint, tmp_path, write_policy, controlled_scores)
    sibling = disguises.fine_tuned(tiny_checkpoint, tmp_path / "sibling", steps=2, lr=1e-3, batch=8)
    assert best_match(registry, fingerprint_folder(sibling)) is None
    assert best_match(registry, fingerprint_folder(tiny_checkpoint)) is None


@pytest.mark.parametrize(
    ("row_norms", "problem"),
    [
        ("[NaN]", "NaN is not a number"),
        ("[Infinity]", "Infinity is not a number"),
        ("[1e400]", "must each be 16 norms"),
        ("[1.0, 2.0]", "must each be 16 norms"),
        ("[" + ", ".join(["0.0"] * 16) + "]", "must each be 16 norms"),
    ],
)
def test_a_registry_line_no_profile_could_match_stops_the_gate_at_its_line(tmp_path, row_norms, problem):
    """An edited line that would silently match nothing would clear every model: it is refused instead."""
    registry = tmp_path / "registry.jsonl"
    columns = json.dumps([1.0] * 16)
    matrix = f'{{"shape": [4, 4], "row_norms": {row_norms}, "column_norms": {columns}}}'
    registry.write_text(f'{{"version": 2, "matrices": [{matrix}]}}\n', "utf-8")
    with pytest.raises(DistillGuardError, match=rf"{registry}:1: .*{problem}"):
        read_registry(registry)


def test_a_registry_line_nested_too_deeply_stops_the_gate_at_its_line(tmp_path):
    registry = tmp_path / "registry.jsonl"
    registry.write_text("\n" + "[" * 100_000 + "]" * 100_000 + "\n", "utf-8")
    with pytest.raises(DistillGuardError, match=rf"{registry}:2: not a JSON object \(nested too deeply\)"):
        read_registry(registry)
