"""Fault tolerance: actors killed mid-run, candidates that always kill their actor, a SIGKILLed driver."""

from __future__ import annotations

import pytest
from toy_evaluator import ToyConfig, local_ray_session, make_config, run_killed, trajectory

from natsray.config import BudgetConfig, EngineConfig
from natsray.engine.checkpoint import read_journal
from natsray.engine.runner import run_experiment

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
    assert crashed["status"] == "ok" and crashed["attempts"] == 1
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
