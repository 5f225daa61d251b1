"""Multi-fidelity search: candidate budgets, (cell, budget) caching, ASHA promotions in evolution."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import archive_factory as factory
from toy_evaluator import ToyConfig, ToyEvaluator, make_config, run_killed, trajectory

from natsray.config import BudgetConfig, ConfigError, EngineConfig, config_from_dict
from natsray.engine.checkpoint import JOURNAL_FILE, read_journal
from natsray.engine.runner import run_experiment
from natsray.evaluators.benchmark import BenchmarkConfig, BenchmarkEvaluator
from natsray.evaluators.table import TableConfig, TableEvaluator, export_table
from natsray.evaluators.training import TrainingConfig, TrainingEvaluator
from natsray.records import Candidate
from natsray.search_space import Arch
from natsray.search_space.seen import SeenCells
from natsray.strategies import strategy_class
from natsray.strategies.asha_evolution import AshaEvolution, AshaEvolutionConfig

SMALL = AshaEvolutionConfig(population=3, sample_size=2, budgets=(1, 2, 4), eta=2)


def asha(config: AshaEvolutionConfig = SMALL, seed: int = 0) -> AshaEvolution:
    return AshaEvolution(config, seed=seed)


# ------------------------------------------------------------------ the record and the journal line
def test_candidate_budget_round_trips_and_defaults_to_none() -> None:
    plain = Candidate(4, Arch.from_code(9), (1,), 99)
    assert plain.budget is None and "budget" not in plain.to_dict()
    budgeted = plain._replace(budget=200)
    assert Candidate.from_dict(json.loads(json.dumps(budgeted.to_dict()))) == budgeted
    assert Candidate.from_dict(plain.to_dict()) == plain


def test_journal_line_fast_path_carries_the_budget() -> None:
    from natsray.engine.checkpoint import encode_record
    from natsray.engine.journal_record import RecordEncoder
    from natsray.records import Objective, Result, Status

    encoder = RecordEncoder([Objective("score")])
    result = Result(3, Status.OK, {"score": 1.5}, {"nats_index": 9}, 2.0, 0.1, worker="w")
    for budget in (None, 12, 200):
        candidate = Candidate(3, Arch.from_code(9), (1,), 99, budget)
        fitness = encoder.fitness(result)
        line = encoder.line((candidate, candidate.arch.to_str(), result, fitness, None, 0))
        assert line == encode_record(encoder.record(candidate, result, fitness, None))
        assert json.loads(line).get("budget") == budget


# ------------------------------------------------------------------ the strategy alone
def test_registered_and_config_errors_are_one_line() -> None:
    assert strategy_class("asha_evolution") is AshaEvolution
    for bad, field in (
        ({"budgets": [200, 12]}, "budgets"),
        ({"budgets": [12]}, "budgets"),
        ({"eta": 1}, "eta"),
    ):
        raw = {
            "strategy": {"name": "asha_evolution", **bad},
            "evaluator": {"type": "train", "dataset": "digits"},
            "budget": {"evaluations": 10},
        }
        with pytest.raises(ConfigError) as info:
            config_from_dict(raw)
        message = str(info.value)
        assert f"strategy.{field}" in message and "\n" not in message


def test_promotion_order_follows_asha() -> None:
    """ASHA's get_job (Li et al. 2020, Alg. 2): highest rung first, top floor(n/eta), once each."""
    strategy = asha()
    seeds = [strategy.ask() for _ in range(3)]
    assert [c.budget for c in seeds] == [1, 1, 1] and strategy.ask() is None  # waits for P results
    strategy.tell(seeds[2], (7.0,))  # out of order
    assert strategy.ask() is None  # one result: floor(1/2) = 0 promotable
    strategy.tell(seeds[0], (5.0,))
    first = strategy.ask()  # top 1 of {7, 5}: candidate 2's cell, one rung up
    assert (first.arch, first.budget, first.parents) == (seeds[2].arch, 2, (seeds[2].id,))
    strategy.tell(seeds[1], (9.0,))
    second = strategy.ask()  # top 1 of {9, 7, 5} is now candidate 1: promoted
    assert (second.arch, second.budget, second.parents) == (seeds[1].arch, 2, (seeds[1].id,))
    child = strategy.ask()  # nothing left to promote: evolution breeds at the lowest budget
    assert child.budget == 1 and child.parents and child.parents[0] in {c.id for c in seeds}
    strategy.tell(second, (3.0,))
    strategy.tell(first, (1.0,))
    third = strategy.ask()  # rung 1 = {3, 1}: its best goes to the top rung before anything else
    assert (third.arch, third.budget, third.parents) == (seeds[1].arch, 4, (second.id,))
    assert strategy.promotions == 3 and len({c.id for c in (*seeds, first, second, child, third)}) == 7
    assert [[i for i, _, _ in rung] for rung in strategy.rungs] == [
        [seeds[1].id, seeds[2].id, seeds[0].id],
        [
            second.id,
            first.id,
        ],
        [],
    ]


