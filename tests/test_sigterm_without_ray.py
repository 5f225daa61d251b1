"""SIGTERM (scancel, Kubernetes, ``timeout``) on a run or a sweep that runs without Ray stops it as Ctrl-C
and a SIGTERM on Ray do: at a consistent point, one line saying how to continue, exit 130, and resume
completes it with every run and every evaluation exactly once. It used to end the process at once with
143 and no message. No Ray is started here."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

from test_cluster import CLI, REPO, assert_resumed_exactly, natsray
from test_study import base, stored, write

SEEDS = 40
EVALUATIONS = 2000


def _terminate_once(args: list[str], ready: Path, enough: int) -> subprocess.CompletedProcess[str]:
    """Start ``natsray ARGS``, send it SIGTERM as soon as ``ready`` holds ``enough`` lines, wait for it."""
    process = subprocess.Popen(
        [*CLI, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not ready.exists() or len(ready.read_text().splitlines()) < enough:
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-3000:]
            time.sleep(0.02)  # polling the file: the event is its content
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    return subprocess.CompletedProcess(args, process.returncode, out, err)


def test_sigterm_stops_a_sweep_in_the_driver_like_ctrl_c_and_resume_runs_each_run_once(
    full_table: Path, tmp_path: Path
) -> None:
    config = write(tmp_path / "exp.yaml", base(full_table, evaluations=EVALUATIONS))
    out = tmp_path / "sweep"
    status = out / "sweep-runs.jsonl"
    args = [
        "run",
        str(config),
        "--seeds",
        f"0-{SEEDS - 1}",
        "--out",
        str(out),
        "--parallel",
        "1",
        "--no-progress",
    ]
    done = _terminate_once(args, status, 1)
    assert done.returncode == 130, done.stderr[-3000:]
    assert (
        done.stderr.strip().splitlines()[-1] == f"natsray: interrupted; continue with 'natsray resume {out}'"
    )
    before = [json.loads(line) for line in status.read_text().splitlines()]
    assert 1 <= len(before) < SEEDS and {line["status"] for line in before} == {"done"}
    # the run the signal stopped: checkpointed after a delivered batch, its journal on disk to match
    stopped = [
        json.loads(path.read_text()) | {"dir": path.parent}
        for path in out.glob("seed-*/checkpoint.json")
        if not json.loads(path.read_text())["finished"]
    ]
    assert len(stopped) == 1
    assert stopped[0]["journal_lines"] == len(
        (stopped[0]["dir"] / "evaluations.jsonl").read_text().splitlines()
    )

    resumed = natsray("resume", str(out), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = [json.loads(line) for line in status.read_text().splitlines()]
    assert after[: len(before)] == before  # the finished runs were not run again
    counts = Counter(Path(line["run_dir"]).name for line in after)
    assert counts == Counter(f"seed-{seed}" for seed in range(SEEDS))  # each run once
    # each run finished (in the store, the one resumed from its checkpoint in its directory), all in full
    assert {stored(out, name).summary["evaluations"] for name in counts} == {EVALUATIONS}


def test_sigterm_checkpoints_a_single_in_process_run_that_resumes_exactly(
    full_table: Path, tmp_path: Path
) -> None:
    config = write(tmp_path / "exp.yaml", base(full_table, evaluations=10**6))
    run_dir = tmp_path / "run"
    args = [
        "run",
        str(config),
        "--out",
        str(run_dir),
        "--no-progress",
        "--set",
        "output.checkpoint_every=1000000",
    ]
    done = _terminate_once(args, run_dir / "evaluations.jsonl", 3)
    assert done.returncode == 130, done.stderr[-3000:]
    assert (
        done.stderr.strip().splitlines()[-1]
        == f"natsray: interrupted; continue with 'natsray resume {run_dir}'"
    )
    checkpoint = json.loads((run_dir / "checkpoint.json").read_text())
    lines = len((run_dir / "evaluations.jsonl").read_text().splitlines())
    assert checkpoint["journal_lines"] == lines >= 3 and checkpoint["finished"] is False
    resumed = natsray("resume", str(run_dir), "--no-progress", "--set", f"budget.evaluations={lines + 50}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_resumed_exactly(run_dir, checkpoint, lines + 50)


def test_natsray_run_and_sweep_in_python_give_the_sessions_sigterm_handler_back(
    full_table: Path, tmp_path: Path
) -> None:
    """natsray takes SIGTERM only while it runs: after ``natsray.run`` and ``natsray.sweep`` (no Ray) a
    script's own handler gets it again."""
    import natsray

    config = write(tmp_path / "exp.yaml", base(full_table, evaluations=30))
    received: list[int] = []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        natsray.run(config, out=tmp_path / "run", progress=False)
        os.kill(os.getpid(), signal.SIGTERM)
        natsray.sweep(config, out=tmp_path / "sweep", seeds="0-1", parallel=1, progress=False, report=False)
        os.kill(os.getpid(), signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, before)
    assert received == [signal.SIGTERM, signal.SIGTERM]
