"""Nothing is lost when a file is torn or a pipe closes.

* Every file natsray appends to (the journal, ``measure-latency``'s CSV, a sweep's ``sweep-runs.jsonl``)
  drops a torn last line when reopened, and that line's work is done again; a torn latency row is named
  by line, never read as a measurement.
* ``natsray report ... | head`` and ``natsray run --seeds ... | head`` write all their files although
  their reader has gone.
* A run or sweep runs, stores and reports everything, and exits 0, whether its stdout or stderr was
  closed by the shell (``>&-``, ``2>&-``) or its stderr cannot be written (``2>/dev/full``).
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import archive_factory as factory
import pytest
import yaml
from table_config import table_evaluator
from toy_evaluator import TESTS_DIR, local_ray_session

from natsray.cli import main
from natsray.evaluators.table import export_table

REPO = Path(__file__).resolve().parents[1]
TINY = ("--C", "4", "--N", "1", "--repeats", "2", "--no-progress", "--in-process")
_CLI = "import sys, toy_evaluator; from natsray.cli import main; sys.exit(main())"
NATSRAY = f"{shlex.quote(sys.executable)} -c {shlex.quote(_CLI)}"
"""The natsray command line, with the toy evaluator registered (``python -m natsray`` otherwise)."""


def _rows(path: Path) -> list[list[str]]:
    """The CSV's rows, header first (its leading ``#`` settings line left out)."""
    with open(path, newline="") as handle:
        return list(csv.reader(line for line in handle if not line.startswith("#")))


def _tear(path: Path) -> str:
    """Cut the file inside its last line, as a kill mid-write leaves it; the line's first half."""
    data = path.read_bytes()
    start = data.rstrip(b"\n").rfind(b"\n") + 1
    cut = start + (len(data) - start) // 2
    path.write_bytes(data[:cut])
    return data[start:cut].decode()