def test_promotions_bypass_the_seen_set() -> None:
    strategy = asha()
    seen = SeenCells("arch")
    strategy.attach_seen(seen)
    seeds = [strategy.ask() for _ in range(3)]
    assert len(seen) == 3
    for candidate, value in zip(seeds, (1.0, 2.0, 3.0), strict=True):
        strategy.tell(candidate, (value,))
    promotion = strategy.ask()
    assert promotion.arch == seeds[2].arch and promotion.budget == 2 and len(seen) == 3  # not re-drawn


def test_failures_are_dropped_and_a_failed_promotion_is_not_retried() -> None:
    strategy = asha()
    seeds = [strategy.ask() for _ in range(3)]
    strategy.tell(seeds[0], None)  # a failed seed is replaced by another random sample
    replacement = strategy.ask()
    assert replacement.budget == 1 and not replacement.parents
    for candidate, value in zip((seeds[1], seeds[2], replacement), (4.0, 6.0, 5.0), strict=True):
        strategy.tell(candidate, (value,))
    promotion = strategy.ask()
    assert promotion.arch == seeds[2].arch
    strategy.tell(promotion, None)
    nxt = strategy.ask()
    assert nxt.budget == 1  # the failed promotion is not proposed again
    assert [len(rung) for rung in strategy.rungs] == [3, 0, 0]


def test_unknown_budget_told_is_an_error() -> None:
    strategy = asha()
    with pytest.raises(ValueError, match="budget 7"):
        strategy.tell(Candidate(0, Arch.from_code(5), budget=7), (1.0,))


def drive(strategy: AshaEvolution, steps: int, start: int = 0) -> list[Candidate]:
    """Ask/tell with a deterministic fitness, telling in a shuffled-but-fixed order."""
    asked: list[Candidate] = []
    pending: list[Candidate] = []
    for step in range(start, start + steps):
        candidate = strategy.ask()
        if candidate is not None:
            asked.append(candidate)
            pending.append(candidate)
        if pending and (candidate is None or step % 3 == 0):
            told = pending.pop((step * 7) % len(pending))
            code = told.arch.code
            strategy.tell(told, None if code % 11 == 0 else ((code % 97) + told.budget / 10,))
    return asked


def test_seeded_and_state_dict_exact() -> None:
    one, two = asha(seed=4), asha(seed=4)
    assert drive(one, 120) == drive(two, 120)
    assert one.promotions > 5
    state = json.loads(json.dumps(one.state_dict()))
    copy = asha(seed=4)  # the engine rebuilds a strategy with the run seed, then loads its state
    copy.load_state_dict(state)
    assert drive(copy, 80, start=120) == drive(one, 80, start=120)
    assert copy.state_dict() == one.state_dict()


# ------------------------------------------------------------------ evaluators read the budget
@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    root = tmp_path_factory.mktemp("archive")
    archs = factory.write_archive(root, 12)
    return root, export_table(root, root.parent / "table.npz", progress=False), archs


