"""``benchmarks/sweep_throughput.py`` / ``sweep_scaling.py`` run as documented and write JSON (issue 20).

A small generated archive and its table stand in for NATS-Bench (most look-ups fail for lack of a record,
so ``--set budget.evaluations=...`` bounds the runs): this exercises the commands, not the figures, which
are measured on the real table (docs/sweeps.md). Needs ``../shared/bench/bare_rea.py`` for the
throughput script's reference loop (skipped without it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import archive_factory as factory

from natsray.evaluators.table import export_table

ROOT = Path(__file__).resolve().parents[1]
BARE = ROOT.parent / "shared" / "bench" / "bare_rea.py"


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.skipif(not BARE.is_file(), reason="../shared/bench/bare_rea.py is absent")
def test_sweep_throughput_prints_its_table_and_writes_json(tmp_path: Path) -> None:
    factory.write_archive(tmp_path / "archive", 24)
    table = export_table(tmp_path / "archive", tmp_path / "t.npz", progress=False)
    out = tmp_path / "sweep_throughput.json"
    # engine.fail_fast=0: most of this small archive's cells have no record, and the runs go on
    command = [
        sys.executable, str(ROOT / "benchmarks" / "sweep_throughput.py"), "--table", str(table),
        "--archive", str(tmp_path / "archive"), "--seeds", "2", "--parallel", "1,default", "--bare-runs", "1",
        "--bare", str(BARE), "--set", "budget.evaluations=20", "--set", "engine.fail_fast=0",
        "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "runs ratio" in done.stdout and "archive table export (first read, once)" in done.stdout
    data = json.loads(out.read_text())
    assert [(row["source"], row["parallel"]) for row in data["rows"]] == [
        ("table", "1"), ("table", "default"), ("archive", "1"), ("archive", "default")
    ]  # fmt: skip
    for row in data["rows"]:
        assert row["runs"] == 12 and row["evaluations"] == 12 * 20 and row["failed"] == 0
        assert row["runs_on_ray"] == 0  # 12 runs of milliseconds: natsray's default starts no Ray for them
        assert row["runs_ratio"] == pytest.approx(
            row["evaluations"] / row["runs_s"] / (sum(row["bare_evals_per_s"]) / 2)
        )
    assert data["export_s"] > 0 and data["command"].startswith(
        "python benchmarks/sweep_throughput.py --table"
    )


def test_missing_inputs_are_one_line(tmp_path: Path) -> None:
    for script, args, words in (
        ("sweep_throughput.py", ["--table", str(tmp_path / "no.npz")], "--table: no such file"),
        ("sweep_scaling.py", ["--table", str(tmp_path / "no.npz")], "--table: no such file"),
        ("sweep_scaling.py", ["--table", str(ROOT / "README.md"), "--repeat", "0"], "--repeat: expected a"),
    ):
        done = subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / script), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr


@pytest.mark.ray
@pytest.mark.slow
def test_sweep_scaling_prints_its_table_and_writes_json(tmp_path: Path) -> None:
    factory.write_archive(tmp_path / "archive", 24)
    table = export_table(tmp_path / "archive", tmp_path / "t.npz", progress=False)
    out = tmp_path / "sweep_scaling.json"
    command = [
        sys.executable, str(ROOT / "benchmarks" / "sweep_scaling.py"), "--table", str(table), "--seeds", "2",
        "--cores", "2", "--set", "budget.evaluations=20", "--set", "engine.fail_fast=0", "--repeat", "2",
        "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "parallel efficiency with 2 cores" in done.stdout and "plain processes (no Ray)" in done.stdout
    assert "forks runs efficiency of 2 pairs" in done.stdout
    data = json.loads(out.read_text())
    ways = [(row["way"], row["cores"]) for row in data["rows"]]
    assert ways == [("1", 1), ("forks", 2), ("ray", 2), ("plain", 2)]
    one, forks, ray, plain = data["rows"]
    assert [row["runs"] for row in data["rows"]] == [12] * 4  # the plain split covers every seed once
    assert one["runs_on_ray"] == forks["runs_on_ray"] == plain["runs_on_ray"] == 0 and ray["ray_start_s"] > 0
    assert forks["ray_start_s"] < 0.5  # no Ray started for the forked workers
    efficiency = data["parallel_efficiency"]
    assert efficiency["plain_runs"] == pytest.approx(one["runs_s"] / plain["runs_s"] / 2)
    assert efficiency["forks_runs"] == pytest.approx(one["runs_s"] / forks["runs_s"] / 2)
    pairs = data["pairs"]
    assert len(pairs) == 2 and (pairs[0]["one_runs_s"], pairs[0]["forks_runs_s"]) == (
        one["runs_s"],
        forks["runs_s"],
    )
    machine = [pair["machine_one_s"] / pair["machine_split_s"] / 2 for pair in pairs]
    assert all(pair["machine_one_s"] > 0.04 and pair["machine_split_s"] > 0 for pair in pairs)
    assert (
        efficiency["machine_each"] == pytest.approx(machine) and "the machine's own efficiency" in done.stdout
    )
    each = [pair["one_runs_s"] / pair["forks_runs_s"] / 2 for pair in pairs]
    assert efficiency["forks_runs_each"] == pytest.approx(each)
    assert efficiency["forks_runs_median"] == pytest.approx(sum(each) / 2)
    ones, forked = [pair["one_runs_s"] for pair in pairs], [pair["forks_runs_s"] for pair in pairs]
    assert efficiency["forks_runs_of_medians"] == pytest.approx(sum(ones) / sum(forked) / 2)
