"""``natsray measure-latency``: a CSV the table evaluator joins, resumable, on Ray actors (issue 11)."""

from __future__ import annotations

import csv
import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import archive_factory as factory

from natsray.cli import main
from natsray.evaluators.table import export_table, load_extra_csv, load_table
from natsray.experiment.latency import cell_order
from natsray.search_space import Arch
from natsray.search_space.operators import random_sample

ROOT = Path(__file__).resolve().parents[1]
TINY = ("--C", "4", "--N", "1", "--repeats", "2", "--no-progress")


def rows(path: Path) -> list[list[str]]:
    """The CSV's rows, its ``#`` settings line skipped (as every reader does)."""
    with open(path, newline="") as handle:
        return list(csv.reader(line for line in handle if not line.startswith("#")))


def test_measures_a_subset_then_extends_it_without_remeasuring(tmp_path: Path, capsys) -> None:
    out = tmp_path / "latency.csv"
    assert main(["measure-latency", "--out", str(out), "--cells", "3", "--in-process", *TINY]) == 0
    first = rows(out)
    assert first[0] == ["arch", "latency_ms"] and len(first) == 4
    assert [r[0] for r in first[1:]] == [arch.to_str() for arch in cell_order(0)[:3]]
    assert all(float(r[1]) > 0 for r in first[1:])
    assert "3 cells measured now, 3 in the file" in capsys.readouterr().out
    assert main(["measure-latency", "--out", str(out), "--cells", "5", "--in-process", *TINY]) == 0
    second = rows(out)
    assert second[:4] == first and len(second) == 6  # the first three were not measured again
    assert "2 cells measured now, 5 in the file" in capsys.readouterr().out
    assert main(["measure-latency", "--out", str(out), "--cells", "5", "--in-process", *TINY]) == 0
    assert rows(out) == second and "0 cells measured now" in capsys.readouterr().out


def test_the_csv_joins_a_table_as_extra_csv(tmp_path: Path) -> None:
    out = tmp_path / "latency.csv"
    assert main(["measure-latency", "--out", str(out), "--cells", "2", "--in-process", *TINY]) == 0
    factory.write_archive(tmp_path / "archive", 2)
    table = load_table(export_table(tmp_path / "archive", tmp_path / "t.npz", progress=False))
    column = load_extra_csv(out, "arch", table)["latency_ms"]
    for arch_str, ms in rows(out)[1:]:
        assert column[Arch.from_str(arch_str).code] == pytest.approx(float(ms))
    assert np.count_nonzero(~np.isnan(column)) == 2


def test_a_measured_prefix_is_a_random_sample_for_a_search_of_the_same_seed() -> None:
    """A user's report: 408 cells measured (``--seed 0``), a seed-0 NSGA-II proposed 1,000 cells and none
    of them was measured (~26 expected). The order's shuffle drew the same numbers as the strategy's
    ``random.Random(0)`` samples, which it placed at the end of the order; the order is now salted."""
    rng = random.Random(0)  # a strategy's random stream (Strategy.rng) at the configs' seed 0
    proposed = {random_sample(rng).code for _ in range(1000)}
    measured = {arch.code for arch in cell_order(0)[:1000]}
    assert len(proposed & measured) > 30  # ~64 expected (1000 x 1000 / 15,625); was 0


