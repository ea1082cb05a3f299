"""Calibration of the weight test on tiny models: fine-tuned copies match, fresh initialisations do not."""

from __future__ import annotations

from distill_guard.provenance.weights import (
    INDEPENDENT_AT_MOST,
    SAME_INIT_AT_LEAST,
    TensorSource,
    compare_weights,
)
from distill_guard.scenarios import tiny_lm

from .conftest import finetune


def test_fine_tuned_copy_shares_the_initialisation(tiny_checkpoint, sibling_teacher_dir):
    result = compare_weights(TensorSource.from_dir(sibling_teacher_dir), TensorSource.from_dir(tiny_checkpoint))
    assert result.relation == "same_init"
    assert result.median_correlation > 0.9
    assert result.tensors_compared == 16


def test_aggressively_fine_tuned_copy_still_shares_the_initialisation(tiny_checkpoint, tmp_path):
    hard = finetune(tiny_checkpoint, tmp_path / "hard", steps=40, lr=1e-2)
    result = compare_weights(TensorSource.from_dir(hard), TensorSource.from_dir(tiny_checkpoint))
    assert result.relation == "same_init"
    assert result.median_correlation > SAME_INIT_AT_LEAST


def test_fresh_initialisations_of_the_same_architecture_are_independent(tiny_checkpoint, fresh_teacher_dir):
    result = compare_weights(TensorSource.from_dir(fresh_teacher_dir), TensorSource.from_dir(tiny_checkpoint))
    assert result.relation == "independent"
    assert abs(result.median_correlation) < INDEPENDENT_AT_MOST


def test_a_live_module_compares_like_its_checkpoint(tiny_checkpoint, sibling_teacher_dir):
    model, _ = tiny_lm.load(tiny_checkpoint)
    teacher = TensorSource.from_dir(sibling_teacher_dir)
    from_module = compare_weights(teacher, TensorSource.from_module(model), seed=0)
    from_disk = compare_weights(teacher, TensorSource.from_dir(tiny_checkpoint), seed=0)
    assert from_module == from_disk


def test_a_folder_without_full_weights_gives_no_weight_source(tmp_path):
    (tmp_path / "adapter_model.safetensors").write_bytes(b"")
    assert TensorSource.from_dir(tmp_path) is None
