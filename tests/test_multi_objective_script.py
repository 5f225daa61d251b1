"""``benchmarks/multi_objective.py``: its hypervolume and front are exact, and it runs as documented."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import archive_factory as factory
from benchmark_scripts import load_benchmark

ROOT = Path(__file__).resolve().parents[1]


def test_hypervolume_is_the_dominated_area_and_the_front_the_non_dominated_cells() -> None:
    script = load_benchmark("multi_objective")
    accuracy = np.array([90.0, 80.0, 70.0, 85.0, 60.0])
    params = np.array([3.0, 1.0, 0.5, 3.0, 2.0])
    # maximise accuracy, minimise params; reference (50, 4): staircase 0.5-1 at 70, 1-3 at 80, 3-4 at 90
    assert script.hypervolume(accuracy, params, (50.0, 4.0)) == pytest.approx(
        (70 - 50) * 0.5 + (80 - 50) * 2.0 + (90 - 50) * 1.0
    )
    assert script.pareto_codes(accuracy, params) == {0, 1, 2}
    rng = np.random.default_rng(0)
    a, p = rng.random(300), rng.random(300)
    brute = {
        i
        for i in range(300)
        if not any(a[j] >= a[i] and p[j] <= p[i] and (a[j], p[j]) != (a[i], p[i]) for j in range(300))
    }
    assert script.pareto_codes(a, p) == brute
    front = sorted(brute)
    assert script.hypervolume(a[front], p[front], (0.0, 1.0)) == pytest.approx(
        script.hypervolume(a, p, (0.0, 1.0))
    )


def test_the_benchmark_prints_its_table_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "mo.json"
    table = str(factory.write_full_table(tmp_path))
    command = [
        sys.executable, str(ROOT / "benchmarks" / "multi_objective.py"), "--table", table,
        "--seeds", "2", "--evaluations", "120", "--screens", "1,3", "--population", "10", "--workers", "1",
        "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "HV gap %@100" in done.stdout and "front found" in done.stdout
    result = json.loads(out.read_text())
    assert result["command"].startswith("python benchmarks/multi_objective.py --table ")
    assert [(r["dataset"], r["screen"]) for r in result["rows"]] == [
        (d, s) for d in ("cifar10", "cifar100", "ImageNet16-120") for s in (1, 3)
    ]
    assert len(result["runs"]) == 12 and all(r["evaluations"] == 120 for r in result["runs"])
    assert all(
        0.0 <= r["hypervolume_gap_pct@120"] <= r["hypervolume_gap_pct@100"] <= 100.0 for r in result["runs"]
    )
    script = str(ROOT / "benchmarks" / "multi_objective.py")
    missing = subprocess.run(
        [sys.executable, script, "--table", str(tmp_path / "no.npz")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and "--table:" in missing.stderr and "does not exist" in missing.stderr