@pytest.mark.parametrize("kind", ["table", "benchmark"])
def test_query_evaluators_read_the_budgets_hp(archive, kind) -> None:
    root, table, archs = archive
    source = {"table": str(table)} if kind == "table" else {"archive": str(root)}
    config_cls, evaluator_cls = (
        (TableConfig, TableEvaluator) if kind == "table" else (BenchmarkConfig, BenchmarkEvaluator)
    )
    common = {"objective": ("valid_accuracy",), "report": ("train_time", "test_accuracy@200")}
    at12 = evaluator_cls(config_cls(**source, hp="12", **common))
    at200 = evaluator_cls(config_cls(**source, hp="200", **common))
    cells = [Arch.from_str(arch) for arch in archs[:4]]
    plain12 = at12.evaluate([Candidate(i, cell) for i, cell in enumerate(cells)])
    plain200 = at200.evaluate([Candidate(i, cell) for i, cell in enumerate(cells)])
    mixed = at12.evaluate(
        [Candidate(i, cell, budget=200 if i % 2 else 12) for i, cell in enumerate(cells)]
        + [Candidate(9, cells[1], budget=12), Candidate(10, cells[0], budget=50)]
    )
    for i in range(4):
        expected = (plain200 if i % 2 else plain12)[i]
        got = mixed[i]
        assert got.ok and (got.objectives, got.metrics, got.cost_s) == (
            expected.objectives,
            expected.metrics,
            expected.cost_s,
        )
    assert plain200[1].cost_s > 10 * plain12[1].cost_s  # 200 epochs cost more than 12
    assert mixed[4].objectives == plain12[1].objectives  # same cell, other budget: not the cached one
    assert not mixed[5].ok and "budget: 50" in mixed[5].error and "\n" not in mixed[5].error


def test_training_evaluator_trains_budget_epochs() -> None:
    tiny = {"C": 4, "N": 1, "digits_size": 8, "batch_size": 32, "augment": False, "threads": 1}
    cell = Arch.from_str(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
    )
    (two_epochs,) = TrainingEvaluator(TrainingConfig(**tiny, epochs=2)).evaluate([Candidate(0, cell, seed=5)])
    evaluator = TrainingEvaluator(TrainingConfig(**tiny, epochs=1))
    one, budget2, bad = evaluator.evaluate(
        [
            Candidate(0, cell, seed=5),
            Candidate(1, cell, seed=5, budget=2),
            Candidate(2, cell, seed=5, budget=0),
        ]
    )
    assert budget2.objectives == two_epochs.objectives and budget2.objectives != one.objectives
    assert not bad.ok and bad.error.startswith("EvaluatorError: budget:")


# ------------------------------------------------------------------ through the engine
def mf_config(**kwargs):
    return make_config(
        strategy=AshaEvolutionConfig(population=6, sample_size=3, budgets=(1, 3), eta=3),
        engine=EngineConfig(mode="simulated", simulated_workers=3),
        **kwargs,
    )


def test_promoted_cells_are_evaluated_again_at_the_higher_budget(tmp_path) -> None:
    ToyEvaluator.calls.clear()
    summary = run_experiment(mf_config(budget=BudgetConfig(evaluations=60)), tmp_path / "run")
    records = read_journal(tmp_path / "run" / JOURNAL_FILE)
    assert summary.evaluations == len(records) == 60 and summary.cached == 0
    by_id = {r["candidate_id"]: r for r in records}
    promoted = [r for r in records if r["budget"] == 3]
    assert len(promoted) >= 10 and all(r["budget"] in (1, 3) for r in records)
    for record in promoted:  # same cell as its parent, evaluated again (its own cost), not copied
        parent = by_id[record["parents"][0]]
        assert parent["arch"] == record["arch"] and parent["budget"] == 1
        assert record["metrics"]["budget"] == 3 and record["cost_s"] == 3 * parent["cost_s"]
        assert record["fitness"][0] == pytest.approx(parent["fitness"][0] + 0.002)
    calls = ToyEvaluator.calls
    assert len(calls) == 60 and len(set(calls)) == 60  # each (cell, budget) once: dedup is per budget
    assert summary.best_candidate_id in {r["candidate_id"] for r in promoted}  # the best is at the top budget


def test_deterministic_and_killed_run_resumes_to_the_same_trajectory(tmp_path) -> None:
    config = mf_config(
        budget=BudgetConfig(evaluations=80), evaluator=ToyConfig(sleep_s=0.01), checkpoint_every=7
    )
    reference = run_experiment(config, tmp_path / "reference")
    again = run_experiment(config, tmp_path / "again")
    assert trajectory(tmp_path / "again") == trajectory(tmp_path / "reference")
    run_killed(config, tmp_path / "killed", lines=35)
    resumed = run_experiment(config, tmp_path / "killed", resume=True)
    assert trajectory(tmp_path / "killed") == trajectory(tmp_path / "reference")
    assert {t[-1] for t in trajectory(tmp_path / "reference")} == {1, 3}
    assert resumed.best_arch == reference.best_arch == again.best_arch
    assert resumed.simulated_seconds == reference.simulated_seconds
