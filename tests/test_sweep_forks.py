"""A sweep's look-up runs on workers forked from the driver (natsray.study.forks): each run once, results
those of the seed alone, a killed worker's runs finished by a new one, SIGTERM checkpointed and resumed."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_study import stored, stored_names
from test_sweep_start import planned
from toy_evaluator import trajectory, trajectory_of

from natsray.cli import main
from natsray.study import forks as forks_module
from natsray.study import sweep as sweep_module
from natsray.study.forks import fork_available
from natsray.study.store import STORE_DIR
from natsray.study.sweep import run_sweep

pytestmark = pytest.mark.skipif(not fork_available(), reason="forked sweep workers: Linux only")


def worker_pids(out: Path) -> set[int]:
    """The processes that stored runs (a store file's name starts with its writer's pid)."""
    return {int(path.name.split("-", 1)[0]) for path in (out / STORE_DIR).glob("*.runs.jsonl")}


def single(config: Path, seed: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> list[Any]:
    out = tmp_path / f"single-{seed}"
    argv = ["run", str(config), "--set", f"seed={seed}", "--out", str(out), "--no-progress"]
    assert main(argv) == 0, capsys.readouterr().err
    return trajectory(out)


def test_forked_runs_equal_the_seeds_alone_each_stored_once(
    full_table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs, config = planned(full_table, tmp_path, "0-7")
    out = tmp_path / "sweep"
    assert sweep_module._fork_slots(runs, list(range(8)), 2, None) == 2
    assert sweep_module._fork_slots(runs, list(range(8)), 1, None) == 0  # --parallel 1: in the driver
    assert sweep_module._fork_slots(runs, [3], 2, None) == 0  # one run left: in the driver, no fork
    outcome = run_sweep(runs, out, parallel=2, progress=False)
    assert [run.status for run in outcome.runs] == ["done"] * 8
    assert all(run.node is None for run in outcome.runs)  # no Ray
    assert sorted(stored_names(out)) == [f"seed-{seed}" for seed in range(8)]  # each once
    pids = worker_pids(out)
    assert pids and os.getpid() not in pids  # stored by the workers, not by this process
    for seed in range(8):  # the journal names the process that evaluated, not the one that forked it
        workers = {record["worker"] for record in stored(out, f"seed-{seed}").records}
        assert len(workers) == 1 and int(workers.pop().rsplit(":", 1)[1]) in pids
    for seed in (0, 5):
        assert trajectory_of(stored(out, f"seed-{seed}").records) == single(config, seed, tmp_path, capsys)
    ray = sys.modules.get("ray")
    assert ray is None or not ray.is_initialized()


def killing(marker: Path, victim: str, times: int, log: Path | None = None) -> Any:
    """``execute_run`` that SIGKILLs its own (worker) process on run ``victim``, the first ``times``
    times (counted in ``marker``: the workers share no memory); each run's name is appended to ``log``
    as it starts."""
    execute_run = sweep_module.execute_run

    def wrapper(config: Any, run_dir: Path, *args: Any, **kwargs: Any) -> int:
        if log is not None:
            with open(log, "a") as handle:
                handle.write(f"{kwargs.get('name')}\n")
        if kwargs.get("name") == victim:
            killed = int(marker.read_text()) if marker.exists() else 0
            if killed < times:
                marker.write_text(str(killed + 1))
                os.kill(os.getpid(), signal.SIGKILL)
        return execute_run(config, run_dir, *args, **kwargs)

    return wrapper


def test_a_worker_killed_mid_run_is_replaced_and_every_run_finishes_once(
    full_table: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    runs, config = planned(full_table, tmp_path, "0-7")
    out = tmp_path / "sweep"
    monkeypatch.setattr(sweep_module, "execute_run", killing(tmp_path / "killed", "seed-3", 1))
    outcome = run_sweep(runs, out, parallel=2, progress=False)
    assert [run.status for run in outcome.runs] == ["done"] * 8
    assert (tmp_path / "killed").read_text() == "1"
    assert sorted(stored_names(out)) == [f"seed-{seed}" for seed in range(8)]  # none lost, none twice
    monkeypatch.undo()
    assert trajectory_of(stored(out, "seed-3").records) == single(config, 3, tmp_path, capsys)


def test_runs_a_dead_worker_finished_but_had_not_reported_are_taken_from_the_store(
    full_table: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker sends results at most ``REPORT_S`` apart (here: with each chunk's end only). Killed
    mid-chunk, it had stored runs the parent had not heard of: those are recorded from the store, not
    run again, and only the run it was running counts the death and runs again."""
    runs, _ = planned(full_table, tmp_path, "0-23")  # chunks of 4: seed-0..3 on the first worker
    out = tmp_path / "sweep"
    started = tmp_path / "started"
    monkeypatch.setattr(forks_module, "REPORT_S", 3600.0)
    monkeypatch.setattr(sweep_module, "execute_run", killing(tmp_path / "killed", "seed-2", 1, started))
    outcome = run_sweep(runs, out, parallel=2, progress=False)
    assert [run.status for run in outcome.runs] == ["done"] * 24
    assert [run.evaluations for run in outcome.runs] == [30] * 24
    names = started.read_text().split()
    assert sorted(names) == sorted([f"seed-{seed}" for seed in range(24)] + ["seed-2"])
    assert sorted(stored_names(out)) == sorted(f"seed-{seed}" for seed in range(24))  # none lost, none twice
    lines = [json.loads(line) for line in (out / "sweep-runs.jsonl").read_text().splitlines()]
    assert sorted(Path(line["run_dir"]).name for line in lines) == sorted(f"seed-{s}" for s in range(24))


