"""``benchmarks/throughput.py`` runs as documented and writes its table and JSON (issue 8).

Needs the reference loop ``../shared/bench/bare_rea.py`` and its numbers (skipped without ``../shared``).
A small generated archive stands in for the full table: most look-ups fail for lack of a record, which
exercises the command, not the figures (those are measured on the real table, docs/engine.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import archive_factory as factory

ROOT = Path(__file__).resolve().parents[1]
BARE = ROOT.parent / "shared" / "bench" / "bare_rea.py"


@pytest.mark.ray
@pytest.mark.skipif(not BARE.is_file(), reason="../shared/bench/bare_rea.py is absent")
def test_throughput_benchmark_prints_its_table_and_writes_json(tmp_path: Path) -> None:
    table = factory.write_full_table(tmp_path)  # every cell has a record: no run fails (exit 0)
    out = tmp_path / "throughput.json"
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "throughput.py"),
        "--table", str(table), "--evaluations", "2000", "--actors", "1",
        "--repeats", "2", "--bare-runs", "1", "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "runner      repeat   evals/s  bare evals/s  ratio  target  wall s" in done.stdout
    assert "in-process: median ratio" in done.stdout and "ray x1: median ratio" in done.stdout
    data = json.loads(out.read_text())
    assert [(row["runner"], row["repeat"]) for row in data["rows"]] == [
        ("in-process", 1), ("ray x1", 1), ("in-process", 2), ("ray x1", 2),
    ]  # fmt: skip
    for row in data["rows"]:
        assert row["evaluations"] == 2000 and row["evals_per_s"] > 0 and len(row["bare_evals_per_s"]) == 2
        assert row["ratio"] == pytest.approx(row["evals_per_s"] / (sum(row["bare_evals_per_s"]) / 2))
    assert all(row["startup_finish_seconds"] > 0 for row in data["rows"] if row["runner"] == "in-process")
    assert data["command"].startswith("python benchmarks/throughput.py --table")


def test_a_missing_table_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--table", str(tmp_path / "no.npz")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "--table: no such file" in done.stderr
