"""The wall clock of a resumed run is its own elapsed time: the time it was stopped is left out of its
plots by time, its ``evaluations.csv`` and a sweep's anytime curves, its raw timestamps kept."""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from table_config import table_evaluator

from natsray.cli import main
from natsray.experiment.plots import curves, plot_best
from natsray.experiment.run_data import active_seconds, load_run
from natsray.study.report import _incumbents

PAUSE = 1.5


@pytest.fixture(scope="module")
def resumed(full_table: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A table run of 40 evaluations, extended to 80 by a resume ``PAUSE`` seconds later."""
    root = tmp_path_factory.mktemp("clock")
    config = {
        "search_space": {"dedup": "none"},
        "strategy": {"name": "regularized_evolution", "population": 5, "sample_size": 2},
        "evaluator": table_evaluator(full_table),
        "budget": {"evaluations": 40},
        "engine": {"in_process": True, "mode": "ordered", "batch_size": 4},
        "output": {"progress": False},
    }
    path = root / "exp.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    run_dir = root / "run"
    assert main(["run", str(path), "--out", str(run_dir), "--no-progress"]) == 0
    time.sleep(PAUSE)
    assert main(["resume", str(run_dir), "--set", "budget.evaluations=80", "--no-progress"]) == 0
    return run_dir


def test_a_resumed_runs_plots_csv_and_sweep_curves_leave_the_pause_out(resumed: Path) -> None:
    summary = json.loads((resumed / "summary.json").read_text())
    assert summary["evaluations"] == 80 and len(summary["sessions"]) == 2  # the start and the resume
    (_, first_end), (second_start, _) = summary["sessions"]
    assert second_start - first_end >= PAUSE
    run = load_run(resumed)
    finish = run.column("finish_time")
    assert np.nanmax(finish) - np.nanmin(finish) >= PAUSE  # the raw timestamps are as recorded
    data = curves(run)
    assert data["clock"] == "wall seconds"
    assert 0 < data["times"].max() < PAUSE and data["times"].max() <= summary["wall_seconds"]
    assert np.all(np.diff(data["times"]) >= 0)
    with open(resumed / "evaluations.csv", encoding="utf-8") as handle:
        elapsed = [float(row["elapsed_s"]) for row in csv.DictReader(handle)]
    assert len(elapsed) == 80 and max(elapsed) < PAUSE
    ((x, _),) = _incumbents([run], "test_accuracy@200", by_time=True)
    assert 0 < x.max() < PAUSE  # a sweep's anytime curve of runs without the simulated clock


def test_a_run_without_sessions_still_loads_and_plots_by_time_since_its_first_submit(
    resumed: Path, tmp_path: Path
) -> None:
    summary = json.loads((resumed / "summary.json").read_text())
    del summary["sessions"]  # as written before sessions were recorded
    old = tmp_path / "old"
    old.mkdir()
    for name in ("evaluations.jsonl", "config.yaml"):
        (old / name).write_bytes((resumed / name).read_bytes())
    (old / "summary.json").write_text(json.dumps(summary))
    run = load_run(old)
    assert run.sessions == ()
    assert curves(run)["times"].max() >= PAUSE
    plot_best([run], {"old": [0]}, tmp_path / "best.png")
    assert (tmp_path / "best.png").stat().st_size > 0


def test_pauses_end_at_a_sessions_checkpoint_or_its_last_finish_when_later() -> None:
    finish = np.array([10.0, 11.0, 12.0, 30.0, 31.0, np.nan])
    starts = finish.copy()
    plain = [0, 1, 2, 20, 21]
    np.testing.assert_allclose(active_seconds(finish, starts)[:5], plain)
    # stopped at 12.5 (its checkpoint), resumed at 29.5
    expected = [0, 1, 2, 3, 4]
    np.testing.assert_allclose(active_seconds(finish, starts, [[9.5, 12.5], [29.5, 31.5]])[:5], expected)
    # killed after its last checkpoint (11.5): its last finish, 12, ends the first session
    expected = [0, 1, 2, 2.5, 3.5]
    np.testing.assert_allclose(active_seconds(finish, starts, [[9.5, 11.5], [29.5, 31.5]])[:5], expected)
    # started by a natsray that recorded no sessions, resumed by this one: the pause starts at 12
    np.testing.assert_allclose(active_seconds(finish, starts, [[29.5, 31.5]])[:5], expected)
    assert np.isnan(active_seconds(finish, starts, [[29.5, 31.5]])[5])
