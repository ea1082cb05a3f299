"""The decision is a pure function of gathered facts and `today`: it reads no file."""

from __future__ import annotations

import shutil

import datasets

from distill_guard.provenance.decide import decide
from distill_guard.provenance.evidence import gather_dataset, gather_models

from .conftest import FUTURE, PAST, TODAY


def test_decide_needs_no_file_and_takes_today(make_policy, make_manifest, data_file, student_dir, tmp_path):
    audit = {"ref": "SEC-123", "expires": TODAY.isoformat()}
    policy = make_policy(trusted_generators=[{"match": "distill-guard/tiny-teacher", "audit": audit}]).policy
    dataset = datasets.Dataset.from_json(str(data_file))
    facts = gather_dataset(policy, dataset, [make_manifest([data_file])], None)
    models = gather_models(policy, facts, str(student_dir))
    shutil.rmtree(data_file.parent)  # the data and its manifest are gone: deciding must not notice
    assert decide(policy, facts, models, PAST).decision.outcome == "allow"
    later = decide(policy, facts, models, FUTURE).decision
    assert later.outcome == "deny" and later.decided_on == FUTURE.isoformat()
    assert [r.id for r in later.rules] == ["same-base-untrusted"]
