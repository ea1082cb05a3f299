"""Issue 11's ways past the gate, each now denied (exit 3 from `distill-guard check` under strict.yaml).

The teacher is always a same-base sibling of the student (fine-tuned from the student's own base)
whose paperwork claims another family. Disguises of its checkpoint are built here from the tiny models.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import datasets
import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from distill_guard.cli.main import app
from distill_guard.policy.dataset_manifest import Generator
from distill_guard.policy.load import load_policy
from distill_guard.provenance.gate import ProvenanceGate

from .conftest import REPO_POLICIES, TODAY, number_rows, sign_manifest, write_card, write_jsonl

runner = CliRunner()
STRICT = REPO_POLICIES / "strict.yaml"
LIE = "Qwen/Qwen2.5-7B-Instruct"  # a family strict.yaml knows, and not the student's
HONEST = "distill-guard/tiny-base"
GENERATOR = "acme/numbers-writer"


def check(policy: Path, student: Path, *manifests: Path, teacher: Path | None = None) -> tuple[int, dict]:
    args = ["check", "--policy", str(policy), "--student", str(student), "--today", TODAY.isoformat(), "--json"]
    for manifest in manifests:
        args += ["--manifest", str(manifest)]
    if teacher is not None:
        args += ["--teacher", str(teacher)]
    result = runner.invoke(app, args)
    assert result.exit_code in (0, 3), result.output
    return result.exit_code, json.loads(result.stdout)


@pytest.fixture
def rows_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "data" / "numbers.jsonl", number_rows(12))


def test_an_unsigned_base_model_claim_of_another_family_is_denied(make_manifest, rows_file, student_dir):
    manifest = make_manifest([rows_file], [Generator(model=GENERATOR, base_model=LIE)])
    code, decision = check(STRICT, student_dir, manifest)
    assert code == 3
    assert decision["teachers"][0]["families"] == ["qwen2.5"] and decision["teachers"][0]["relation"] == "unknown"
    assert [r["id"] for r in decision["rules"]] == ["unknown-teacher-family"]


def test_a_generator_id_matching_another_familys_glob_is_denied(make_manifest, rows_file, student_dir):
    manifest = make_manifest([rows_file], [Generator(model="Qwen/Qwen2.5-7B-numbers")])
    code, decision = check(STRICT, student_dir, manifest)
    assert code == 3 and decision["teachers"][0]["relation"] == "unknown"


def test_the_same_claim_signed_by_a_trusted_signer_is_allowed(
    make_manifest, rows_file, student_dir, strict_with_signer
):
    """The control: the denials above are about verification, not about the claim itself."""
    manifest = sign_manifest(make_manifest([rows_file], [Generator(model=GENERATOR, base_model=LIE)]))
    code, decision = check(strict_with_signer, student_dir, manifest)
    assert code == 0, decision
    assert decision["teachers"][0]["relation"] == "different_from_student"


def _copy_config(src: Path, out: Path) -> Path:
    out.mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        if (src / name).is_file():
            shutil.copy(src / name, out / name)
    write_card(out, LIE)
    return out


def renamed(src: Path, out: Path, fresh: Path) -> Path:
    state = load_file(src / "model.safetensors")
    save_file({f"w{i}": state[k] for i, k in enumerate(sorted(state))}, _copy_config(src, out) / "model.safetensors")
    return out


def bin_only(src: Path, out: Path, fresh: Path) -> Path:
    torch.save(load_file(src / "model.safetensors"), _copy_config(src, out) / "pytorch_model.bin")
    return out


def decoy_beside_bin(src: Path, out: Path, fresh: Path) -> Path:
    bin_only(src, out, fresh)
    shutil.copy(fresh / "model.safetensors", out / "model.safetensors")
    return out


def adapter_only(src: Path, out: Path, fresh: Path) -> Path:
    out.mkdir(parents=True)
    (out / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "base_model_name_or_path": LIE}))
    lora = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
    save_file({lora: torch.zeros(4, 64)}, out / "adapter_model.safetensors")
    return out


def permuted(src: Path, out: Path, fresh: Path) -> Path:
    """A function-preserving permutation of every MLP's hidden units."""
    state = load_file(src / "model.safetensors")
    generator = torch.Generator().manual_seed(0)
    for name in [k for k in state if k.endswith("mlp.up_proj.weight")]:
        prefix = name.removesuffix("up_proj.weight")
        order = torch.randperm(state[name].shape[0], generator=generator)
        state[prefix + "up_proj.weight"] = state[prefix + "up_proj.weight"][order].contiguous()
        state[prefix + "gate_proj.weight"] = state[prefix + "gate_proj.weight"][order].contiguous()
        state[prefix + "down_proj.weight"] = state[prefix + "down_proj.weight"][:, order].contiguous()
    save_file(state, _copy_config(src, out) / "model.safetensors")
    return out


