"""Real checkpoint folders pass the checkpoint-folder check; the corpus covers the hostile ones."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from distill_guard.policy.semantics import RESERVED_RULE_IDS
from distill_guard.provenance import decide, rules
from distill_guard.provenance.checkpoint_folder import CheckpointError, validate_checkpoint_folder
from distill_guard.scenarios import tiny_lm


def test_a_saved_tiny_checkpoint_passes(tiny_checkpoint: Path) -> None:
    validate_checkpoint_folder(tiny_checkpoint)


def test_a_sharded_checkpoint_passes_and_its_shards_are_checked(tiny_checkpoint: Path, tmp_path: Path) -> None:
    model, tokenizer = tiny_lm.load(tiny_checkpoint)
    folder = tmp_path / "sharded"
    model.save_pretrained(folder, max_shard_size="200KB")
    tokenizer.save_pretrained(folder)
    shards = sorted(folder.glob("model-*.safetensors"))
    assert len(shards) >= 2 and (folder / "model.safetensors.index.json").is_file()
    validate_checkpoint_folder(folder)
    shards[-1].write_bytes(shards[-1].read_bytes()[:100])
    with pytest.raises(CheckpointError, match=rf"{shards[-1]}: not a readable safetensors file"):
        validate_checkpoint_folder(folder)


def test_a_peft_adapter_folder_with_its_generated_card_passes(tiny_checkpoint: Path, tmp_path: Path) -> None:
    peft = pytest.importorskip("peft")
    model, _ = tiny_lm.load(tiny_checkpoint)
    adapter = peft.get_peft_model(model, peft.LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    adapter.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    validate_checkpoint_folder(tmp_path / "adapter")


def test_hugging_face_cache_snapshots_may_link_into_their_blobs(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """The hub cache stores snapshot files as symlinks to ../../blobs: that stays inside the model's entry."""
    entry = tmp_path / "hub" / "models--org--tiny"
    snapshot = entry / "snapshots" / "0123abcd"
    (entry / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for file in tiny_checkpoint.iterdir():
        blob = entry / "blobs" / f"blob-{file.name}"
        shutil.copy(file, blob)
        (snapshot / file.name).symlink_to(Path("../../blobs") / blob.name)
    validate_checkpoint_folder(snapshot)
    other = tmp_path / "hub" / "models--org--other" / "blobs" / "config"
    other.parent.mkdir(parents=True)
    other.write_text("{}")
    (snapshot / "config.json").unlink()
    (snapshot / "config.json").symlink_to(other)
    with pytest.raises(CheckpointError, match="outside the checkpoint folder"):
        validate_checkpoint_folder(snapshot)


def test_reserved_rule_ids_are_the_gates_own() -> None:
    built_in = {
        rules.UNKNOWN_LINEAGE,
        decide.MANIFEST_INTEGRITY,
        decide.MANIFEST_SIGNATURE,
        decide.UNKNOWN_PROVENANCE,
        decide.UNDECLARED_GENERATOR,
        decide.DATASET_NOT_CLEARED,
        decide.DATASET_NOT_FROM_MANIFEST,
        decide.DATASET_TRANSFORMED,
        decide.BATCH_NOT_FROM_DATASET,
        decide.DROP_AFTER_CLEARANCE,
    }
    assert built_in == RESERVED_RULE_IDS


def test_a_real_pretrained_checkpoint_passes(smollm2_checkpoint: Path) -> None:
    """SmolLM2-135M as saved by transformers: a 3.5 MB tokenizer.json, 31-digit model_max_length."""
    validate_checkpoint_folder(smollm2_checkpoint)


def test_the_library_refuses_a_hostile_teacher_folder_before_the_gate(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from distill_guard import DistillGuard

    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_checkpoint, teacher)
    (teacher / "config.json").write_text('{"a": ' * 100_000 + "1" + "}" * 100_000)
    policy = Path(__file__).resolve().parents[2] / "policies" / "strict.yaml"
    guard = DistillGuard.from_policy(policy, output_dir=tmp_path / "out")
    with pytest.raises(CheckpointError, match=rf"{teacher / 'config.json'}: JSON nesting too deep"):
        guard.clear_dataset([], tmp_path / "m.yaml", teacher=teacher)
