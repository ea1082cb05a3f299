"""The weight test against an adversary's disguises, on real saved tiny checkpoints (issue 11, item 2).

Each disguise is built from the student's own initialisation the way an adversary would and saved
to disk; the weight test must still read "same initialisation", independent inits must not, and
`distill-guard check` under policies/strict.yaml must deny (exit 3) even when a trusted signer's
manifest claims the generator is of another family.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel
from typer.testing import CliRunner

from distill_guard.cli.main import app
from distill_guard.policy.dataset_manifest import Generator
from distill_guard.provenance.weights import TensorSource, compare_checkpoint
from distill_guard.scenarios import disguises, tiny_lm

from .conftest import TODAY, sign_manifest

runner = CliRunner()
Disguise = Callable[[Path, Path], Path]

DISGUISES: dict[str, Disguise] = {
    "renamed": disguises.renamed,
    "permuted": disguises.permuted,
    "noised": lambda base, out: disguises.noised(base, out, sigma=1.0),
    "leading rows re-randomised": disguises.leading_rows_rerandomised,
    "permuted + 3 tokens": disguises.permuted_with_added_tokens,
    "permuted as Mistral": disguises.permuted_as_mistral,
    "bin only": disguises.bin_only,
    "adapter only, base on disk": lambda base, out: disguises.adapter_only(str(base), out),
}


@pytest.fixture(scope="module")
def student_weights(tiny_checkpoint: Path) -> TensorSource:
    source = TensorSource.from_dir(tiny_checkpoint)
    assert source is not None
    return source


@pytest.fixture(scope="module")
def independent_dir(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    _, tokenizer = tiny_lm.load(tiny_checkpoint)
    return tiny_lm.save(tiny_lm.build_model(tokenizer, seed=7), tokenizer, tmp_path_factory.mktemp("seed7") / "m")


@pytest.mark.parametrize("name", DISGUISES)
def test_a_disguised_copy_of_the_students_init_reads_same_initialisation(
    name, tiny_checkpoint, student_weights, tmp_path
):
    teacher = DISGUISES[name](tiny_checkpoint, tmp_path / "teacher")
    result = compare_checkpoint(teacher, student_weights, seed=0)
    assert result.relation == "same_init", result.describe()


def test_a_fine_tuned_copy_reads_same_initialisation_after_hundreds_of_steps(
    tiny_checkpoint, student_weights, tmp_path
):
    teacher = disguises.fine_tuned(tiny_checkpoint, tmp_path / "teacher", steps=200, lr=1e-3, batch=4)
    result = compare_checkpoint(teacher, student_weights, seed=0)
    assert result.relation == "same_init", result.describe()


@pytest.mark.parametrize("build", [disguises.permuted, disguises.permuted_as_mistral])
def test_the_permutation_disguise_keeps_the_function(build, tiny_checkpoint, tmp_path):
    """What makes it a disguise rather than a different model: the logits do not change."""
    original = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    disguised = AutoModelForCausalLM.from_pretrained(build(tiny_checkpoint, tmp_path / "teacher"))
    ids = torch.tensor([[1, 17, 42, 99, 230, 5]])
    with torch.no_grad():
        gap = (original(ids).logits - disguised(ids).logits).abs().max()
    assert float(gap) < 1e-5


def test_independent_initialisations_do_not_read_same(tiny_checkpoint, student_weights, independent_dir, tmp_path):
    _, tokenizer = tiny_lm.load(tiny_checkpoint)
    torch.manual_seed(3)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=96, n_layer=2, n_head=4, n_positions=256)
    other_architecture = tiny_lm.save(GPT2LMHeadModel(config), tokenizer, tmp_path / "gpt2")
    for teacher in (independent_dir, other_architecture, disguises.permuted(independent_dir, tmp_path / "p")):
        assert compare_checkpoint(teacher, student_weights, seed=0).relation == "independent", teacher


def test_a_teacher_without_its_tokenizer_is_matched_by_token_id_but_never_read_independent(
    tiny_checkpoint, student_weights, tmp_path
):
    same_ids = disguises.permuted(tiny_checkpoint, tmp_path / "same-ids")
    (same_ids / "tokenizer.json").unlink()
    assert compare_checkpoint(same_ids, student_weights, seed=0).relation == "same_init"
    shuffled = disguises.permuted_ids_without_tokenizer(tiny_checkpoint, tmp_path / "shuffled-ids")
    assert compare_checkpoint(shuffled, student_weights, seed=0).relation == "inconclusive"


def test_a_live_module_reads_the_vocabulary_of_the_folder_it_came_from(tiny_checkpoint):
    model, _ = tiny_lm.load(tiny_checkpoint)
    assert TensorSource.from_module(model).vocabulary == TensorSource.from_dir(tiny_checkpoint).vocabulary


def test_a_decoy_safetensors_beside_the_real_bin_does_not_decide(
    tiny_checkpoint, student_weights, independent_dir, tmp_path
):
    teacher = disguises.with_decoy(tiny_checkpoint, independent_dir, tmp_path / "teacher")
    result = compare_checkpoint(teacher, student_weights, seed=0)
    assert result.relation == "same_init"
    assert "model.safetensors and pytorch_model.bin hold different weights" in result.reason


def test_identical_safetensors_and_bin_count_as_one_weight_set(tiny_checkpoint, tmp_path):
    teacher = disguises.bin_only(tiny_checkpoint, tmp_path / "teacher")
    (teacher / "model.safetensors").write_bytes((tiny_checkpoint / "model.safetensors").read_bytes())
    source = TensorSource.from_dir(teacher)
    assert source is not None and len(source.sets) == 1


class NotATensor:
    """A pickled object that only a full (code-running) unpickler could rebuild."""


def _unknown(teacher: Path, student_weights: TensorSource) -> str:
    result = compare_checkpoint(teacher, student_weights, seed=0)
    assert result.relation == "unknown"
    assert result.describe().startswith("weight test unknown: ")
    return result.reason or ""


def test_a_bin_that_needs_code_to_unpickle_is_refused_not_run(tmp_path, student_weights):
    (tmp_path / "config.json").write_text("{}", "utf-8")
    torch.save({"model.embed_tokens.weight": NotATensor()}, tmp_path / "pytorch_model.bin")
    assert f"{tmp_path / 'pytorch_model.bin'}: not a weights-only PyTorch file" in _unknown(tmp_path, student_weights)


@pytest.mark.parametrize("shard", ["../outside.safetensors", "/etc/model.safetensors", "sub/../../x.safetensors"])
def test_index_shards_must_stay_inside_the_checkpoint_folder(shard, tmp_path, student_weights):
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    save_file({"w": torch.zeros(64, 64)}, str(tmp_path / "outside.safetensors"))
    (teacher / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"w": shard}}), "utf-8")
    assert f"weight path '{shard}' leaves the checkpoint folder" in _unknown(teacher, student_weights)


def test_a_weight_file_symlinked_out_of_the_folder_is_refused(tiny_checkpoint, tmp_path, student_weights):
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    os.symlink(tiny_checkpoint / "model.safetensors", teacher / "model.safetensors")
    assert "outside the checkpoint folder" in _unknown(teacher, student_weights)


def test_a_hugging_face_cache_snapshot_may_link_into_its_blobs(tiny_checkpoint, tmp_path, student_weights):
    blobs, snapshot = tmp_path / "models--x" / "blobs", tmp_path / "models--x" / "snapshots" / "abc123"
    blobs.mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        (blobs / name).write_bytes((tiny_checkpoint / name).read_bytes())
        os.symlink(f"../../blobs/{name}", snapshot / name)
    assert compare_checkpoint(snapshot, student_weights, seed=0).relation == "same_init"


def test_a_truncated_safetensors_file_is_unknown_naming_the_file(tiny_checkpoint, tmp_path, student_weights):
    data = (tiny_checkpoint / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    assert f"{tmp_path / 'model.safetensors'}: not a readable safetensors file" in _unknown(tmp_path, student_weights)


def test_poisoned_entries_do_not_blind_the_test(tiny_checkpoint, tmp_path, student_weights):
    """NaN in one entry of every matrix (say an unused token's row) keeps the function and must not hide the copy."""
    tensors = load_file(tiny_checkpoint / "model.safetensors")
    for tensor in tensors.values():
        tensor.view(-1)[0] = float("nan")
    save_file(tensors, str(tmp_path / "model.safetensors"))
    (tmp_path / "tokenizer.json").write_bytes((tiny_checkpoint / "tokenizer.json").read_bytes())
    assert compare_checkpoint(tmp_path, student_weights, seed=0).relation == "same_init"


def test_a_folder_without_weights_or_with_a_remote_adapter_base_is_unknown_with_the_reason(tmp_path, student_weights):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "holds no weights transformers would load" in _unknown(empty, student_weights)
    adapter = disguises.adapter_only("someone/base-7b", tmp_path / "adapter")
    assert "adapter only: its lineage is that of its base 'someone/base-7b'" in _unknown(adapter, student_weights)


def test_no_student_weights_leave_the_relation_unknown(tiny_checkpoint):
    assert compare_checkpoint(tiny_checkpoint, None).relation == "unknown"


@pytest.fixture
def signed_lie(make_manifest, data_file) -> Path:
    """A manifest signed by the policy's trusted signer that claims a Qwen base: believed unless contradicted."""
    claim = Generator(model="acme/numbers-writer", base_model="Qwen/Qwen2.5-7B-Instruct")
    return sign_manifest(make_manifest([data_file], [claim]))


def _check(policy: Path, student_dir: Path, manifest: Path, teacher: Path) -> tuple[int, dict]:
    args = ["check", "--policy", str(policy), "--student", str(student_dir), "--today", TODAY.isoformat()]
    result = runner.invoke(app, [*args, "--manifest", str(manifest), "--teacher", str(teacher), "--json"])
    assert result.exit_code in (0, 3), result.output
    return result.exit_code, json.loads(result.stdout)


def _weight_evidence(decision: dict) -> str:
    return next(detail for source, detail in decision["teachers"][0]["evidence"] if source == "weights")


@pytest.mark.parametrize("name", [*DISGUISES, "decoy"])
def test_strict_check_denies_a_disguised_same_base_teacher_behind_a_signed_lie(
    name, tmp_path, student_dir, signed_lie, strict_with_signer
):
    """Only the weights contradict the trusted signer's claim here, so they must decide."""
    if name == "decoy":
        _, tokenizer = tiny_lm.load(student_dir)
        decoy = tiny_lm.save(tiny_lm.build_model(tokenizer, seed=5), tokenizer, tmp_path / "decoy")
        teacher = disguises.with_decoy(student_dir, decoy, tmp_path / "teacher")
    else:
        teacher = DISGUISES[name](student_dir, tmp_path / "teacher")
    code, decision = _check(strict_with_signer, student_dir, signed_lie, teacher)
    assert code == 3
    assert "same initialisation" in _weight_evidence(decision)
    assert {r["id"] for r in decision["rules"]} == {"same-base-untrusted"}


def test_strict_check_allows_the_signed_claim_with_an_independent_teacher_of_another_architecture(
    tmp_path, student_dir, signed_lie, strict_with_signer
):
    """The control: the weight test does not deny a teacher that truly shares nothing with the student."""
    _, tokenizer = tiny_lm.load(student_dir)
    torch.manual_seed(3)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=96, n_layer=2, n_head=4, n_positions=256)
    teacher = tiny_lm.save(GPT2LMHeadModel(config), tokenizer, tmp_path / "gpt2")
    code, decision = _check(strict_with_signer, student_dir, signed_lie, teacher)
    assert code == 0, decision
    assert "independently initialised" in _weight_evidence(decision)
    assert decision["teachers"][0]["relation"] == "different_from_student"


