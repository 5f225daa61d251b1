"""Where a sweep left to choose runs: on forked workers (Linux; tests/test_sweep_forks.py), else in the
driver while its runs are short and on a local Ray once the runs left would pay for Ray's start-up; either
way each run once, its results those of the seed alone."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from test_store import file_size_limit
from test_study import base, stored, stored_names, write
from toy_evaluator import trajectory, trajectory_of

from natsray.cli import main
from natsray.config import read_yaml
from natsray.study import sweep as sweep_module
from natsray.study.grid import plan_runs, sweep_from_config, write_plan
from natsray.study.store import STORE_DIR, StoreWriter, stored_runs
from natsray.study.sweep import run_sweep


def planned(table: Path, tmp_path: Path, seeds: str) -> tuple[list, Path]:
    config = write(tmp_path / "exp.yaml", base(table, evaluations=30))
    plan = sweep_from_config(read_yaml(config), seeds=seeds, source=str(config))
    assert plan is not None
    write_plan(plan, tmp_path / "sweep")
    return plan_runs(plan, tmp_path / "sweep"), config


def test_short_runs_start_no_ray(full_table: Path, tmp_path: Path) -> None:
    runs, _ = planned(full_table, tmp_path, "0-5")
    assert not (sys.modules.get("ray") and sys.modules["ray"].is_initialized())
    outcome = run_sweep(runs, tmp_path / "sweep", progress=False)
    assert [run.status for run in outcome.runs] == ["done"] * 6
    assert all(run.node is None for run in outcome.runs)  # none ran on a Ray node
    ray = sys.modules.get("ray")
    assert ray is None or not ray.is_initialized()


def test_resume_records_stored_runs_whose_outcome_was_lost(
    full_table: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A sweep interrupted while a Ray task had stored runs the driver never heard of: resume finds them
    in the store (not run again) and gives each its one ``done`` line in sweep-runs.jsonl."""
    runs, _ = planned(full_table, tmp_path, "0-3")
    out = tmp_path / "sweep"
    assert [run.status for run in run_sweep(runs, out, parallel=1, progress=False).runs] == ["done"] * 4
    status = out / "sweep-runs.jsonl"
    lines = status.read_text().splitlines()
    status.write_text("\n".join(lines[:2]) + "\n")  # seeds 2 and 3: stored, outcome lost
    outcome = run_sweep(runs, out, parallel=1, progress=False)
    assert [run.status for run in outcome.runs] == ["skipped"] * 4  # nothing run again
    recorded = [json.loads(line) for line in status.read_text().splitlines()]
    assert [Path(line["run_dir"]).name for line in recorded] == [f"seed-{seed}" for seed in range(4)]
    assert [line["evaluations"] for line in recorded] == [json.loads(line)["evaluations"] for line in lines]
    run_sweep(runs, out, parallel=1, progress=False)
    assert len(status.read_text().splitlines()) == 4  # once
    monkeypatch.chdir(tmp_path)  # natsray resume of a relative path: the same absolute run directories
    status.write_text(lines[0] + "\n")
    assert main(["resume", "sweep", "--no-progress"]) == 0, capsys.readouterr().err
    assert [line["run_dir"] for line in map(json.loads, status.read_text().splitlines())] == [
        str(run.run_dir.resolve()) for run in runs
    ]