def test_a_run_that_kills_every_worker_fails_alone_in_one_line(
    full_table: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs, _ = planned(full_table, tmp_path, "0-5")
    out = tmp_path / "sweep"
    monkeypatch.setattr(sweep_module, "execute_run", killing(tmp_path / "killed", "seed-2", 99))
    outcome = run_sweep(runs, out, parallel=2, progress=False)
    assert [run.status for run in outcome.runs] == ["done"] * 2 + ["failed"] + ["done"] * 3
    retries = sweep_module.TASK_RETRIES + 1
    assert outcome.runs[2].error == (
        f"WorkerDied: the worker process running it was killed by SIGKILL ({retries} times)"
    )
    assert sorted(stored_names(out)) == [f"seed-{seed}" for seed in (0, 1, 3, 4, 5)]


@pytest.mark.parametrize("to_group", [False, True], ids=["sigterm-to-natsray", "ctrl-c-to-the-group"])
def test_sigterm_or_ctrl_c_stops_a_forked_sweep_and_resume_runs_each_run_once(
    full_table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], to_group: bool
) -> None:
    """SIGTERM to the natsray process (as scancel or kill), or Ctrl-C (SIGINT to the whole process
    group): the workers stop their runs at a consistent point (checkpointed: a run directory), natsray
    exits 130 with one line saying how to resume; resume records every run once, results as run alone."""
    _, config = planned(full_table, tmp_path, "0-1")
    out = tmp_path / "stopped"
    argv = ["run", str(config), "--seeds", "0-59", "--parallel", "2", "--set", "budget.evaluations=400"]
    command = [sys.executable, "-m", "natsray", *argv, "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(
        command,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # as from a terminal: a shell's background job (CI under nohup, say) would start it with SIGINT
        # ignored, and Python keeps it so
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            status = out / "sweep-runs.jsonl"
            if status.exists() and len(status.read_text().splitlines()) >= 3:
                break
            time.sleep(0.005)
        assert proc.poll() is None, f"the sweep ended before it could be stopped: {proc.communicate()[1]}"
        if to_group:
            os.killpg(
                proc.pid, signal.SIGINT
            )  # the terminal's Ctrl-C: natsray, its workers, its plot process
        else:
            os.kill(proc.pid, signal.SIGTERM)  # the natsray process only, not its workers
        _, err = proc.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == 130, err
    assert err.splitlines() == [f"natsray: interrupted; continue with 'natsray resume {out}'"]
    recorded = len((out / "sweep-runs.jsonl").read_text().splitlines())
    assert 3 <= recorded < 60
    assert list(out.glob("seed-*/checkpoint.json"))  # the runs in flight stopped at a consistent point
    assert main(["resume", str(out), "--no-progress"]) == 0, capsys.readouterr().err
    lines = [json.loads(line) for line in (out / "sweep-runs.jsonl").read_text().splitlines()]
    assert sorted(Path(line["run_dir"]).name for line in lines) == sorted(f"seed-{s}" for s in range(60))
    for seed in (0, 59):
        run = stored(out, f"seed-{seed}")
        assert len(run.records) == 400
        expected = single(tmp_path_config(config, tmp_path, 400), seed, tmp_path, capsys)
        assert trajectory_of(run.records) == expected


def tmp_path_config(config: Path, tmp_path: Path, evaluations: int) -> Path:
    """``config`` with ``budget.evaluations`` set, as a new file."""
    import yaml

    data = yaml.safe_load(config.read_text())
    data["budget"]["evaluations"] = evaluations
    path = tmp_path / f"exp-{evaluations}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_plot_process_imports_after_forked_runs_and_beside_runs_in_the_driver(
    full_table: Path, tmp_path: Path
) -> None:
    """``on_cores_free`` (the plot process's cue to import matplotlib) comes after the runs when forked
    workers take every core, before them when the runs leave a core free (one at a time here)."""
    runs, _ = planned(full_table, tmp_path, "0-3")
    for parallel, expected in ((2, ["run"] * 4 + ["free"]), (1, ["free"] + ["run"] * 4)):
        events: list[str] = []
        run_sweep(
            runs,
            tmp_path / f"sweep-{parallel}",
            parallel=parallel,
            progress=False,
            on_outcome=lambda _, events=events: events.append("run"),
            on_cores_free=lambda events=events: events.append("free"),
        )
        assert events == expected, parallel