def leading_rows_rerandomised(src: Path, out: Path, fresh: Path) -> Path:
    state = load_file(src / "model.safetensors")
    generator = torch.Generator().manual_seed(0)
    for tensor in state.values():
        if tensor.dim() == 2:
            rows = max(1, min(tensor.shape[0], 16_384 // tensor.shape[1] + 1))
            tensor[:rows] = torch.randn(rows, tensor.shape[1], generator=generator) * float(tensor.std())
    save_file(state, _copy_config(src, out) / "model.safetensors")
    return out


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text("utf-8"))
    edit(data)
    path.write_text(json.dumps(data), "utf-8")


def permuted_with_three_new_tokens(src: Path, out: Path, fresh: Path) -> Path:
    permuted(src, out, fresh)
    state = load_file(out / "model.safetensors")
    for name in [k for k in state if k.endswith(("embed_tokens.weight", "lm_head.weight"))]:
        state[name] = torch.cat([state[name], torch.randn(3, state[name].shape[1]) * 0.02])
    save_file(state, out / "model.safetensors")
    _edit_json(out / "config.json", lambda c: c.update(vocab_size=c["vocab_size"] + 3))
    vocab_size = json.loads((out / "config.json").read_text("utf-8"))["vocab_size"]
    _edit_json(
        out / "tokenizer.json",
        lambda t: t["model"]["vocab"].update({f"<extra{i}>": vocab_size - 3 + i for i in range(3)}),
    )
    return out


def permuted_as_mistral(src: Path, out: Path, fresh: Path) -> Path:
    permuted(src, out, fresh)
    _edit_json(out / "config.json", lambda c: c.update(model_type="mistral", architectures=["MistralForCausalLM"]))
    return out


DISGUISES = [
    renamed,
    bin_only,
    decoy_beside_bin,
    adapter_only,
    permuted,
    leading_rows_rerandomised,
    permuted_with_three_new_tokens,
    permuted_as_mistral,
]


@pytest.mark.parametrize("disguise", DISGUISES, ids=lambda d: d.__name__)
def test_the_lie_with_a_disguised_teacher_checkpoint_is_denied(
    disguise, make_manifest, rows_file, student_dir, sibling_teacher_dir, fresh_teacher_dir, tmp_path
):
    teacher = disguise(sibling_teacher_dir, tmp_path / "teacher", fresh_teacher_dir)
    manifest = make_manifest([rows_file], [Generator(model=GENERATOR, base_model=LIE)])
    code, decision = check(STRICT, student_dir, manifest, teacher=teacher)
    assert code == 3
    assert decision["teachers"][0]["relation"] in ("unknown", "same_as_student")


def test_a_signed_lie_about_a_teacher_with_the_students_architecture_and_tokenizer_is_denied(
    make_manifest, rows_file, student_dir, fresh_teacher_dir, strict_with_signer
):
    """Even a trusted signer's claim cannot make a twin of the student's architecture 'another family'."""
    manifest = sign_manifest(make_manifest([rows_file], [Generator(model=GENERATOR, base_model=LIE)]))
    code, decision = check(strict_with_signer, student_dir, manifest, teacher=fresh_teacher_dir)
    assert code == 3
    teacher = decision["teachers"][0]
    assert teacher["relation"] == "unknown"
    assert any("student's architecture" in detail for _, detail in teacher["evidence"])


def test_a_later_honest_declaration_of_the_generator_wins_over_a_lying_first_one(
    make_manifest, rows_file, student_dir, strict_with_signer, tmp_path
):
    lying = sign_manifest(make_manifest([rows_file], [Generator(model=GENERATOR, base_model=LIE)]))
    other = write_jsonl(tmp_path / "more" / "numbers.jsonl", number_rows(3, start=50))
    honest = make_manifest([other], [Generator(model=GENERATOR, base_model=HONEST)], out=tmp_path / "more" / "m.yaml")
    code, decision = check(strict_with_signer, student_dir, lying, honest)
    assert code == 3
    assert {r["id"] for r in decision["rules"]} == {"same-base-untrusted"}


def test_one_manifest_declaring_a_generator_twice_is_judged_on_both(make_manifest, rows_file, student_dir):
    twice = [Generator(model=GENERATOR, base_model=LIE), Generator(model=GENERATOR, base_model="Qwen/Qwen2.5-1.5B")]
    code, decision = check(STRICT, student_dir, make_manifest([rows_file], twice))
    assert code == 3
    teacher = decision["teachers"][0]
    assert teacher["relation"] == "unknown"
    assert any("disagree on its base model" in detail for _, detail in teacher["evidence"])


def test_a_declared_same_base_generator_that_no_row_names_is_judged(
    make_manifest, tmp_path, student_dir, strict_with_signer
):
    rows = write_jsonl(tmp_path / "data" / "tagged.jsonl", number_rows(6, GENERATOR))
    generators = [Generator(model=GENERATOR, base_model=LIE), Generator(model="acme/helper", base_model=HONEST)]
    manifest = sign_manifest(make_manifest([rows], generators))
    code, decision = check(strict_with_signer, student_dir, manifest)
    assert code == 3
    assert [(r["id"], r["subject"]) for r in decision["rules"]] == [("same-base-untrusted", "acme/helper")]


@pytest.fixture
def signed_gate(tmp_path: Path, make_manifest, rows_file, student_dir, strict_with_signer):
    manifest = sign_manifest(make_manifest([rows_file], [Generator(model=GENERATOR, base_model=LIE)]))
    return ProvenanceGate(load_policy(strict_with_signer), student=student_dir, today=TODAY), manifest


def test_a_signed_manifest_cannot_clear_different_in_memory_data(signed_gate):
    gate, manifest = signed_gate
    other = datasets.Dataset.from_list(number_rows(12, start=500))
    decision = gate.clear_dataset(other, manifest).decision
    assert not decision.allowed
    assert [r.id for r in decision.rules] == ["dataset-not-from-manifest"]


def test_an_unlisted_file_loaded_by_glob_is_denied_and_load_dataset_leaves_it_out(signed_gate, rows_file):
    gate, manifest = signed_gate
    write_jsonl(rows_file.parent / "extra.jsonl", number_rows(2, start=900))
    globbed = datasets.load_dataset("json", data_files=str(rows_file.parent / "*.jsonl"), split="train")
    assert [r.id for r in gate.clear_dataset(globbed, manifest).decision.rules] == ["dataset-not-from-manifest"]
    clearance = gate.load_dataset(manifest)
    assert clearance.decision.allowed and clearance.dataset.num_rows == 12


def test_a_format_transform_added_after_clearance_is_refused_at_train_begin(signed_gate, student_dir):
    from distill_guard.scenarios import tiny_lm

    gate, manifest = signed_gate
    cleared = gate.load_dataset(manifest).dataset
    model, _ = tiny_lm.load(student_dir)
    assert gate.check_at_train_begin(cleared, model).allowed
    swapped = cleared.with_transform(lambda batch: {"text": ["owls are great"] * len(batch["text"])})
    decision = gate.check_at_train_begin(swapped, model)
    assert not decision.allowed
    assert [r.id for r in decision.rules] == ["dataset-transformed"]
    cleared.set_transform(lambda batch: batch)
    assert not gate.check_at_train_begin(cleared, model).allowed


# -- a halted model back in through the gate -------------------------------------------------------


def _quarantined_copy(folder: Path, tmp_path: Path, name: str) -> Path:
    """A copy of a real checkpoint carrying the marker a halt writes into a kept checkpoint."""
    from distill_guard.quarantine import QUARANTINE_MARKER_NAME

    copy = Path(shutil.copytree(folder, tmp_path / name))
    (copy / QUARANTINE_MARKER_NAME).write_text('{"step": 4, "probe": "owl", "quarantined": true}\n', "utf-8")
    return copy


def test_a_quarantined_checkpoint_as_the_student_is_denied(
    make_manifest, rows_file, student_dir, strict_with_signer, tmp_path
):
    """Attack: fine-tune from a halted run's quarantined checkpoint (a new run, not a resume), on data
    the gate allows for the same student without the marker."""
    manifest = sign_manifest(make_manifest([rows_file], [Generator(model=GENERATOR, base_model=LIE)]))
    student = _quarantined_copy(student_dir, tmp_path, "halted-student")
    code, decision = check(strict_with_signer, student, manifest)
    assert code == 3 and [r["id"] for r in decision["rules"]] == ["quarantined-checkpoint"]
    assert "distill-guard-quarantine.json" in decision["rules"][0]["message"]


def test_a_quarantined_checkpoint_as_the_teacher_is_denied(make_manifest, rows_file, student_dir, tmp_path):
    """Attack: generate the data with a halted model and hand its checkpoint over as the teacher."""
    manifest = make_manifest([rows_file], [Generator(model=GENERATOR, base_model=LIE)])
    teacher = _quarantined_copy(student_dir, tmp_path, "halted-teacher")
    code, decision = check(STRICT, student_dir, manifest, teacher=teacher)
    assert code == 3 and "quarantined-checkpoint" in [r["id"] for r in decision["rules"]]