def test_resume_from_another_directory_matches_relative_and_moved_outcome_lines(
    full_table: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Outcome lines naming their run relative to the directory their writer ran in (``natsray run
    --out sweep`` from ``tmp_path``), or by the absolute path of a sweep directory since moved: a resume
    from elsewhere finds each run recorded (it used to resolve them against its own working directory
    and write every run's ``done`` line again)."""
    runs, _ = planned(full_table, tmp_path, "0-3")
    out = tmp_path / "sweep"
    assert [run.status for run in run_sweep(runs, out, parallel=1, progress=False).runs] == ["done"] * 4
    status = out / "sweep-runs.jsonl"
    lines = [json.loads(line) for line in status.read_text().splitlines()]
    assert [line["run_dir"] for line in lines] == [str(run.run_dir) for run in runs]
    for line in lines:
        line["run_dir"] = os.path.relpath(line["run_dir"], tmp_path)  # "sweep/seed-N"
    status.write_text("".join(json.dumps(line) + "\n" for line in lines))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["resume", str(out), "--no-progress"]) == 0, capsys.readouterr().err
    assert status.read_text().splitlines() == [json.dumps(line) for line in lines]  # nothing added
    assert main(["resume", "../sweep", "--no-progress"]) == 0, capsys.readouterr().err
    assert status.read_text().splitlines() == [json.dumps(line) for line in lines]
    moved = tmp_path / "moved"
    for line in lines:
        line["run_dir"] = str(tmp_path / line["run_dir"])  # absolute, where the sweep was
    status.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out.rename(moved)
    assert main(["resume", str(moved), "--no-progress"]) == 0, capsys.readouterr().err
    assert (moved / "sweep-runs.jsonl").read_text().splitlines() == [json.dumps(line) for line in lines]


def test_a_full_disk_under_the_outcome_log_stops_the_sweep_with_how_to_resume(
    full_table: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The outcome log's write fails (ENOSPC) after two runs: one line saying how to resume, the lock
    released, and resume finishes the sweep with each run stored and recorded once."""
    import errno
    import io

    _, config = planned(full_table, tmp_path, "0-5")
    out = tmp_path / "out"
    real_open = open

    class Full(io.TextIOWrapper):
        lines = 0

        def write(self, text: str) -> int:
            Full.lines += 1
            if Full.lines > 2:
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().write(text)

    def full_disk_open(path: Path, mode: str = "r", **kwargs: object) -> object:
        handle = real_open(path, mode, **kwargs)  # type: ignore[call-overload]
        if Path(path).name != "sweep-runs.jsonl":
            return handle
        return Full(handle.detach(), encoding="utf-8", write_through=True)

    monkeypatch.setattr(sweep_module, "open", full_disk_open, raising=False)
    argv = ["run", str(config), "--seeds", "0-5", "--parallel", "1", "--out", str(out), "--no-progress"]
    assert main(argv) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"natsray: failed: OSError: [Errno {errno.ENOSPC}] No space left on device; after fixing the cause, "
        f"'natsray resume {out}' runs what is left (NATSRAY_DEBUG=1 shows the traceback)"
    ]
    monkeypatch.undo()
    assert main(["resume", str(out), "--no-progress"]) == 0, capsys.readouterr().err  # the lock was released
    assert sorted(stored_names(out)) == [f"seed-{seed}" for seed in range(6)]  # each stored once
    recorded = [json.loads(line)["run_dir"] for line in (out / "sweep-runs.jsonl").read_text().splitlines()]
    assert sorted(Path(run_dir).name for run_dir in recorded) == [f"seed-{seed}" for seed in range(6)]


def test_a_run_whose_store_write_fails_midway_fails_alone_and_resume_runs_it(
    full_table: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The disk fills up while the third run is being stored (its evaluations torn): that run fails
    with one line, the runs stored after it by the same writer read back as their seeds run alone,
    and resuming runs the failed one only."""
    runs, config = planned(full_table, tmp_path, "0-5")
    out = tmp_path / "sweep"
    commit, calls = StoreWriter.commit, []

    def disk_full_on_the_third(self: StoreWriter, name: str, *args: object) -> None:
        calls.append(name)
        if len(calls) != 3:
            return commit(self, name, *args)  # type: ignore[arg-type]
        with file_size_limit(max(path.stat().st_size for path in (out / STORE_DIR).iterdir()) + 100):
            return commit(self, name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(StoreWriter, "commit", disk_full_on_the_third)
    outcome = run_sweep(runs, out, parallel=1, progress=False)  # one writer, in this process
    assert [run.status for run in outcome.runs] == ["done"] * 2 + ["failed"] + ["done"] * 3
    assert outcome.runs[2].error == "OSError: [Errno 27] File too large"
    assert sorted(stored_runs(out)) == ["seed-0", "seed-1", "seed-3", "seed-4", "seed-5"]
    outcome = run_sweep(runs, out, parallel=1, progress=False)  # as natsray resume does
    assert [run.status for run in outcome.runs] == ["skipped"] * 2 + ["done"] + ["skipped"] * 3
    assert sorted(stored_names(out)) == [f"seed-{seed}" for seed in range(6)]  # each stored once
    # a complete line torn mid-file (an earlier version's failed write): one warning, its runs run again
    runs_file = next(
        path for path in (out / STORE_DIR).glob("*.runs.jsonl") if b'"seed-4"' in path.read_bytes()
    )
    lines = runs_file.read_bytes().splitlines(keepends=True)
    assert [json.loads(line)["run"] for line in lines] == ["seed-3", "seed-4", "seed-5"]
    runs_file.write_bytes(lines[0] + lines[1][:50] + lines[2])
    capsys.readouterr()
    assert main(["resume", str(out), "--no-progress"]) == 0
    assert capsys.readouterr().err.splitlines() == [
        f"natsray: warning: {runs_file}: line 2 is not a summary line (a torn write), skipped; a run "
        "stored only there is run again by natsray resume"
    ]  # once, though the store is read more than once
    assert sorted(stored_runs(out)) == [f"seed-{seed}" for seed in range(6)]
    for seed in (2, 3, 5):
        single = tmp_path / f"single-{seed}"
        argv = ["run", str(config), "--set", f"seed={seed}", "--out", str(single), "--no-progress"]
        assert main(argv) == 0, capsys.readouterr().err
        assert trajectory_of(stored(out, f"seed-{seed}").records) == trajectory(single)


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: Ray would add none")
def test_runs_that_pay_for_ray_move_to_it_after_the_first_ones(
    full_table: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sweep_module, "RAY_START_S", 0.0)  # any runs left pay for a Ray start
    monkeypatch.setattr(sweep_module, "fork_available", lambda: False)  # as on macOS: no forked workers
    runs, config = planned(full_table, tmp_path, "0-7")
    out = tmp_path / "sweep"
    outcome = run_sweep(runs, out, progress=False)
    assert [run.status for run in outcome.runs] == ["done"] * 8
    # the first three in the driver (the first one, paying the imports, is not timed), the rest on Ray
    assert [run.node is None for run in outcome.runs] == [True] * 3 + [False] * 5
    assert sorted(stored_runs(out)) == [f"seed-{seed}" for seed in range(8)]  # each stored once
    import ray

    assert not ray.is_initialized()  # the sweep shut down the Ray it started
    for seed in (0, 7):
        single = tmp_path / f"single-{seed}"
        argv = ["run", str(config), "--set", f"seed={seed}", "--out", str(single), "--no-progress"]
        assert main(argv) == 0, capsys.readouterr().err
        assert trajectory_of(stored(out, f"seed-{seed}").records) == trajectory(single)


def test_a_task_s_runs_leave_the_collector_as_they_found_it(tmp_path: Path) -> None:
    """A sweep task raises the young generation's threshold and freezes what is alive while its runs run
    (the collector took ~15% of a NATS sweep); afterwards both are undone, also when a run fails, and a
    process that froze objects itself keeps them frozen."""
    import gc

    before = gc.get_threshold()
    seen = []

    def failing(*args: object, **kwargs: object) -> int:
        seen.append((gc.get_threshold()[0], gc.get_freeze_count() > 0))
        raise RuntimeError("boom")

    original = sweep_module.execute_run
    sweep_module.execute_run = failing  # type: ignore[assignment]
    try:
        items = [(None, str(tmp_path / "a"), "a"), (None, str(tmp_path / "b"), "b")]
        kept = ({"evaluator": object()}, "evaluator")  # set up already: no config needed
        results = sweep_module._execute_all(items, tmp_path, None, None, kept=kept)  # type: ignore[arg-type]
        assert [r["error"] for r in results] == ["RuntimeError: boom"] * 2
        assert seen == [(sweep_module._YOUNG_OBJECTS, True)] * 2
        assert gc.get_threshold() == before and gc.get_freeze_count() == 0
        gc.freeze()  # the process's own frozen objects
        frozen = gc.get_freeze_count()
        sweep_module._execute_all(items, tmp_path, None, None, kept=kept)  # type: ignore[arg-type]
        assert gc.get_freeze_count() == frozen and gc.get_threshold() == before
    finally:
        gc.unfreeze()
        sweep_module.execute_run = original  # type: ignore[assignment]


def test_the_runs_bar_follows_output_progress_unless_told(
    full_table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A sweep config with ``output.progress: false`` (as the shipped NATS sweep) showed the runs-done bar
    all the same; the bar now follows it, and ``--no-progress`` / ``progress=`` still decide when given."""
    data = base(full_table, evaluations=10)  # output.progress: false
    config = write(tmp_path / "quiet.yaml", data)
    assert main(["run", str(config), "--seeds", "0-1", "--out", str(tmp_path / "quiet")]) == 0
    assert "2/2" not in capsys.readouterr().err
    data["output"]["progress"] = True
    config = write(tmp_path / "shown.yaml", data)
    assert main(["run", str(config), "--seeds", "0-1", "--out", str(tmp_path / "shown")]) == 0
    assert "2/2" in capsys.readouterr().err  # the bar's last draw
    assert main(["run", str(config), "--seeds", "0-1", "--out", str(tmp_path / "told"), "--no-progress"]) == 0
    assert "2/2" not in capsys.readouterr().err
    (tmp_path / "api").mkdir()
    runs, _ = planned(full_table, tmp_path / "api", "0-1")  # output.progress: false, progress=True wins
    run_sweep(runs, tmp_path / "api" / "sweep", progress=True)
    assert "2/2" in capsys.readouterr().err
    import natsray  # the public entry point, progress left to the config

    natsray.sweep(str(tmp_path / "quiet.yaml"), seeds="0-1", out=tmp_path / "py-quiet", report=False)
    assert "2/2" not in capsys.readouterr().err
    natsray.sweep(str(config), seeds="0-1", out=tmp_path / "py-shown", report=False)
    assert "2/2" in capsys.readouterr().err
