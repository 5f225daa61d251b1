"""``benchmarks/callbacks_overhead.py`` runs as documented (docs/callbacks.md) and writes its table and JSON.

A small generated archive's table stands in for the real one: most look-ups fail for lack of a record, which
exercises the command, not the figures (those are measured on the real table).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import archive_factory as factory

from natsray.evaluators.table import export_table

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_callbacks_overhead_benchmark_prints_its_table_and_writes_json(tmp_path: Path) -> None:
    factory.write_archive(tmp_path / "archive", 40)
    table = export_table(tmp_path / "archive", tmp_path / "t.npz", progress=False)
    out = tmp_path / "overhead.json"
    command = [
        sys.executable, str(ROOT / "benchmarks" / "callbacks_overhead.py"),
        "--table", str(table), "--evaluations", "300", "--repeats", "1", "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "callback         repeat   wall s   evals/s  ratio" in done.stdout
    assert "load average" in done.stdout
    rows = json.loads(out.read_text())["rows"]
    expected = ["none", "no-op callback"] + [
        name for name in ("tensorboard", "mlflow") if importlib.util.find_spec(name) is not None
    ]
    assert [row["callback"] for row in rows] == expected
    for row in rows:
        assert row["evaluations"] == 300 and row["wall_seconds"] > 0
        assert row["ratio_to_none"] == pytest.approx(row["wall_seconds"] / rows[0]["wall_seconds"])
