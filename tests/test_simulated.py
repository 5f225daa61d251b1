"""Simulated-parallel mode: event clock, completion order, budget protocol, resume (no Ray)."""

from __future__ import annotations

import pytest
from toy_evaluator import FixedListConfig, ToyConfig, make_config, run_killed, toy_cost, trajectory

from natsray.config import BudgetConfig, EngineConfig
from natsray.engine import simulation
from natsray.engine.checkpoint import read_journal, read_json
from natsray.engine.runner import run_experiment
from natsray.engine.scheduler import Scheduler
from natsray.engine.simulation import SimulatedPool
from natsray.evaluators.function import FunctionConfig
from natsray.records import Result, Status
from natsray.search_space import Arch
from natsray.strategies.random_search import RandomSearchConfig

# Cells with 3, 1, 2 and 1 conv edges: toy costs 4, 2, 3, 2 simulated seconds.
CODES = tuple(
    Arch.from_indices(ops).code
    for ops in ((2, 2, 3, 0, 0, 0), (3, 0, 0, 0, 0, 0), (2, 3, 0, 0, 0, 0), (0, 2, 0, 0, 0, 0))
)


def simulated(workers: int) -> EngineConfig:
    return EngineConfig(mode="simulated", simulated_workers=workers)


def test_costs_are_as_planned():
    assert [toy_cost(Arch.from_code(c)) for c in CODES] == [4.0, 2.0, 3.0, 2.0]


def test_two_workers_follow_the_hand_computed_schedule(tmp_path):
    # t=0: c0 (until 4) and c1 (until 2) start; t=2: c1 ends, c2 starts (until 5);
    # t=4: c0 ends, c3 starts (until 6); t=5: c2 ends; t=6: c3 ends.
    config = make_config(
        strategy=FixedListConfig(codes=CODES),
        engine=simulated(2),
        budget=BudgetConfig(evaluations=100),
    )
    summary = run_experiment(config, tmp_path)
    records = read_journal(tmp_path / "evaluations.jsonl")
    assert [(r["candidate_id"], r["sim_submit"], r["sim_finish"]) for r in records] == [
        (1, 0.0, 2.0),
        (0, 0.0, 4.0),
        (2, 2.0, 5.0),
        (3, 4.0, 6.0),
    ]
    assert summary.simulated_seconds == 6.0
    assert summary.total_cost_seconds == 11.0
    assert summary.stop_reason == "strategy finished"


def test_completion_order_is_non_decreasing_with_many_workers(tmp_path):
    config = make_config(engine=simulated(4), budget=BudgetConfig(evaluations=80))
    summary = run_experiment(config, tmp_path)
    finishes = [r["sim_finish"] for r in read_journal(tmp_path / "evaluations.jsonl")]
    assert finishes == sorted(finishes)
    assert summary.evaluations == 80
    # Four workers: the clock is well below the sum of costs.
    assert summary.simulated_seconds < summary.total_cost_seconds / 2


@pytest.mark.parametrize(
    ("budget", "evaluated", "clock"),
    [(3.0, 1, 4.0), (4.0, 1, 4.0), (5.5, 2, 6.0), (6.0, 2, 6.0), (6.5, 3, 9.0)],
)
def test_one_worker_budget_counts_the_evaluation_that_crosses_it(tmp_path, budget, evaluated, clock):
    # NATS-Bench REA: `while total_time_cost < time_budget: evaluate one more`.
    config = make_config(
        strategy=FixedListConfig(codes=CODES),
        engine=simulated(1),
        budget=BudgetConfig(simulated_seconds=budget),
    )
    summary = run_experiment(config, tmp_path)
    assert (summary.evaluations, summary.simulated_seconds) == (evaluated, clock)
    assert summary.total_cost_seconds == clock
    assert summary.stop_reason == "budget: simulated_seconds"


def test_simulated_needs_a_cheap_evaluator(tmp_path, monkeypatch):
    monkeypatch.setattr("toy_evaluator.ToyEvaluator.cheap", False)
    expected = (
        r"^engine\.mode: 'simulated' needs a cheap evaluator "
        r"\(benchmark, table, or function with cheap: true\), not 'toy'$"
    )
    with pytest.raises(ValueError, match=expected):
        run_experiment(make_config(engine=simulated(2)), tmp_path)


