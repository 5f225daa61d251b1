"""The Ray engine: equivalence with the in-process loop, batching, budgets, dedup, errors."""

from __future__ import annotations

import json
import os
import signal
import threading

import pytest
from toy_evaluator import FixedListConfig, ToyConfig, local_ray_session, make_config, trajectory

from natsray.callbacks import Callback
from natsray.config import BudgetConfig, EngineConfig
from natsray.engine.checkpoint import read_journal
from natsray.engine.cluster import ConsistentInterrupt, sigterm_interrupts
from natsray.engine.runner import DEFAULT_BATCH, IN_PROCESS_BATCH, _batch_and_window, run_experiment
from natsray.engine.scheduler import MAX_CACHE_STREAK
from natsray.engine.summary import pareto_front
from natsray.errors import FailFastConfigError
from natsray.evaluators import EvaluatorError
from natsray.records import Objective
from natsray.search_space import Arch
from natsray.strategies.random_search import RandomSearchConfig

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    with local_ray_session():
        yield


def test_ordered_ray_run_equals_the_in_process_loop_for_any_actor_count(tmp_path):
    def engine(**kwargs):
        return EngineConfig(mode="ordered", batch_size=4, max_in_flight=8, **kwargs)

    budget = BudgetConfig(evaluations=80)
    local = run_experiment(make_config(engine=engine(in_process=True), budget=budget), tmp_path / "local")
    one = run_experiment(make_config(engine=engine(), budget=budget, actors=1), tmp_path / "one")
    two = run_experiment(make_config(engine=engine(), budget=budget, actors=2), tmp_path / "two")
    assert trajectory(tmp_path / "one") == trajectory(tmp_path / "local")
    assert trajectory(tmp_path / "two") == trajectory(tmp_path / "local")
    assert one.best_arch == two.best_arch == local.best_arch
    assert local.ray_calls == 0 and one.ray_calls > 0


def test_cheap_evaluations_are_batched_into_few_ray_calls(tmp_path):
    config = make_config(strategy=RandomSearchConfig(), budget=BudgetConfig(evaluations=2000), actors=2)
    assert _batch_and_window(config, 2, cheap=True) == (25, 100)  # window: 5 % of the budget
    summary = run_experiment(config, tmp_path)
    assert summary.evaluations == 2000 and summary.stop_reason == "budget: evaluations"
    assert 2000 // 25 <= summary.ray_calls <= 2000 // 25 + 4, summary.ray_calls
    workers = {r["worker"] for r in read_journal(tmp_path / "evaluations.jsonl")}
    assert len(workers) == 2


@pytest.mark.parametrize(
    ("engine", "actors", "evaluations", "cheap", "expected"),
    [
        ({}, 1, 100_000, True, (DEFAULT_BATCH, 2 * DEFAULT_BATCH)),  # two calls queued per actor
        ({}, 2, None, True, (DEFAULT_BATCH, 4 * DEFAULT_BATCH)),  # no evaluation budget: no cap
        ({}, 2, 1000, True, (13, 50)),  # capped at 5 % of the budget, the batch shrinks to match
        ({}, 4, 100, True, (1, 8)),  # never below 2 per actor
        ({"in_process": True}, 1, 100_000, True, (IN_PROCESS_BATCH, IN_PROCESS_BATCH)),
        ({"in_process": True}, 1, 500, True, (25, 25)),
        ({"batch_size": 8}, 2, 200, True, (8, 10)),  # an explicit batch is kept
        ({"max_in_flight": 7}, 2, 1000, True, (DEFAULT_BATCH, 7)),  # an explicit window is kept
        ({"mode": "simulated", "simulated_workers": 3}, 1, 1000, True, (IN_PROCESS_BATCH, 3)),
        ({}, 3, 1000, False, (1, 6)),  # training: one candidate per call
    ],
)
def test_default_batch_and_window(engine, actors, evaluations, cheap, expected):
    budget = BudgetConfig(evaluations=evaluations, wall_seconds=None if evaluations else 60.0)
    config = make_config(engine=EngineConfig(**engine), budget=budget, actors=actors)
    workers = config.engine.simulated_workers if config.engine.mode == "simulated" else actors
    assert _batch_and_window(config, workers, cheap) == expected


def test_shared_inputs_are_prepared_once_and_reach_every_actor_read_only(tmp_path, monkeypatch):
    monkeypatch.setattr("toy_evaluator.ToyEvaluator.prepared", 0)
    size = 1_000_000  # 8 MB: far above Ray's inline limit, so it lives in the object store
    config = make_config(
        evaluator=ToyConfig(shared_size=size),
        strategy=RandomSearchConfig(),
        budget=BudgetConfig(evaluations=60),
        actors=2,
    )
    run_experiment(config, tmp_path)
    from toy_evaluator import ToyEvaluator

    assert ToyEvaluator.prepared == 1
    records = [r for r in read_journal(tmp_path / "evaluations.jsonl")]
    assert len({r["worker"] for r in records}) == 2
    assert all(r["metrics"]["shared_sum"] == size * (size - 1) / 2 for r in records)
    # numpy arrays deserialised from Ray's object store are zero-copy, hence read-only
    assert not any(r["metrics"]["shared_writeable"] for r in records)


