"""A run or sweep directory in use is never destroyed: ``--overwrite``, ``resume`` and ``resume --set``
refuse while a live process holds its lock (one line naming the directory and the holder's pid, exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from toy_evaluator import TESTS_DIR, local_ray_session

from natsray.cli import main
from natsray.engine.checkpoint import lock_holder

REPO = Path(__file__).resolve().parents[1]
SHORT = ("--set", "budget.wall_seconds=1")  # should a refusal fail, the command ends soon


def _config(tmp_path: Path) -> Path:
    """A run that goes on for minutes in the driver (the toy evaluator at 10 ms per evaluation)."""
    data = {
        "seed": 0,
        "strategy": {"name": "random"},
        "evaluator": {"type": "toy", "sleep_s": 0.01},
        "search_space": {"dedup": "none"},
        "budget": {"wall_seconds": 600},
        "engine": {"in_process": True, "batch_size": 4},
        "resources": {"cpus_per_actor": 0.5},
        "ray": {"runtime_env": {"env_vars": {"PYTHONPATH": f"{TESTS_DIR}{os.pathsep}{REPO}"}}},
    }
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _start(argv: list[str], held: Path) -> subprocess.Popen[bytes]:
    """Start the natsray command line (toy evaluator registered) and wait at most 120 s until it holds
    ``held``'s lock."""
    env = dict(os.environ, PYTHONPATH=f"{TESTS_DIR}{os.pathsep}{REPO}")
    code = "import sys, toy_evaluator; from natsray.cli import main; sys.exit(main(sys.argv[1:]))"
    process = subprocess.Popen(
        [sys.executable, "-c", code, *argv, "--no-progress"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while lock_holder(held) != str(process.pid):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"natsray {' '.join(argv)} never held {held}: {process.communicate()[1][-2000:]!r}")
        time.sleep(0.05)
    return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.kill()  # our own child, by its handle
    process.wait(timeout=60)


def _refused(capsys: pytest.CaptureFixture[str], argv: list[str], directory: Path, pid: int | str) -> None:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"{directory}: in use by another process (pid {pid})" in err, err


def test_a_live_run_is_not_overwritten_or_rewritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, run_dir = _config(tmp_path), tmp_path / "run"
    holder = _start(["run", str(config), "--out", str(run_dir)], run_dir)
    try:
        journal = run_dir / "evaluations.jsonl"
        deadline = time.monotonic() + 120
        while not journal.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        before = (run_dir / "config.yaml").read_bytes()
        overwrite = ["run", str(config), "--out", str(run_dir), "--overwrite", *SHORT]
        _refused(capsys, overwrite, run_dir, holder.pid)
        _refused(capsys, ["resume", str(run_dir), "--set", "budget.evaluations=5"], run_dir, holder.pid)
        assert journal.exists() and (run_dir / "config.yaml").read_bytes() == before
        assert holder.poll() is None  # the run goes on
    finally:
        _stop(holder)
    # once its holder is gone, the directory is free again
    assert lock_holder(run_dir) is None


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    with local_ray_session() as gcs_address:
        yield gcs_address


@pytest.mark.ray
def test_a_live_sweep_is_not_overwritten_or_resumed_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], address: str
) -> None:
    config, out = _config(tmp_path), tmp_path / "sweep"
    sweep = ["run", str(config), "--seeds", "0-1", "--out", str(out), "--address", address]
    holder = _start(sweep, out)
    try:
        seed_dir = out / "seed-0"
        deadline = time.monotonic() + 120
        while not (lock_holder(seed_dir) or "").isdigit() and time.monotonic() < deadline:
            time.sleep(0.05)  # (the holder writes its pid right after taking the lock)
        worker = lock_holder(seed_dir)  # the Ray worker running seed 0
        assert worker is not None and worker.isdigit()
        _refused(capsys, [*sweep, "--overwrite", *SHORT], out, holder.pid)
        _refused(capsys, ["resume", str(out), "--address", address], out, holder.pid)
        overwrite = ["run", str(config), "--out", str(seed_dir), "--overwrite", *SHORT]
        _refused(capsys, overwrite, seed_dir, worker)
        assert (out / "sweep.yaml").exists() and (seed_dir / "config.yaml").exists()
        assert holder.poll() is None
    finally:
        _stop(holder)


_KILLED_HOLDER = """
import os, signal, sys, time
from natsray.engine.checkpoint import RunLock
lock = RunLock(sys.argv[1], timeout=0)
if os.fork() == 0:  # a forked sweep worker: it inherits the lock and outlives its SIGKILLed parent
    time.sleep(float(sys.argv[2]))
    os._exit(0)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _killed_holder(directory: Path, child_s: float) -> str:
    """A process that takes ``directory``'s lock, forks a child that lives ``child_s`` seconds, and is
    SIGKILLed: its pid (the one the lock file names)."""
    process = subprocess.Popen(
        [sys.executable, "-c", _KILLED_HOLDER, str(directory), str(child_s)], env=os.environ
    )
    process.wait(timeout=60)
    assert lock_holder(directory) == str(process.pid)  # held by the orphaned child
    return str(process.pid)


def test_a_lock_left_to_a_killed_holders_children_is_waited_for_then_named_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`natsray resume` right after a SIGKILL of a forked sweep: its workers, which finish their current run,
    still hold the lock for a moment. Taking it waits for them (bounded), and a refusal does not send the
    user to a pid that no longer exists."""
    from natsray.engine import checkpoint

    _killed_holder(tmp_path, 1.0)
    start = time.monotonic()
    checkpoint.RunLock(tmp_path, timeout=0).release()  # the child ended: taken, with timeout 0
    assert 0.3 < time.monotonic() - start < 20
    pid = _killed_holder(tmp_path, 60.0)
    monkeypatch.setattr(checkpoint, "ORPHANS_WAIT_S", 0.5)
    with pytest.raises(checkpoint.RunInUseError) as refused:
        checkpoint.RunLock(tmp_path, timeout=0)
    assert str(refused.value) == (
        f"{tmp_path}: in use by processes that pid {pid} started and left when it ended (forked sweep "
        "workers, each finishing its current run) after waiting 0.5 s; wait for them or end them"
    )
