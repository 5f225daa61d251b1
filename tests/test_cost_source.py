"""Params, FLOPs and latency have one source whatever ``hp`` is configured (issue 11, item 2).

NATS-Bench's archive holds cells whose hp-200 record carries other ``params`` than the hp-12
one (NATS-Bench issue #36); the archive below plants such a disagreement in every cell and
checks neither evaluator serves it, as an objective, a report metric or a suffixed metric.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import archive_factory as factory

from natsray.evaluators.benchmark import BenchmarkConfig, BenchmarkEvaluator
from natsray.evaluators.table import TableConfig, TableEvaluator, export_table
from natsray.records import Candidate, Status
from natsray.search_space import Arch

PLANTED = 1000.0  # added to every hp-200 params / FLOPs / latency
N_RECORDS = 6


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    root = tmp_path_factory.mktemp("planted")
    archs = factory.write_archive(root / "archive", N_RECORDS, planted_200_cost=PLANTED)
    table = export_table(root / "archive", root / "table.npz", progress=False)
    return root / "archive", table, archs


def _evaluator(kind: str, planted: tuple[Path, Path, list[str]], **fields):
    archive, table, _ = planted
    if kind == "benchmark":
        return BenchmarkEvaluator(BenchmarkConfig(archive=str(archive), **fields))
    return TableEvaluator(TableConfig(table=str(table), **fields))


@pytest.mark.parametrize("kind", ["benchmark", "table"])
@pytest.mark.parametrize("dataset", ["cifar10", "cifar100", "ImageNet16-120"])
def test_hp200_serves_the_hp12_cost_record(planted, kind: str, dataset: str) -> None:
    evaluator = _evaluator(
        kind,
        planted,
        dataset=dataset,
        hp="200",
        objective=("valid_accuracy", "params:min", "flops:min"),
        report=("latency", "params@200", "flops@12", "latency@200"),
    )
    archs = planted[2]
    results = evaluator.evaluate([Candidate(i, Arch.from_str(archs[i]), seed=i) for i in range(N_RECORDS)])
    for index, result in enumerate(results):
        assert result.status is Status.OK, result.error
        assert result.objectives["params"] == factory.params(index, dataset)
        assert result.objectives["flops"] == factory.flops(index, dataset)
        assert result.metrics["params@200"] == factory.params(index, dataset)
        assert result.metrics["flops@12"] == factory.flops(index, dataset)
        assert result.metrics["latency"] == result.metrics["latency@200"] == factory.latency(index, dataset)


@pytest.mark.parametrize("kind", ["benchmark", "table"])
def test_cost_metrics_do_not_change_with_hp(planted, kind: str) -> None:
    archs = planted[2]
    batch = [Candidate(i, Arch.from_str(archs[i])) for i in range(N_RECORDS)]
    by_hp = {}
    for hp in ("12", "200"):
        evaluator = _evaluator(kind, planted, hp=hp, objective=("params",), report=("flops", "latency"))
        by_hp[hp] = [
            (r.objectives["params"], r.metrics["flops"], r.metrics["latency"])
            for r in evaluator.evaluate(batch)
        ]
    assert by_hp["12"] == by_hp["200"]
    # the hp-dependent metrics still follow hp: the planted archive is not degenerate
    accuracy = {
        hp: _evaluator(kind, planted, hp=hp).evaluate(batch[:1])[0].objectives["valid_accuracy"]
        for hp in ("12", "200")
    }
    assert accuracy["12"] != accuracy["200"]
