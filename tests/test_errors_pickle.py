"""A halt or a denial raised in a worker process reaches the launcher (Ray Train's driver, multiprocessing)
pickled: it must come back with its record or decision, not as a bare message."""

from __future__ import annotations

import pickle

from distill_guard import ProvenanceDenied, TrainingHalted
from distill_guard.provenance.decision import Decision
from tests.drift.test_halt_record import RECORD


def test_training_halted_pickles_with_its_halt_record():
    copy = pickle.loads(pickle.dumps(TrainingHalted(RECORD)))
    assert isinstance(copy, TrainingHalted) and copy.record == RECORD and str(copy) == str(RECORD)


def test_provenance_denied_pickles_with_its_decision_and_rank():
    decision = Decision(outcome="deny", policy="strict", dataset="numbers", decided_on="train_begin")
    original = ProvenanceDenied(decision, denied_on_rank=1)
    copy = pickle.loads(pickle.dumps(original))
    assert (copy.decision, copy.denied_on_rank, str(copy)) == (decision, 1, str(original))
