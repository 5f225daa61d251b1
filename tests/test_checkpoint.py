"""Journal, atomic snapshots and exact resume of in-process runs (no Ray)."""

from __future__ import annotations

import json
import os

import pytest
from toy_evaluator import ToyConfig, make_config, run_killed, trajectory

from natsray.config import BudgetConfig, EngineConfig
from natsray.engine.checkpoint import Journal, atomic_write_json, read_journal, read_json
from natsray.engine.runner import run_experiment

IN_PROCESS = EngineConfig(in_process=True, mode="ordered", batch_size=4)


def test_journal_drops_a_torn_last_line_and_appends_after_it(tmp_path):
    path = tmp_path / "evaluations.jsonl"
    path.write_text('{"candidate_id": 0}\n{"candidate_id": 1}\n{"candidate_id": 2, "ar')
    journal = Journal(path)
    assert len(journal) == 2 and [r["candidate_id"] for r in journal.records()] == [0, 1]
    journal.append([{"candidate_id": 2}])
    assert path.read_text() == '{"candidate_id": 0}\n{"candidate_id": 1}\n{"candidate_id": 2}\n'
    assert len(Journal(path)) == 3


def test_journal_rejects_a_corrupt_line_before_the_last(tmp_path):
    path = tmp_path / "evaluations.jsonl"
    path.write_text('{"candidate_id": 0}\nnot json\n{"candidate_id": 2}\n')
    with pytest.raises(ValueError, match=r"evaluations.jsonl: line 2 is not valid JSON"):
        list(Journal(path).records())


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "checkpoint.json"
    atomic_write_json(path, {"a": 1})
    atomic_write_json(path, {"a": 2})
    assert read_json(path) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.json"]
    assert read_json(tmp_path / "missing.json") is None
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match=r"bad.json: not valid JSON"):
        read_json(tmp_path / "bad.json")


def test_run_files_hold_what_the_engine_promises(tmp_path):
    summary = run_experiment(make_config(engine=IN_PROCESS, budget=BudgetConfig(evaluations=30)), tmp_path)
    records = read_journal(tmp_path / "evaluations.jsonl")
    first = records[0]
    for key in (
        "arch",
        "nats_index",
        "status",
        "objectives",
        "fitness",
        "metrics",
        "cost_s",
        "wall_s",
        "worker",
        "finish_time",
        "parents",
        "seed",
    ):
        assert key in first, key
    assert "canonical" not in first and "cached" not in first  # derivable / never journaled
    assert "submit_time" not in first  # in-process: one finish time per batch, no queue times
    assert summary.evaluations == 30 == len(records) and summary.cached == 0
    assert (summary.batch_size, summary.window) == (4, 2)  # as used: the window capped by the budget
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary.to_dict()))
    best = max((r for r in records if r["fitness"]), key=lambda r: r["fitness"])
    assert (summary.best_arch, summary.best_candidate_id) == (best["arch"], best["candidate_id"])
    assert summary.best_metrics == best["metrics"]
    checkpoint = read_json(tmp_path / "checkpoint.json")
    assert checkpoint["finished"] and checkpoint["journal_lines"] == len(records)
    assert checkpoint["engine"]["outstanding"] == []


def test_a_second_run_in_the_same_directory_is_refused(tmp_path):
    config = make_config(engine=IN_PROCESS, budget=BudgetConfig(evaluations=12))
    run_experiment(config, tmp_path)
    with pytest.raises(ValueError, match=r"already holds a run \(evaluations.jsonl\); resume it"):
        run_experiment(config, tmp_path)


def test_resuming_a_finished_run_evaluates_nothing_more(tmp_path):
    config = make_config(engine=IN_PROCESS, budget=BudgetConfig(evaluations=20))
    first = run_experiment(config, tmp_path)
    lines = (tmp_path / "evaluations.jsonl").read_text()
    again = run_experiment(config, tmp_path, resume=True)
    assert (tmp_path / "evaluations.jsonl").read_text() == lines
    assert (again.evaluations, again.best_arch, again.stop_reason) == (20, first.best_arch, first.stop_reason)