def test_sigkill_of_the_natsray_process_ends_its_workers_and_resume_loses_nothing(
    full_table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGKILL to the natsray process alone: its workers end within a run (they are told by the kernel
    and look between runs), every stored run stays stored, and resume runs each of the others once."""
    _, config = planned(full_table, tmp_path, "0-1")
    out = tmp_path / "killed"
    argv = ["run", str(config), "--seeds", "0-59", "--parallel", "2", "--set", "budget.evaluations=400"]
    command = [sys.executable, "-m", "natsray", *argv, "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(command, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and len(stored_names(out)) < 3:
            time.sleep(0.005)
        assert proc.poll() is None, "the sweep ended before it could be killed"
        workers = worker_pids(out)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(alive(pid) for pid in workers):
            time.sleep(0.01)
        assert not any(alive(pid) for pid in workers)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    kept = set(stored_names(out))
    assert 3 <= len(kept) < 60
    assert main(["resume", str(out), "--no-progress"]) == 0, capsys.readouterr().err
    names, dirs = stored_names(out), finished_dirs(out)
    assert len(names) == len(set(names)) and not set(names) & dirs  # no run twice
    assert set(names) | dirs == {f"seed-{seed}" for seed in range(60)}
    for seed in range(60):
        assert len(stored(out, f"seed-{seed}").records) == 400  # every run finished, none lost


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # a zombie is dead (its parent, init, reaps it)
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False
    return True


def finished_dirs(out: Path) -> set[str]:
    """Runs finished in a directory of their own (those a stop caught mid-way and resume finished)."""
    return {path.name for path in out.glob("seed-*") if (path / "evaluations.csv").is_file()}


def test_a_sweep_confined_to_one_cpu_runs_in_the_natsray_process(
    full_table: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """taskset -c 0, Slurm's --cpus-per-task=1, a container's cpuset: the CPUs the process may use, not
    the machine's, decide (a local Ray on one allowed CPU ran the same sweep at half the speed)."""
    runs, _ = planned(full_table, tmp_path, "0-3")
    monkeypatch.setattr(sweep_module, "usable_cpus", lambda: 1)
    assert sweep_module._fork_slots(runs, list(range(4)), None, None) == 0
    outcome = run_sweep(runs, tmp_path / "sweep", progress=False)
    assert [run.status for run in outcome.runs] == ["done"] * 4
    assert worker_pids(tmp_path / "sweep") == {os.getpid()}


def test_forked_workers_keep_to_one_evaluator_config_each_and_take_every_run_once() -> None:
    """A look-up evaluator warms up per process (its memo of scored cells, the table's mean columns): a
    forked worker stays on its config, and a new one starts on the config with the most runs left, so
    two workers on three datasets do not both warm all three. Ray's chunks keep plan order."""
    from types import SimpleNamespace

    keys = ["cifar10"] * 40 + ["cifar100"] * 40 + ["ImageNet16-120"] * 30 + ["cifar10"] * 10
    runs: Any = [SimpleNamespace(config=SimpleNamespace(evaluator=key)) for key in keys]
    queue = sweep_module._Queue(runs, list(range(len(runs))), 2, affinity=True)
    first, second = queue.take(None), queue.take(None)
    assert {keys[i] for i in first} == {"cifar10"} and {keys[i] for i in second} == {"cifar100"}
    assert first == list(range(len(first))) and len(first) == 20  # guided: a third per slot, plan order
    handed = first + second
    previous = {"a": first, "b": second}
    switches = {"a": 0, "b": 0}
    while queue:
        for worker in ("a", "b"):
            if not queue:
                break
            chunk = queue.take(previous[worker])
            assert len({keys[i] for i in chunk}) == 1
            switches[worker] += keys[chunk[0]] != keys[previous[worker][0]]
            previous[worker] = chunk
            handed += chunk
    assert sorted(handed) == list(range(len(runs)))  # every run once
    assert switches == {"a": 1, "b": 1}  # each moved on once, when its own config ran out
    in_plan_order = sweep_module._Queue(runs, list(range(len(runs))), 2)
    taken: list[int] = []
    while in_plan_order:
        taken += in_plan_order.take()
    assert [keys[i] for i in taken] == sorted(keys, key=["cifar10", "cifar100", "ImageNet16-120"].index)


class Listed:
    """:class:`natsray.study.forks.Chunks` over fixed chunks, in order."""

    def __init__(self, chunks: list[list[int]]) -> None:
        self.chunks = chunks

    def __bool__(self) -> bool:
        return bool(self.chunks)

    def take(self, previous: list[int] | None) -> list[int]:
        return self.chunks.pop(0)


def test_results_a_worker_holds_reach_the_parent_when_its_chunk_stops_early(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker whose chunk stops mid-way (an interrupt) sends the results it held before it exits: the
    runs it finished are recorded, the one it was on counts its exit, the rest go to a new worker."""
    monkeypatch.setattr(forks_module, "REPORT_S", 3600.0)  # results wait for the chunk's end

    def work(chunk: list[int], report: Any, gone: Any) -> None:
        for i in chunk:
            if i == 2 and os.getpid() == first[0]:
                raise KeyboardInterrupt  # run 2 stopped before it finished
            report(i, {"value": i})

    got: dict[int, Any] = {}
    first = [0]
    real_fork = os.fork

    def fork() -> int:
        pid = real_fork()
        if pid == 0 and not first[0]:
            first[0] = os.getpid()
        elif pid and not first[0]:
            first[0] = pid
        return pid

    monkeypatch.setattr(forks_module.os, "fork", fork)
    forks_module.run_forked(Listed([[0, 1, 2, 3]]), work, 1, got.__setitem__, retries=0)
    assert got == {
        0: {"value": 0},
        1: {"value": 1},
        2: {"error": "WorkerDied: the worker process running it exited with code 1 (1 times)", "node": None},
        3: {"value": 3},
    }