def test_pool_pops_by_finish_time_then_id():
    pool = SimulatedPool(3)
    for candidate_id, cost in ((0, 5.0), (1, 2.0), (2, 2.0)):
        pool.submit(Result(candidate_id, Status.OK, cost_s=cost))
    assert [pool.pop()[1:] for _ in range(3)] == [
        (2.0, Result(1, Status.OK, cost_s=2.0)),
        (2.0, Result(2, Status.OK, cost_s=2.0)),
        (5.0, Result(0, Status.OK, cost_s=5.0)),
    ]
    assert pool.clock == 5.0


@pytest.mark.parametrize("checkpoint_every", [4, 1000])
def test_killed_simulated_run_resumes_to_the_same_trajectory(tmp_path, checkpoint_every):
    config = make_config(
        engine=simulated(3),
        budget=BudgetConfig(evaluations=70),
        evaluator=ToyConfig(sleep_s=0.01),
        checkpoint_every=checkpoint_every,
    )
    reference = run_experiment(config, tmp_path / "reference")
    run_killed(config, tmp_path / "killed", lines=30)
    assert (tmp_path / "killed" / "checkpoint.json").exists() == (checkpoint_every < 30)
    resumed = run_experiment(config, tmp_path / "killed", resume=True)
    assert trajectory(tmp_path / "killed") == trajectory(tmp_path / "reference")
    assert resumed.simulated_seconds == reference.simulated_seconds
    assert resumed.best_arch == reference.best_arch


def fails_on_every_fifth_cell(arch: Arch, context: object) -> dict[str, float]:
    """A scoring function (``evaluator.type: function``) whose every fifth cell raises."""
    if arch.code % 5 == 0:
        raise RuntimeError(f"no record for {arch.code}")
    return {"score": arch.code % 101 / 100, "cost": 1.0 + arch.code % 7}


def _without_times(path):
    """A run file's content without what the wall clock sets (``wall_s``, ``finish_time``, ...)."""
    clock = {"wall_s", "finish_time", "wall_seconds", "elapsed_seconds", "sessions"}
    if path.suffix == ".jsonl":
        return [{k: v for k, v in record.items() if k not in clock} for record in read_journal(path)]
    return {k: v for k, v in read_json(path).items() if k not in clock}


@pytest.mark.parametrize("case", ["rea", "random", "failures"])
def test_the_one_worker_loop_gives_the_general_loops_run(tmp_path, monkeypatch, case):
    # NATS-Bench's protocol (one simulated worker, no de-duplication) takes the serial loop; with the
    # scheduler made non-serial the general event loop runs: journal, summary and checkpoints agree.
    evaluator = (
        FunctionConfig(
            function="test_simulated:fails_on_every_fifth_cell",
            cheap=True,
            cost_metric="cost",
            objective=("score",),
        )
        if case == "failures"
        else None
    )
    config = make_config(
        strategy=RandomSearchConfig() if case == "random" else None,
        evaluator=evaluator,
        engine=simulated(1),
        dedup="none",
        budget=BudgetConfig(simulated_seconds=400),
        checkpoint_every=7,
    )
    serial_calls = []
    serial = simulation._run_serial
    monkeypatch.setattr(simulation, "_run_serial", lambda *a: serial_calls.append(1) or serial(*a))
    fast = run_experiment(config, tmp_path / "serial")
    assert serial_calls == [1]
    monkeypatch.setattr(Scheduler, "serial", property(lambda self: False))
    general = run_experiment(config, tmp_path / "general")
    assert serial_calls == [1]
    assert fast.evaluations == general.evaluations > 50
    assert (fast.failed > 0) == (case == "failures")
    for name in ("evaluations.jsonl", "summary.json", "checkpoint.json"):
        assert _without_times(tmp_path / "serial" / name) == _without_times(tmp_path / "general" / name), name
