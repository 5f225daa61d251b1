"""Compact Ray payloads: exact round trips, scores sent once per actor, lost replies named."""

from __future__ import annotations

import pickle

import pytest

from natsray.engine.wire import ScoreDecoder, ScoreEncoder, pack_candidates, unpack_candidates
from natsray.records import Candidate, Result, Status
from natsray.search_space import Arch


def test_candidates_round_trip_exactly_as_plain_values():
    batch = [
        Candidate(0, Arch.from_code(0)),
        Candidate(7, Arch.from_code(15624), (3, 5), 2**32 - 1, budget=200),
        Candidate(8, Arch.from_code(123), (7,), 42),
    ]
    packed = pack_candidates(batch)
    assert type(packed) is bytes and all(type(column) is list for column in pickle.loads(packed))
    restored = unpack_candidates(packed)
    assert restored == batch
    assert restored[1].arch is Arch.from_code(15624)  # interned cell


def _per_cell_results(ids, score):
    objectives, metrics = score
    return [Result(i, Status.OK, objectives, metrics, 12.5, 1e-6, None, "vm:1") for i in ids]


def test_scores_of_a_per_cell_evaluator_travel_once_and_are_shared_in_the_driver():
    a = ({"valid_accuracy": 80.0}, {"nats_index": 3})  # one cell's score: the same dicts each time
    b = ({"valid_accuracy": 91.5}, {"nats_index": 9})
    encoder, decoder = ScoreEncoder(shared_scores=True), ScoreDecoder()
    first = encoder.pack(_per_cell_results([0, 1], a) + _per_cell_results([2], b))
    new, rows = pickle.loads(first)
    assert [number for number, *_ in new] == [0, 1] and [len(row) for row in rows] == [4, 4, 4]
    second = encoder.pack(_per_cell_results([3], b) + _per_cell_results([4], a))
    assert pickle.loads(second)[0] == []  # nothing new: only numbers travel
    got = decoder.unpack(first) + decoder.unpack(second)
    assert [r.candidate_id for r in got] == [0, 1, 2, 3, 4]
    assert [r.objectives["valid_accuracy"] for r in got] == [80.0, 80.0, 91.5, 91.5, 80.0]
    assert all(r.status is Status.OK and r.cost_s == 12.5 and r.worker == "vm:1" for r in got)
    assert got[0].objectives is got[4].objectives and got[2].metrics is got[3].metrics  # one dict per cell


def test_failures_other_content_and_unshared_results_are_sent_whole():
    objectives, metrics = {"valid_accuracy": 80.0}, {"nats_index": 3}
    encoder = ScoreEncoder(shared_scores=True)
    results = [
        Result(0, Status.OK, objectives, metrics, 1.0),
        Result(1, Status.OK, objectives, metrics, 2.0),  # same dict, another cost: not the same score
        Result.failed(2, "boom", worker="vm:2"),
    ]
    packed = encoder.pack(results)
    new, rows = pickle.loads(packed)
    assert len(new) == 1 and [len(row) for row in rows] == [4, 8, 8]
    got = ScoreDecoder().unpack(packed)
    assert [(r.status, r.cost_s, r.error) for r in got] == [
        (Status.OK, 1.0, None),
        (Status.OK, 2.0, None),
        (Status.FAILED, 0.0, "boom"),
    ]
    assert got[2].objectives == {} and got[2].worker == "vm:2"
    unshared = pickle.loads(ScoreEncoder(shared_scores=False).pack(results[:1]))
    assert unshared[0] == [] and len(unshared[1][0]) == 8


def test_an_unpicklable_result_fails_its_call_and_numbers_nothing():
    good = ({"valid_accuracy": 80.0}, {"nats_index": 3})
    bad = ({"valid_accuracy": 81.0}, {"handle": lambda: None})
    encoder, decoder = ScoreEncoder(shared_scores=True), ScoreDecoder()
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        encoder.pack(_per_cell_results([0], good) + _per_cell_results([1], bad))
    got = decoder.unpack(encoder.pack(_per_cell_results([2], good)))  # numbered again, sent again
    assert got[0].status is Status.OK and got[0].objectives == {"valid_accuracy": 80.0}


def test_a_score_whose_first_reply_was_lost_fails_its_results_with_a_reason():
    score = ({"valid_accuracy": 80.0}, {})
    encoder = ScoreEncoder(shared_scores=True)
    encoder.pack(_per_cell_results([0], score))  # this reply never reaches the driver
    got = ScoreDecoder().unpack(encoder.pack(_per_cell_results([1], score)))
    assert got[0].status is Status.FAILED and "reply never arrived" in got[0].error