def _piped(command: str, reader: str, env: dict[str, str] | None = None) -> int:
    """Run ``COMMAND | READER`` through a real pipe; COMMAND's exit status."""
    done = subprocess.run(
        ["bash", "-c", f"{command} | {reader}; exit ${{PIPESTATUS[0]}}"],
        env={
            **os.environ,
            "PYTHONPATH": f"{TESTS_DIR}{os.pathsep}{REPO}",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return done.returncode


def test_measure_latency_measures_a_torn_row_again(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "latency.csv"
    assert main(["measure-latency", "--out", str(out), "--cells", "3", *TINY]) == 0
    whole = _rows(out)
    torn = _tear(out)
    assert torn and not torn.endswith("\n")
    capsys.readouterr()
    assert main(["measure-latency", "--out", str(out), "--cells", "3", *TINY]) == 0
    assert "1 cells measured now, 3 in the file" in capsys.readouterr().out
    again = _rows(out)
    assert out.read_bytes().endswith(b"\n") and len(again) == 4
    assert again[:3] == whole[:3] and again[3][0] == whole[3][0] and float(again[3][1]) > 0


def test_a_torn_latency_row_is_named_not_read(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "latency.csv"
    assert main(["measure-latency", "--out", str(out), "--cells", "3", *TINY]) == 0
    data = out.read_bytes()
    out.write_bytes(data[: len(data) - 3])  # "0.0123\r\n" -> "0.01": a number, but not the measured one
    torn_line = data.count(b"\n")  # the last line's number
    factory.write_archive(tmp_path / "archive", 4)
    export_table(tmp_path / "archive", tmp_path / "t.npz", progress=False)
    config = REPO / "configs/nsga2-latency-table.yaml"
    argv = ["--set", f"evaluator.table={tmp_path / 't.npz'}", "--set", f"evaluator.extra_csv={out}"]
    capsys.readouterr()
    code = main(["run", str(config), *argv, "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert f"extra_csv: {out} line {torn_line} is torn" in err, err


def test_report_writes_its_files_when_its_reader_is_gone(tmp_path: Path) -> None:
    config = tmp_path / "toy.yaml"
    toy = {"strategy": {"name": "random"}, "evaluator": {"type": "toy"}, "budget": {"evaluations": 8}}
    config.write_text(yaml.safe_dump({**toy, "engine": {"in_process": True}}))
    for seed in (0, 1):
        argv = ["run", str(config), "--out", str(tmp_path / f"seed-{seed}"), "--set", f"seed={seed}"]
        assert main([*argv, "--no-progress"]) == 0
    for reader, out in (("head -n 0", "gone"), ("head -2", "two")):  # gone before the first line; after two
        command = f"{NATSRAY} report {tmp_path}/seed-0 {tmp_path}/seed-1 --out {tmp_path / out}"
        assert _piped(command, reader) in (0, 141)
        written = {path.name for path in (tmp_path / out).iterdir()}
        assert {"report.json", "report.csv", "best_so_far.png", "best_so_far_seeds.png"} <= written


def test_closed_or_unwritable_stdout_and_stderr_lose_no_run(tmp_path: Path, full_table: Path) -> None:
    config = tmp_path / "table.yaml"
    data = {
        "strategy": {"name": "random"},
        "evaluator": table_evaluator(full_table),
        "budget": {"evaluations": 20},
        "engine": {"mode": "simulated"},
        "output": {"progress": True, "plots": False},  # bars on stderr, redrawn as runs finish
    }
    config.write_text(yaml.safe_dump(data))
    cases = {"2>&-": 0, ">&-": 0, "2>/dev/full": 0, "| head -1": 141}
    for i, redirect in enumerate(cases):
        out = tmp_path / f"sweep{i}"
        code = _piped(f"{NATSRAY} run {config} --seeds 0-2 --out {out} {redirect}", "cat > /dev/null")
        assert code == cases[redirect], redirect
        assert len((out / "sweep-runs.jsonl").read_text().splitlines()) == 3, redirect  # all stored
        assert (out / "report" / "sweep_report.json").is_file() and (out / "aggregate.json").is_file()
    out = tmp_path / "run"  # one run, its progress bar on stderr
    assert _piped(f"{NATSRAY} run {config} --out {out} 2>&-", "cat > /dev/null") == 0
    assert json.loads((out / "summary.json").read_text())["evaluations"] == 20


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    with local_ray_session() as gcs_address:
        yield gcs_address


@pytest.mark.ray
def test_a_sweep_writes_its_aggregate_when_its_reader_is_gone_and_drops_a_torn_status_line(
    tmp_path: Path, address: str
) -> None:
    config = tmp_path / "toy.yaml"
    data = {
        "strategy": {"name": "random"},
        "evaluator": {"type": "toy"},
        "budget": {"evaluations": 8},
        "engine": {"in_process": True},
        "resources": {"cpus_per_actor": 0.5},
        "ray": {"runtime_env": {"env_vars": {"PYTHONPATH": f"{TESTS_DIR}{os.pathsep}{REPO}"}}},
    }
    config.write_text(yaml.safe_dump(data))
    out = tmp_path / "sweep"
    sweep = f"{NATSRAY} run {config} --seeds 0-3 --out {out} --address {address} --no-progress"
    assert _piped(sweep, "head -n 0") in (0, 141)
    aggregate = json.loads((out / "aggregate.json").read_text())
    assert aggregate["seeds"] == [0, 1, 2, 3]
    status = out / "sweep-runs.jsonl"
    _tear(status)
    assert _piped(f"{NATSRAY} resume {out} --address {address} --no-progress", "cat > /dev/null") == 0
    lines = status.read_text().splitlines(keepends=True)
    assert all(line.endswith("\n") and json.loads(line) for line in lines)  # the torn line dropped
    # the run whose outcome line was torn is in the store: not run again, its outcome recorded again, once
    assert sorted(Path(json.loads(line)["run_dir"]).name for line in lines) == [f"seed-{s}" for s in range(4)]
    summaries = [f.read_text().splitlines() for f in (out / "store").glob("*.runs.jsonl")]
    stored = [json.loads(line)["run"] for lines_of_file in summaries for line in lines_of_file]
    assert sorted(stored) == [f"seed-{s}" for s in range(4)]  # none run again