def test_refuses_a_foreign_csv_in_one_line(tmp_path: Path, capsys) -> None:
    out = tmp_path / "other.csv"
    out.write_text("index,titan\n1,2\n")
    assert main(["measure-latency", "--out", str(out), "--cells", "1", "--in-process", *TINY]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a natsray latency CSV" in err
    assert out.read_text() == "index,titan\n1,2\n"
    assert main(["measure-latency", "--out", str(out), "--cells", "0", *TINY]) == 2


@pytest.mark.ray
@pytest.mark.slow
def test_on_two_ray_actors(tmp_path: Path, capsys) -> None:
    pytest.importorskip("ray")
    out = tmp_path / "latency.csv"
    assert main(["measure-latency", "--out", str(out), "--cells", "6", "--actors", "2", *TINY]) == 0
    assert "Token authentication is enabled" not in capsys.readouterr().err  # as natsray run: no warning
    assert "mode=ray-actors=2 threads=1" in out.read_text().splitlines()[0]
    measured = rows(out)[1:]
    assert sorted(r[0] for r in measured) == sorted(a.to_str() for a in cell_order(0)[:6])


@pytest.mark.ray
@pytest.mark.slow
def test_nsga2_latency_runs_from_a_fresh_clone(tmp_path: Path, capsys, monkeypatch) -> None:
    """configs/nsga2-latency.yaml needs nothing but the clone (a smaller network and budget here)."""
    monkeypatch.chdir(tmp_path)
    small = ["--set", "evaluator.N=1", "--set", "evaluator.C=4", "--set", "budget.evaluations=4"]
    assert main(["run", str(ROOT / "configs/nsga2-latency.yaml"), *small, "--no-progress"]) == 0
    summary = json.loads((tmp_path / "runs/nsga2-latency/summary.json").read_text())
    assert summary["objectives"] == ["naswot:max", "latency:min", "params:min"] and summary["failed"] == 0


def test_nsga2_latency_table_runs_on_the_files_it_names(tmp_path: Path, capsys, monkeypatch) -> None:
    """configs/nsga2-latency-table.yaml on an exported table and a CSV from measure-latency, as documented."""
    monkeypatch.chdir(tmp_path)
    factory.write_archive(tmp_path / "archive", 4)
    export_table(tmp_path / "archive", tmp_path / "nats-tss.npz", progress=False)
    assert main(["measure-latency", "--out", "latency.csv", "--cells", "3", "--in-process", *TINY]) == 0
    config = str(ROOT / "configs/nsga2-latency-table.yaml")
    assert main(["validate", config]) == 0, capsys.readouterr().err
    capsys.readouterr()
    # 3 measured cells of 15,625 (of a 4-record archive): said up front, and the first evaluations, which
    # fail alike but for the cell they name, stop the run (engine.fail_fast), exit 1
    assert main(["run", config, "--set", "budget.evaluations=5", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert (
        "has latency_ms for 3 of 15,625 cells (0.0 %)" in err and "the first 3 evaluations all failed" in err
    )
    assert 3 <= len((tmp_path / "runs/nsga2-latency-table/evaluations.jsonl").read_text().splitlines()) <= 5


def test_the_csv_says_how_it_was_measured_and_pandas_reads_it(tmp_path: Path, capsys) -> None:
    """Default: in this process on one thread (no Ray). The first line records mode, threads, device,
    torch version and the network; pandas (comment="#") and the extra_csv reader skip it."""
    import pandas as pd
    import torch

    out = tmp_path / "latency.csv"
    assert main(["measure-latency", "--out", str(out), "--cells", "2", *TINY]) == 0
    first = out.read_text().splitlines()[0]
    assert first == (
        f"# natsray measure-latency: mode=in-process threads=1 device=cpu torch={torch.__version__} "
        "dataset=cifar10 C=4 N=1 batch_size=1 repeats=2"
    )
    frame = pd.read_csv(out, comment="#")
    assert list(frame.columns) == ["arch", "latency_ms"] and len(frame) == 2 and (frame.latency_ms > 0).all()
    # extending it with other settings would mix two measurements: refused in one line, file untouched
    before = out.read_text()
    assert (
        main(["measure-latency", "--out", str(out), "--cells", "3", "--C", "8", "--N", "1", "--repeats", "2"])
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "measured with other settings (mode=in-process" in err
    assert out.read_text() == before


def test_progress_bar_shows_an_eta(tmp_path: Path, capsys) -> None:
    out = tmp_path / "latency.csv"
    assert (
        main(["measure-latency", "--out", str(out), "--cells", "9", "--C", "4", "--N", "1", "--repeats", "2"])
        == 0
    )
    err = capsys.readouterr().err
    assert "measure-latency: 100%" in err and "9/9" in err and "<" in err  # tqdm: [elapsed<remaining]


def test_ctrl_c_says_how_to_continue(tmp_path: Path) -> None:
    """SIGINT once rows are in the file: exit 130, one line saying the same command continues."""
    import os
    import signal
    import subprocess
    import time

    out = tmp_path / "latency.csv"
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    command = [
        sys.executable,
        "-m",
        "natsray",
        "measure-latency",
        "--out",
        str(out),
        "--cells",
        "15625",  # every cell: still running when the signal comes, even on a loaded machine
        *TINY,
    ]
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as from a terminal: a shell's background job (CI under nohup, say) would start it with SIGINT
        # ignored, and Python then installs no KeyboardInterrupt handler
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        for _ in range(600):  # up to 60 s for the first chunk to be written
            if out.is_file() and len(rows(out)) > 1:
                break
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130
    assert err.strip().splitlines()[-1] == (
        f"natsray: interrupted; the cells measured are in {out}; "
        "the same command continues with the cells it lacks"
    )
    assert len(rows(out)) > 1