def test_wall_seconds_budget_stops_the_run(tmp_path):
    config = make_config(
        evaluator=ToyConfig(sleep_s=0.05),
        budget=BudgetConfig(wall_seconds=2.0),
        engine=EngineConfig(batch_size=1),
        actors=2,
    )
    summary = run_experiment(config, tmp_path)
    assert summary.stop_reason == "budget: wall_seconds"
    assert 2.0 <= summary.wall_seconds < 60.0
    assert 0 < summary.evaluations <= 2 * summary.wall_seconds / 0.05


def test_simulated_seconds_budget_counts_the_sum_of_costs_outside_simulated_mode(tmp_path):
    config = make_config(
        budget=BudgetConfig(simulated_seconds=40.0), engine=EngineConfig(max_in_flight=2, in_process=True)
    )
    summary = run_experiment(config, tmp_path)
    costs = [r["cost_s"] for r in read_journal(tmp_path / "evaluations.jsonl")]
    assert summary.stop_reason == "budget: simulated_seconds"
    assert summary.simulated_seconds == summary.total_cost_seconds == sum(costs) >= 40.0
    # At most the two outstanding evaluations (cost <= 7 each) were started at or past the budget.
    assert sum(costs) - sum(sorted(costs)[-2:]) < 40.0


def test_dedup_never_evaluates_a_cell_twice(tmp_path):
    a, b, c = (Arch.from_indices(ops).code for ops in ((1,) * 6, (2,) * 6, (3,) * 6))
    codes = (a, b, a, a, c, b, a)
    config = make_config(strategy=FixedListConfig(codes=codes), engine=EngineConfig(in_process=True))
    summary = run_experiment(config, tmp_path)
    records = read_journal(tmp_path / "evaluations.jsonl")
    # a strategy that ignores the seen-set: its repeats are answered from the cache, unjournaled
    assert sorted(r["arch"] for r in records) == sorted({Arch.from_code(x).to_str() for x in (a, b, c)})
    assert (summary.evaluations, summary.cached) == (3, 4)
    assert [r["candidate_id"] for r in records] == [0, 1, 4]
    none = run_experiment(
        make_config(
            strategy=FixedListConfig(codes=codes), dedup="none", engine=EngineConfig(in_process=True)
        ),
        tmp_path / "none",
    )
    assert (none.evaluations, none.cached) == (len(codes), 0)


def test_a_strategy_stuck_on_cached_cells_stops_saying_so(tmp_path):
    config = make_config(
        strategy=FixedListConfig(codes=(5,), repeat=True), engine=EngineConfig(in_process=True)
    )
    summary = run_experiment(config, tmp_path)
    assert summary.stop_reason == "strategy repeated cached cells (10,000 in a row)"  # one cell seen: not all
    assert (summary.evaluations, summary.cached) == (1, MAX_CACHE_STREAK)


def test_pareto_front_of_a_two_objective_run(tmp_path):
    objectives = (Objective.parse("score"), Objective.parse("params"))
    config = make_config(
        strategy=RandomSearchConfig(),
        objectives=objectives,
        budget=BudgetConfig(evaluations=60),
        engine=EngineConfig(in_process=True),
    )
    summary = run_experiment(config, tmp_path)
    assert summary.objectives == ("score:max", "params:min")
    points = [(r["arch"], tuple(r["fitness"])) for r in read_journal(tmp_path / "evaluations.jsonl")]
    brute = {
        arch
        for arch, f in points
        if not any(all(x >= y for x, y in zip(g, f, strict=True)) and g != f for _, g in points)
    }
    assert {p["arch"] for p in summary.pareto_front} == brute
    assert [x for x, _ in pareto_front([("a", (1, 0)), ("b", (0, 1)), ("c", (0, 0)), ("d", (1, 0))])] == [
        "a",
        "b",
        "d",
    ]


def test_evaluator_setup_failure_is_the_evaluators_one_line_error(tmp_path):
    with pytest.raises(EvaluatorError) as info:
        run_experiment(make_config(evaluator=ToyConfig(fail_setup=True)), tmp_path)
    assert str(info.value) == "evaluator.archive: /nonexistent/archive does not exist"