@pytest.mark.parametrize("checkpoint_every", [7, 1000])
def test_killed_driver_resumes_to_the_uninterrupted_trajectory(tmp_path, checkpoint_every):
    # checkpoint_every=1000: killed before any checkpoint, resumed from the journal alone.
    config = make_config(
        engine=IN_PROCESS,
        budget=BudgetConfig(evaluations=60),
        evaluator=ToyConfig(sleep_s=0.01),
        checkpoint_every=checkpoint_every,
    )
    reference = run_experiment(config, tmp_path / "reference")
    run_killed(config, tmp_path / "killed", lines=25)
    assert (tmp_path / "killed" / "checkpoint.json").exists() == (checkpoint_every < 25)
    resumed = run_experiment(config, tmp_path / "killed", resume=True)
    assert trajectory(tmp_path / "killed") == trajectory(tmp_path / "reference")
    assert (resumed.evaluations, resumed.best_arch) == (60, reference.best_arch)


def test_a_run_directory_has_one_writer_at_a_time(tmp_path):
    from natsray.engine.checkpoint import RunLock

    holder = RunLock(tmp_path)
    with pytest.raises(
        ValueError, match=rf"in use by another process \(pid {os.getpid()}\) after waiting 0.2 s"
    ):
        RunLock(tmp_path, timeout=0.2)
    holder.release()
    RunLock(tmp_path, timeout=0.2).release()  # free again once the holder let go


def test_resume_names_the_journal_line_whose_cell_is_corrupt(tmp_path):
    config = make_config(engine=IN_PROCESS, budget=BudgetConfig(evaluations=20))
    run_experiment(config, tmp_path)
    path = tmp_path / "evaluations.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    record = json.loads(lines[6])
    record["arch"] = record["arch"].replace("~0|", "~9|", 1)  # valid JSON, not a cell
    lines[6] = json.dumps(record) + "\n"
    path.write_text("".join(lines))
    with pytest.raises(ValueError, match=r"evaluations.jsonl: line 7: "):
        run_experiment(
            make_config(engine=IN_PROCESS, budget=BudgetConfig(evaluations=30)), tmp_path, resume=True
        )


def test_an_older_natsrays_output_gets_a_gitignore_a_users_folder_does_not(tmp_path, full_table, capsys):
    """A run or sweep directory made before natsray wrote ``.gitignore`` files gets one when resumed or
    reported, if it holds nothing but natsray's files; a user's file beside a run, or a ``.gitignore``
    already there, leaves the directory as it is."""
    import yaml
    from table_config import table_evaluator

    from natsray.cli import main

    config = tmp_path / "table.yaml"
    data = {
        "strategy": {"name": "random"},
        "evaluator": table_evaluator(full_table),
        "budget": {"evaluations": 8},
    }
    config.write_text(yaml.safe_dump({**data, "engine": {"mode": "simulated"}}))
    run, sweep = tmp_path / "run", tmp_path / "sweep"
    assert main(["run", str(config), "--out", str(run), "--no-progress"]) == 0  # with its plots
    grid = ["--grid", "strategy.name=random,regularized_evolution"]
    assert main(["run", str(config), "--out", str(sweep), "--seeds", "0-1", *grid, "--no-progress"]) == 0
    made = (run / ".gitignore").read_text()
    assert made.endswith("\n*\n")
    for directory in (run, sweep):  # as an older natsray left them
        (directory / ".gitignore").unlink()
    assert main(["resume", str(run), "--set", "budget.evaluations=10", "--no-progress"]) == 0
    assert main(["resume", str(sweep), "--no-progress"]) == 0  # finished: reported again
    assert (run / ".gitignore").read_text() == (sweep / ".gitignore").read_text() == made
    (run / ".gitignore").unlink()
    assert main(["report", str(run)]) == 0
    assert (run / ".gitignore").read_text() == made
    # a user's folder that holds a run beside the user's own files; a .gitignore of the user's
    (run / ".gitignore").unlink()
    (run / "notes.txt").write_text("mine\n")
    (sweep / ".gitignore").write_text("report/\n")
    (sweep / "config.yaml").write_text("mine: 1\n")
    assert main(["report", str(run)]) == main(["resume", str(sweep), "--no-progress"]) == 0
    assert not (run / ".gitignore").exists() and (sweep / ".gitignore").read_text() == "report/\n"
    (sweep / ".gitignore").unlink()
    assert main(["report", str(sweep)]) == 0
    assert not (sweep / ".gitignore").exists()
    capsys.readouterr()
