"""``benchmarks/training_throughput.py`` and ``training_scale.py --only search`` / ``--only command`` run,
with tiny settings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.ray
def test_training_throughput_prints_its_table_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "throughput.json"
    command = [
        sys.executable, str(ROOT / "benchmarks" / "training_throughput.py"),
        "--data", "synthetic", "--size", "16", "--images", "96", "--C", "4", "--N", "1", "--batch-size", "32",
        "--epochs", "1", "--repeats", "2", "--concurrent", "1", "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["data_note"] == "synthetic CIFAR-shaped tensors" and results["device"] == "cpu"
    per_candidate = results["per_candidate"]
    assert per_candidate["images_per_training"] == 96
    assert len(per_candidate["plain_images_per_s"]) == len(per_candidate["natsray_images_per_s"]) == 2
    assert all(x > 0 for x in per_candidate["natsray_images_per_cpu_s"] + per_candidate["pairwise_ratios"])
    (row,) = results["per_device"]
    assert row["concurrent"] == 1 and row["aggregate_images_per_s"] > 0
    assert "ratio of medians" in done.stdout and "1 concurrent on one device" in done.stdout


@pytest.mark.ray
def test_training_scale_search_reports_where_the_wall_time_went(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    command = [
        sys.executable, str(ROOT / "benchmarks" / "training_scale.py"),
        "--only", "search", "--mode", "ordered", "--workload", "small", "--candidates", "4",
        "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["search_config"]["mode"] == "ordered" and "throughput" not in results
    for row, actors in zip(results["search"], (1, 2), strict=True):
        phases = row["phases"]
        assert row["actors"] == actors and set(phases) == {"prepare_s", "actors_s", "loop_s", "finish_s"}
        assert all(value >= 0 for value in phases.values())
        assert sum(phases.values()) == pytest.approx(row["wall_s"], rel=0.05)
    assert "parallel efficiency" in done.stdout


@pytest.mark.ray
def test_training_scale_times_the_whole_command(tmp_path: Path) -> None:
    """(e): ``natsray run`` of the quickstart as a user types it, 1 and 2 actors, timed around the process."""
    out = tmp_path / "scale.json"
    command = [
        sys.executable, str(ROOT / "benchmarks" / "training_scale.py"),
        "--only", "command", "--candidates", "2", "--pairs", "1", "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text())
    assert "search" not in results and "throughput" not in results  # no Ray of the script's own
    whole = results["command"]
    assert whole["candidates"] == 2 and whole["pairs"] == 1
    assert [row["actors"] for row in whole["commands"]] == [1, 2]  # in the order they ran
    assert all(row["started"].startswith("20") for row in whole["commands"])
    for row in whole["commands"]:
        # the run inside the command, and Python, Ray's start and stop, CSV and plots around it
        assert 0 < row["span_s"] <= row["run_wall_s"] < row["wall_s"]
        assert row["outside_run_s"] == pytest.approx(row["wall_s"] - row["run_wall_s"])
    one, two = (row["wall_s"] for row in whole["commands"])
    assert whole["parallel_efficiency"] == pytest.approx(one / (2 * two))
    one, two = (row["training_s"] for row in whole["commands"])
    assert whole["training_ratio_2_to_1"] == pytest.approx(two / one)
    assert "(e) the whole command" in done.stdout and "of the medians" in done.stdout


def test_a_gpu_option_on_cpu_is_one_line(tmp_path: Path) -> None:
    script = str(ROOT / "benchmarks" / "training_throughput.py")
    command = [sys.executable, script, "--cuda-graphs", "--out", str(tmp_path / "x.json")]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and not (tmp_path / "x.json").exists()
    assert done.stderr == (
        "training_throughput: cuda_graphs: needs a CUDA device, but device is 'cpu' "
        "(the GPU options need --preset gpu or --device cuda)\n"
    )


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks a machine without a GPU")
def test_the_gpu_preset_without_a_gpu_is_one_line(tmp_path: Path) -> None:
    script = str(ROOT / "benchmarks" / "training_throughput.py")
    command = [sys.executable, script, "--preset", "gpu", "--cuda-graphs", "--out", str(tmp_path / "x.json")]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and done.stderr == (
        "training_throughput: --preset gpu / --device cuda needs a CUDA GPU; this machine has none\n"
    )
