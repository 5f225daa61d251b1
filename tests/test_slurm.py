"""``launch/slurm.sbatch`` under a real SLURM scheduler: a single-node cluster built on this
machine from Debian's packages (:mod:`slurm_cluster`), real jobs submitted with ``sbatch``.

Skipped, with the reason, where the cluster cannot be built (not root, packages missing).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from archive_factory import write_full_table
from slurm_cluster import SlurmCluster, unavailable
from test_cluster import assert_resumed_exactly

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "launch" / "slurm.sbatch"
SMOKE = REPO / "launch" / "smoke.yaml"

pytestmark = [
    pytest.mark.ray,
    pytest.mark.skipif(unavailable() is not None, reason=f"SLURM: {unavailable()}"),
]


@pytest.fixture(scope="module")
def slurm() -> Iterator[SlurmCluster]:
    with started(SlurmCluster(cpus=2)) as cluster:
        yield cluster


@contextlib.contextmanager
def started(cluster: SlurmCluster) -> Iterator[SlurmCluster]:
    """The cluster, running jobs from this checkout with this Python; every job cancelled at the end."""
    cluster.env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    )
    for name in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN"):
        cluster.env.pop(name, None)
    cluster.start()
    try:
        yield cluster
    finally:
        for job in cluster.run("squeue", "--noheader", "--format=%i", check=False).stdout.split():
            cluster.run("scancel", job, check=False)
        cluster.stop()
        shutil.rmtree(cluster.root, ignore_errors=True)


def submit(slurm: SlurmCluster, tmp_path: Path, *args: str) -> tuple[int, Path]:
    """``sbatch [--nodes=N] launch/slurm.sbatch ARGS...``; returns the job id and its output file."""
    options = [arg for arg in args if arg.startswith("--nodes=")]
    args = tuple(arg for arg in args if arg not in options)
    out = tmp_path / "job-%j.out"
    job = slurm.sbatch(f"--output={out}", *options, str(SCRIPT), *args, cwd=REPO)
    return job, tmp_path / f"job-{job}.out"


def ray_processes_of(job: int) -> list[str]:
    """Command lines of processes using this job's Ray temp dir (the script's /tmp/ray-natsray-JOB)."""
    listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    return [line for line in listing.splitlines() if f"/tmp/ray-natsray-{job}" in line]


def journal_lines(run_dir: Path) -> int:
    path = run_dir / "evaluations.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_a_small_config_runs_in_a_job_and_ray_is_stopped_by_pid(slurm: SlurmCluster, tmp_path: Path) -> None:
    # a process that `ray stop` would kill (it matches Ray's process names): the job must not touch it
    bystander_exe = tmp_path / "gcs_server"
    shutil.copy(shutil.which("sleep"), bystander_exe)
    bystander = subprocess.Popen([str(bystander_exe), "600"])
    try:
        run_dir = tmp_path / "run"
        job, log = submit(
            slurm,
            tmp_path,
            str(SMOKE),
            "--out",
            str(run_dir),
            "--set",
            "budget.evaluations=4",
            "--no-progress",
        )
        state = slurm.wait(job, ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"), timeout=400)
        output = log.read_text()
        assert state["JobState"] == "COMPLETED", output[-3000:]
        assert "Ray head:" in output and "2 CPU and 0 GPU per node" in output  # sized from the allocation
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["evaluations"] == 4 and summary["failed"] == 0
        assert yaml.safe_load((run_dir / "config.yaml").read_text())["ray"]["address"] is None
        assert bystander.poll() is None, "the job's exit trap killed another Ray-named process"
        deadline = time.monotonic() + 30
        while ray_processes_of(job) and time.monotonic() < deadline:
            time.sleep(1)
        assert not ray_processes_of(job), ray_processes_of(job)
    finally:
        bystander.kill()
        bystander.wait()


def test_a_bad_config_path_fails_the_job_in_one_line_before_ray_starts(
    slurm: SlurmCluster, tmp_path: Path
) -> None:
    job, log = submit(slurm, tmp_path, "configs/nope.yaml", "--out", str(tmp_path / "run"))
    state = slurm.wait(job, ("COMPLETED", "FAILED", "CANCELLED"), timeout=120)
    output = log.read_text()
    assert state["JobState"] == "FAILED" and state["ExitCode"] == "2:0", output
    assert "natsray: error: configs/nope.yaml: no such config file" in output
    assert "Ray head:" not in output


def test_a_config_that_runs_in_the_driver_starts_no_ray(slurm: SlurmCluster, tmp_path: Path) -> None:
    table = write_full_table(tmp_path)  # a record for every cell: every evaluation succeeds
    config = {
        "strategy": {"name": "regularized_evolution", "population": 4, "sample_size": 2},
        "evaluator": {"type": "table", "table": str(table), "objective": ["params"]},
        "budget": {"evaluations": 3},
        "engine": {"in_process": True},
        "output": {"progress": False},
    }
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(config))
    job, log = submit(slurm, tmp_path, str(tmp_path / "exp.yaml"), "--out", str(tmp_path / "run"))
    state = slurm.wait(job, ("COMPLETED", "FAILED", "CANCELLED"), timeout=200)
    output = log.read_text()
    assert state["JobState"] == "COMPLETED", output[-3000:]
    assert "no Ray: runs in the driver" in output and "Ray head:" not in output
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["evaluations"] == 3


def test_a_cancelled_job_is_resumed_in_a_new_job(slurm: SlurmCluster, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    job, log = submit(
        slurm, tmp_path, str(SMOKE), "--out", str(run_dir), "--no-progress",
        "--set", "budget.evaluations=15000", "--set", "budget.wall_seconds=300",
    )  # fmt: skip
    deadline = time.monotonic() + 400
    while journal_lines(run_dir) < 5:
        assert slurm.job(job)["JobState"] in ("PENDING", "RUNNING"), log.read_text()[-3000:]
        assert time.monotonic() < deadline, "the job evaluated nothing in 400 s"
        time.sleep(1)
    slurm.run("scancel", str(job))
    slurm.wait(job, ("CANCELLED",), timeout=60)
    deadline = time.monotonic() + 60
    while ray_processes_of(job) and time.monotonic() < deadline:
        time.sleep(1)
    assert not ray_processes_of(job), "the cancelled job left Ray processes behind"
    # scancel stops the driver and the Ray head at once: the driver's checkpoint on SIGTERM is
    # best effort here (tests/test_cluster.py checks it against a head that stays up); without
    # it, resume replays the journal
    path = run_dir / "checkpoint.json"
    checkpoint = json.loads(path.read_text()) if path.exists() else None
    if checkpoint is not None:
        assert checkpoint["finished"] is False and checkpoint["journal_lines"] == journal_lines(run_dir)
    else:
        checkpoint = {"engine": {"evaluations": journal_lines(run_dir), "outstanding": []}}
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["ray"]["address"] is None
    done = journal_lines(run_dir)
    resumed, log = submit(slurm, tmp_path, "resume", str(run_dir), "--set", f"budget.evaluations={done + 3}")
    state = slurm.wait(resumed, ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"), timeout=400)
    output = log.read_text()
    assert state["JobState"] == "COMPLETED", output[-3000:]
    assert "Ray head:" in output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stop_reason"] == "budget: evaluations"
    assert_resumed_exactly(run_dir, checkpoint, done + 3)


def test_a_job_over_two_nodes_runs_one_actor_on_each(tmp_path: Path) -> None:
    # two emulated nodes of 1 CPU (two slurmd on this machine): 2 actors of 1 CPU need both
    with started(SlurmCluster(cpus=1, nodes=2)) as two:
        run_dir = tmp_path / "run"
        job, log = submit(
            two, tmp_path, "--nodes=2", str(SMOKE), "--out", str(run_dir), "--set", "budget.evaluations=6"
        )
        state = two.wait(job, ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"), timeout=400)
    output = log.read_text()
    assert state["JobState"] == "COMPLETED", output[-3000:]
    assert "workers: 1, 1 CPU and 0 GPU per node" in output and "2 Ray node(s) up" in output
    assert json.loads((run_dir / "summary.json").read_text())["evaluations"] == 6
