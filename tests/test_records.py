"""Records: objective directions, fitness, JSON round trips, per-candidate seeds, failures as data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from natsray.evaluators import BaseEvaluator, EvaluatorError, Score, evaluator_class
from natsray.records import Candidate, Objective, Result, Status, candidate_seed, candidate_seeds, fitness_of
from natsray.search_space import Arch

ARCH = Arch.from_str(
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("valid_accuracy", Objective("valid_accuracy", True)),
        ("test_accuracy@200", Objective("test_accuracy@200", True)),
        ("params", Objective("params", False)),
        ("latency", Objective("latency", False)),
        ("valid_loss", Objective("valid_loss", False)),
        ("synflow", Objective("synflow", True)),
        ("my_score:min", Objective("my_score", False)),
        ("params:max", Objective("params", True)),
    ],
)
def test_objective_parse_directions(spec: str, expected: Objective) -> None:
    assert Objective.parse(spec) == expected


@pytest.mark.parametrize("spec", ["", ":max", "acc:up"])
def test_objective_parse_rejects(spec: str) -> None:
    with pytest.raises(ValueError, match="objective"):
        Objective.parse(spec)


def test_fitness_negates_minimised_and_fails_on_missing() -> None:
    result = Result(3, Status.OK, objectives={"valid_accuracy": 91.5, "params": 0.8})
    objectives = [Objective.parse("valid_accuracy"), Objective.parse("params")]
    assert fitness_of(result, objectives) == (91.5, -0.8)
    assert fitness_of(result, [Objective.parse("latency")]) is None
    assert fitness_of(Result.failed(3, "boom"), objectives) is None


def test_result_and_candidate_json_round_trip() -> None:
    result = Result(
        7,
        Status.OK,
        {"valid_accuracy": 90.0},
        {"test_accuracy@200": 93.1, "x": None},
        12.5,
        0.01,
        worker="w1",
    )
    assert Result.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    candidate = Candidate(4, ARCH, (1, 2), 99)
    assert Candidate.from_dict(json.loads(json.dumps(candidate.to_dict()))) == candidate


def test_candidate_seed_depends_on_run_seed_and_id_only() -> None:
    assert candidate_seed(0, 5) == candidate_seed(0, 5)
    assert len({candidate_seed(0, i) for i in range(100)}) == 100
    assert candidate_seed(0, 5) != candidate_seed(1, 5)


class _HalfBroken(BaseEvaluator):
    Config = dict

    def score(self, candidate: Candidate) -> Score:
        if candidate.id % 2:
            raise RuntimeError("odd id\nsecond line")
        return Score({"valid_accuracy": float(candidate.id)}, {}, 1.0)


def test_base_evaluator_turns_exceptions_into_failed_results() -> None:
    results = _HalfBroken({}).evaluate([Candidate(i, ARCH) for i in range(4)])
    assert [r.status for r in results] == [Status.OK, Status.FAILED, Status.OK, Status.FAILED]
    line = next(i for i, text in enumerate(Path(__file__).read_text().splitlines(), 1) if "odd id\\n" in text)
    assert results[1].error == f"RuntimeError: odd id (test_records.py:{line})"  # first line, and where
    assert results[2].objectives == {"valid_accuracy": 2.0}
    assert all(r.worker for r in results)


def test_unknown_evaluator_type_names_the_choices() -> None:
    with pytest.raises(EvaluatorError, match=r"evaluator\.type: 'bench' is not one of benchmark, table"):
        evaluator_class("bench")


@pytest.mark.parametrize("run_seed", [0, 1, 12345, -7, 2**63 - 1, 2**64 - 1, 2**70 + 5])
def test_candidate_seeds_equal_candidate_seed_of_each_id(run_seed):
    for first in (0, 1000, 2**40):
        expected = [candidate_seed(run_seed, i) for i in range(first, first + 50)]
        assert candidate_seeds(run_seed, first, 50) == expected
        assert all(type(seed) is int for seed in candidate_seeds(run_seed, first, 3))


def test_fitness_of_a_nan_objective_is_none_and_infinities_are_kept() -> None:
    from natsray.records import Objective, Result, Status, fitness_of

    objectives = [Objective.parse("naswot"), Objective.parse("latency:min")]

    def result(naswot: float) -> Result:
        return Result(0, Status.OK, {"naswot": naswot, "latency": 2.0})

    assert fitness_of(result(float("nan")), objectives) is None  # NaN has no order: never ranked
    assert fitness_of(result(float("-inf")), objectives) == (float("-inf"), -2.0)
    assert fitness_of(result(3.0), objectives) == (3.0, -2.0)
