"""Lineage sources other than the policy and the weights: adapter config, architecture fingerprints."""

from __future__ import annotations

import json
import shutil

import yaml

from distill_guard.policy.load import load_policy
from distill_guard.provenance.lineage import resolve_student, tokenizer_sha256

from .conftest import policy_data, write_card


def test_peft_adapter_config_names_the_family(tmp_path, make_policy):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "base_model_name_or_path": "other-lab/base-7b"}), "utf-8"
    )
    lineage = resolve_student(make_policy().policy, adapter)
    assert lineage.family == "other-lab"
    assert lineage.evidence[0].source == "adapter_config"


def test_card_with_a_list_of_base_models_names_every_family(tmp_path, make_policy, tiny_checkpoint):
    model = tmp_path / "model"
    shutil.copytree(tiny_checkpoint, model)
    write_card(model, "[other-lab/base-7b, distill-guard/tiny-base]")
    assert resolve_student(make_policy().policy, model).families == ("other-lab", "tiny-llama-demo")


def test_architecture_and_tokenizer_hash_identify_a_checkpoint_without_metadata(tmp_path, tiny_checkpoint):
    data = policy_data()
    data["families"][0]["fingerprints"] = [
        {"model_type": "llama", "hidden_size": 64, "tokenizer_sha256": tokenizer_sha256(tiny_checkpoint)}
    ]
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data), "utf-8")
    lineage = resolve_student(load_policy(path).policy, tiny_checkpoint)
    assert lineage.family == "tiny-llama-demo"
    assert lineage.evidence[0].source == "architecture"


def test_a_different_tokenizer_does_not_match_the_fingerprint(tmp_path, tiny_checkpoint):
    data = policy_data()
    data["families"][0]["fingerprints"] = [{"model_type": "llama", "tokenizer_sha256": "0" * 64}]
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data), "utf-8")
    assert resolve_student(load_policy(path).policy, tiny_checkpoint).family is None


def test_name_or_path_in_config_is_not_trusted(tmp_path, make_policy, tiny_checkpoint):
    model = tmp_path / "model"
    shutil.copytree(tiny_checkpoint, model)
    config = json.loads((model / "config.json").read_text("utf-8"))
    config["_name_or_path"] = "other-lab/base-7b"
    (model / "config.json").write_text(json.dumps(config), "utf-8")
    assert resolve_student(make_policy().policy, model).family is None