@pytest.mark.parametrize("mode", ["async", "ordered"])
def test_fail_fast_on_two_actors_waits_for_what_is_in_flight_and_resumes(tmp_path, mode):
    """The first 3 evaluations fail alike (a misnamed objective: bad input): the run stops with every
    finished evaluation journaled (the other actor's, in flight then, too), those asked but not run
    left outstanding in the checkpoint, and a resume evaluates each id once."""
    config = make_config(
        objectives=(Objective.parse("accuracy"),),
        evaluator=ToyConfig(sleep_s=0.05),
        engine=EngineConfig(mode=mode, batch_size=1, max_in_flight=6),
        budget=BudgetConfig(evaluations=12),
        actors=2,
    )
    with pytest.raises(FailFastConfigError, match=r"^evaluator\.objective: the first 3 evaluations all "):
        run_experiment(config, tmp_path)
    records = read_journal(tmp_path / "evaluations.jsonl")
    checkpoint = json.loads((tmp_path / "checkpoint.json").read_text())
    assert checkpoint["journal_lines"] == len(records) >= 3 and not checkpoint["finished"]
    assert {r["status"] for r in records} == {"failed"}
    outstanding = {entry["candidate"]["id"] for entry in checkpoint["engine"]["outstanding"]}
    journaled = {r["candidate_id"] for r in records}
    asked = outstanding | journaled
    assert outstanding and outstanding.isdisjoint(journaled) and asked == set(range(len(asked)))
    with pytest.raises(FailFastConfigError):  # not fixed: the resume's first 3 fail alike again
        run_experiment(config, tmp_path, resume=True)
    ids = [r["candidate_id"] for r in read_journal(tmp_path / "evaluations.jsonl")]
    assert len(ids) == len(set(ids)) >= len(records) + 3 and asked <= set(ids)  # the outstanding ran


class _Terminate(Callback):
    """Sends this process a SIGTERM (what scancel sends) as the run's 21st result is delivered."""

    def on_result(self, result, index, candidate):
        if index == 20:
            os.kill(os.getpid(), signal.SIGTERM)


def test_a_sigterm_while_the_driver_is_busy_in_natsray_stops_at_a_consistent_point(tmp_path):
    """A driver that is never inside Ray when the signal lands (an in-process search) used to meet its
    SIGTERM only after 100 re-deliveries, unchecked, anywhere: now the next delivered result stops the
    run with a checkpoint that matches the journal."""
    config = make_config(
        budget=BudgetConfig(evaluations=100_000), engine=EngineConfig(in_process=True), checkpoint_every=10**6
    )
    before = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(ConsistentInterrupt), sigterm_interrupts():
            run_experiment(config, tmp_path, callbacks=[_Terminate()])
    finally:
        signal.signal(signal.SIGTERM, before)
    checkpoint = json.loads((tmp_path / "checkpoint.json").read_text())
    assert 20 < checkpoint["journal_lines"] < 1000  # stopped soon after the signal
    assert checkpoint["journal_lines"] == len(read_journal(tmp_path / "evaluations.jsonl"))


@pytest.fixture
def sigterms():
    """The SIGTERMs this process's own handler (what a script or a notebook has) receives."""
    received: list[int] = []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, before)


def test_each_ray_run_takes_its_own_sigterm_and_gives_the_signal_back_between_runs(tmp_path, sigterms):
    """Two Ray runs in one process (``natsray.run`` twice, a notebook): a SIGTERM stops each at a
    consistent point, and one that comes between them reaches the process's own handler. The flags of
    the first SIGTERM used to stay set, so the handler it left installed ignored every later SIGTERM."""
    config = make_config(budget=BudgetConfig(evaluations=2000), checkpoint_every=10**6)
    for name in ("first", "second"):
        with pytest.raises(ConsistentInterrupt):
            run_experiment(config, tmp_path / name, callbacks=[_Terminate()])
        checkpoint = json.loads((tmp_path / name / "checkpoint.json").read_text())
        assert 20 < checkpoint["journal_lines"] < 2000  # stopped soon after the signal
        assert checkpoint["journal_lines"] == len(read_journal(tmp_path / name / "evaluations.jsonl"))
        assert sigterms == []  # the run took it
        os.kill(os.getpid(), signal.SIGTERM)  # between runs
        assert sigterms == [signal.SIGTERM]
        sigterms.clear()


def test_a_sigterm_not_yet_raised_when_the_scope_ends_is_raised_then_never_lost(sigterms):
    """A SIGTERM that lands in natsray code (its interrupt deferred to the next consistent point) just
    before the run ends is raised as the scope ends; its pending re-delivery goes nowhere."""
    with pytest.raises(ConsistentInterrupt), sigterm_interrupts():
        os.kill(os.getpid(), signal.SIGTERM)
    for timer in [thread for thread in threading.enumerate() if isinstance(thread, threading.Timer)]:
        timer.join(5)  # a cancelled re-delivery ends at once
    assert sigterms == []
    os.kill(os.getpid(), signal.SIGTERM)
    assert sigterms == [signal.SIGTERM]
