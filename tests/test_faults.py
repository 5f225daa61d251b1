"""Fault tolerance: actors killed mid-run, candidates that always kill their actor, a SIGKILLed driver."""

from __future__ import annotations

import pytest
from toy_evaluator import ToyConfig, local_ray_session, make_config, run_killed, trajectory

from natsray.config import BudgetConfig, EngineConfig
from natsray.engine.checkpoint import read_journal
from natsray.engine.runner import DEFAULT_BATCH, run_experiment
from natsray.search_space import Arch
from natsray.strategies.random_search import RandomSearchConfig

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def address():
    with local_ray_session() as gcs_address:
        yield gcs_address


def test_an_actor_that_dies_is_replaced_and_nothing_is_lost_or_repeated(tmp_path, address):
    marker = tmp_path / "crashed"
    config = make_config(
        evaluator=ToyConfig(crash_on=12, marker=str(marker)),
        budget=BudgetConfig(evaluations=60),
        engine=EngineConfig(batch_size=4),
        actors=2,
    )
    summary = run_experiment(config, tmp_path / "run")
    assert marker.exists()
    records = read_journal(tmp_path / "run" / "evaluations.jsonl")
    ids = [r["candidate_id"] for r in records]
    assert sorted(ids) == list(range(len(ids)))
    assert (summary.evaluations, summary.failed) == (60, 0)
    crashed = next(r for r in records if r["candidate_id"] == 12)
    # A cheap evaluator's call is not isolated (another may be queued behind it): the death charges no
    # one; candidate 12 is re-run as a suspect, alone, and succeeds uncharged.
    assert crashed["status"] == "ok" and "attempts" not in crashed
    assert len({r["worker"] for r in records}) == 3  # two actors + the replacement


def test_a_candidate_that_always_kills_its_actor_fails_after_max_retries(tmp_path, address):
    config = make_config(
        evaluator=ToyConfig(crash_on=3),
        budget=BudgetConfig(evaluations=25),
        engine=EngineConfig(batch_size=1, max_retries=1),
        actors=1,
    )
    summary = run_experiment(config, tmp_path)
    records = {r["candidate_id"]: r for r in read_journal(tmp_path / "evaluations.jsonl")}
    assert records[3]["status"] == "failed" and records[3]["attempts"] == 2
    assert records[3]["error"].startswith("worker died 2 times: ")
    assert (summary.evaluations, summary.failed) == (25, 1)
    assert sorted(records) == list(range(len(records)))


def test_a_cell_that_kills_its_worker_fails_alone_under_default_batching(tmp_path, address):
    # 1 cell in 97 exits its worker process, as an OOM kill would. Default batch size (256 per Ray
    # call); the window holds the whole budget, so each call carries 100 candidates. Only the
    # poison cells may fail, each after max_retries + 1 deaths of its own.
    config = make_config(
        strategy=RandomSearchConfig(),
        evaluator=ToyConfig(poison_every=97),
        budget=BudgetConfig(evaluations=400),
        engine=EngineConfig(max_in_flight=400, max_retries=1),
        actors=2,
    )
    summary = run_experiment(config, tmp_path)
    records = read_journal(tmp_path / "evaluations.jsonl")
    assert sorted(r["candidate_id"] for r in records) == list(range(400))  # each once, none lost
    poisoned = {r["candidate_id"] for r in records if Arch.from_str(r["arch"]).code % 97 == 0}
    failed = {r["candidate_id"]: r for r in records if r["status"] == "failed"}
    assert poisoned and set(failed) == poisoned
    for record in failed.values():
        assert record["attempts"] == 2
        assert record["error"].startswith("worker died 2 times: ") and "\n" not in record["error"]
    ok = [r for r in records if r["status"] == "ok"]
    assert all("attempts" not in r for r in ok) and all(r["metrics"]["seed"] == r["seed"] for r in ok)
    assert (summary.evaluations, summary.failed, summary.batch_size) == (400, len(poisoned), DEFAULT_BATCH)
    assert summary.stop_reason == "budget: evaluations"


def test_a_killed_driver_resumes_to_the_uninterrupted_trajectory(tmp_path, address):
    def config(**kwargs):
        return make_config(
            evaluator=ToyConfig(sleep_s=0.02),
            budget=BudgetConfig(evaluations=60),
            checkpoint_every=6,
            address=address,
            **kwargs,
        )

    engine = {"mode": "ordered", "batch_size": 2, "max_in_flight": 4}
    run_experiment(config(engine=EngineConfig(in_process=True, **engine)), tmp_path / "reference")
    ordered = config(engine=EngineConfig(**engine), actors=1)
    run_killed(ordered, tmp_path / "killed", lines=25, timeout=120)
    assert (tmp_path / "killed" / "checkpoint.json").exists()
    summary = run_experiment(ordered, tmp_path / "killed", resume=True)
    assert trajectory(tmp_path / "killed") == trajectory(tmp_path / "reference")
    assert summary.evaluations == 60 and summary.ray_calls > 0