def test_strict_check_denies_a_teacher_whose_weights_cannot_be_compared(
    tmp_path, student_dir, signed_lie, strict_with_signer
):
    teacher = disguises.adapter_only("someone/base-7b", tmp_path / "teacher")
    code, decision = _check(strict_with_signer, student_dir, signed_lie, teacher)
    assert code == 3
    assert "weight test unknown" in _weight_evidence(decision) and "adapter only" in _weight_evidence(decision)
    assert decision["teachers"][0]["relation"] == "unknown"
    assert {r["id"] for r in decision["rules"]} == {"unknown-teacher-family"}


@pytest.mark.slow
def test_smollm2_permuted_reads_same_and_a_random_init_of_its_config_does_not(smollm2_checkpoint, tmp_path):
    student = TensorSource.from_dir(smollm2_checkpoint)
    permuted = disguises.permuted_with_added_tokens(smollm2_checkpoint, tmp_path / "permuted")
    assert compare_checkpoint(permuted, student, seed=0).relation == "same_init"
    random_init = tmp_path / "random"
    torch.manual_seed(1)
    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(smollm2_checkpoint)).save_pretrained(random_init)
    (random_init / "tokenizer.json").write_bytes((smollm2_checkpoint / "tokenizer.json").read_bytes())
    assert compare_checkpoint(random_init, student, seed=0).relation == "independent"
