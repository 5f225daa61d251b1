"""The journal record's three forms agree: the fast line is the record's JSON, the columns are the
table its lines give, and the records read back from that table are the records."""

from __future__ import annotations

import json
import math

import pytest

from natsray.engine.checkpoint import Journal, encode_record
from natsray.engine.journal_record import RecordEncoder, evaluation_columns
from natsray.experiment.journal_table import table_from_columns, table_from_lines, table_records
from natsray.records import Candidate, Objective, Result, Status
from natsray.search_space import Arch

OBJECTIVES = (Objective("valid_accuracy"), Objective("latency", maximize=False))
SHARED_OBJECTIVES = {"valid_accuracy": 91.5, "latency": 0.004}
SHARED_METRICS = {"nats_index": 17, "test_accuracy@200": 93.25, "flops": None}


def ok(i: int, objectives: dict, metrics: dict, cost: float, wall: float, worker: str | None) -> Result:
    return Result(i, Status.OK, objectives, metrics, cost, wall, None, worker)


def entries(encoder: RecordEncoder) -> list:
    """Evaluations of every shape a journal line takes."""
    a, b = Arch.from_code(5), Arch.from_code(4321)
    times = {"sim_submit": 0.0, "sim_finish": 12.5, "finish_time": 1.7e9}
    cases = [
        (Candidate(0, a, (), 11), ok(0, SHARED_OBJECTIVES, SHARED_METRICS, 12.5, 1e-5, "w1"), None, 0),
        (Candidate(1, b, (0,), 12), ok(1, SHARED_OBJECTIVES, SHARED_METRICS, 12.5, 1e-5, "w1"), times, 0),
        (
            Candidate(2, a, (0, 1), 13, budget=12),
            ok(
                2, {"valid_accuracy": 80.0, "latency": 0.01}, {"test_accuracy@200": math.inf}, 3.0, 2e-5, "w2"
            ),
            None,
            0,
        ),
        (
            Candidate(3, b, (), 14),
            Result.failed(3, "EvaluatorError: no record", wall_s=0.5, worker="w2"),
            None,
            0,
        ),
        (
            Candidate(4, a, (2,), 15),
            ok(4, {"valid_accuracy": math.nan, "latency": 0.02}, {"nats_index": 3}, 1.0, 0.25, None),
            None,
            2,
        ),
        (
            Candidate(5, b, (4,), 16),
            ok(5, {"valid_accuracy": 70, "latency": 1}, {"nats_index": 4, "note": "n/a"}, 2.0, 0.5, "w1"),
            dict(times, sim_submit=1.0),
            0,
        ),
    ]
    return [
        (candidate, candidate.arch.to_str(), result, encoder.fitness(result), extra, attempts)
        for candidate, result, extra, attempts in cases
    ]


def test_the_fast_line_is_the_records_json_byte_for_byte() -> None:
    encoder = RecordEncoder(OBJECTIVES)
    for _ in range(2):  # the second pass hits every cache
        for entry in entries(encoder):
            candidate, _, result, fitness, extra, attempts = entry
            assert encoder.line(entry) == encode_record(
                encoder.record(candidate, result, fitness, extra, attempts)
            )
    assert encoder.fitness(entries(encoder)[0][2]) == (91.5, -0.004)
    assert encoder.fitness(entries(encoder)[4][2]) is None  # a NaN objective has no fitness


def test_columns_give_the_table_the_lines_give_and_read_back_as_the_records() -> None:
    encoder = RecordEncoder(OBJECTIVES)
    evaluations = entries(encoder)
    lines = [encoder.line(entry) for entry in evaluations]
    from_lines = table_from_lines("".join(lines).encode(), "journal")
    from_columns = table_from_columns(evaluation_columns(evaluations))
    # the same columns and types (in record order; a JSON reader puts a field first seen later last)
    assert sorted(from_columns.column_names) == sorted(from_lines.column_names)
    for name in from_lines.column_names:
        assert from_columns.schema.field(name).type == from_lines.schema.field(name).type, name
        expected, got = from_lines.column(name).to_pylist(), from_columns.column(name).to_pylist()
        assert json.dumps(got) == json.dumps(expected), name  # NaN-safe equality
    records = [json.loads(line) for line in lines]
    for record in records:  # a null member of a mapping is not kept in columns: absent == null
        for field in ("objectives", "metrics"):
            record[field] = {k: v for k, v in record[field].items() if v is not None}

    def numbers(value: object) -> object:  # a column is one type: 70 among floats reads back as 70.0
        return json.loads(json.dumps(value), parse_int=float)

    assert numbers(table_records(from_columns)) == numbers(records) != numbers(records[:-1])


def test_a_deferred_journal_keeps_evaluations_and_writes_their_lines_when_materialised(tmp_path) -> None:
    encoder = RecordEncoder(OBJECTIVES)
    evaluations = entries(encoder)
    made = []
    journal = Journal(tmp_path / "evaluations.jsonl", durable=False, deferred=lambda: made.append(True))
    journal.add(evaluations[:3], encoder)
    assert journal.entries() == evaluations[:3] and len(journal) == 3
    assert not journal.path.exists() and not made
    assert [r["candidate_id"] for r in journal.records()] == [0, 1, 2]
    journal.materialize()
    journal.add(evaluations[3:], encoder)
    journal.close()
    assert made == [True] and journal.entries() is None
    assert journal.path.read_text() == "".join(encoder.line(entry) for entry in evaluations)
    with pytest.raises(ValueError, match="on disk"):
        journal.text()


def test_checked_gives_what_checked_fitness_and_plain_scores_give_for_every_kind_of_value() -> None:
    """The shortcut for scores of plain floats must not change a verdict: each result's ``checked``
    equals the reference (checked_fitness, then plain_scores, an EvaluatorError making it FAILED)."""
    import numpy as np

    from natsray.errors import EvaluatorError
    from natsray.records import checked_fitness, plain_scores

    objective_values = [91.5, -0.0, math.inf, -math.inf, math.nan, 7, True, np.float32(3.5), None, "high"]
    metric_values = [{}, {"n": 3, "s": "x", "none": None, "nan": math.nan}, {"b": False}, {"np": np.int64(4)}]
    cases = [({"valid_accuracy": v, "latency": 0.25}, m) for v in objective_values for m in metric_values]
    cases += [({"latency": 0.25}, {}), ({"valid_accuracy": 1.0, "latency": np.float64(0.5)}, {})]
    for i, (objectives, metrics) in enumerate(cases):
        result = ok(i, objectives, metrics, 1.0, 0.1, "w")
        try:
            fitness = checked_fitness(result, OBJECTIVES, "lab:Ev")
            plain = plain_scores(objectives, metrics, "lab:Ev")
            expected = (
                result if plain is None else result._replace(objectives=plain[0], metrics=plain[1]),
                fitness,
            )
        except EvaluatorError as exc:
            failed = Result(
                i, Status.FAILED, cost_s=1.0, wall_s=0.1, error=f"EvaluatorError: {exc}", worker="w"
            )
            expected = (failed, None)
        got = RecordEncoder(OBJECTIVES, "lab:Ev").checked(result)
        assert repr(got) == repr(expected), (objectives, metrics)
        assert [type(v) for v in got[0].objectives.values()] == [
            type(v) for v in expected[0].objectives.values()
        ]
