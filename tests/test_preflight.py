"""Validation sees what the run will see (issue 19, item 5): whatever ``natsray run`` refuses,
``natsray validate`` refuses first with the same line, before Ray starts and creating nothing; rungs
of a multi-fidelity strategy are checked against what the evaluator serves; a partial ``extra_csv``
is announced; a run whose evaluations mostly failed exits 1."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import archive_factory as factory

from natsray.cli import main
from natsray.engine.checkpoint import read_journal
from natsray.search_space import all_archs

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full generated table in which, as in the real NATS-Bench files, cifar100 has no hp-200
    validation accuracy."""
    directory = tmp_path_factory.mktemp("table")
    path = factory.write_full_table(directory)
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    arrays["cifar100/200/x-valid/accuracy"][:] = np.nan
    np.savez(directory / "t.npz", **arrays)
    return directory / "t.npz"


def _write(tmp_path: Path, config: dict) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _asha(table: Path, dataset: str, budgets: list[int]) -> dict:
    return {
        "seed": 0,
        "strategy": {"name": "asha_evolution", "population": 5, "sample_size": 2, "budgets": budgets},
        "evaluator": {
            "type": "table",
            "table": str(table),
            "dataset": dataset,
            "objective": ["valid_accuracy"],
        },
        "budget": {"evaluations": 30},
        "engine": {"mode": "ordered", "in_process": True},
    }


def _refused_alike(tmp_path: Path, config: str, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    """validate and run refuse ``config`` with the same one line (exit 2) and run creates nothing."""
    out = tmp_path / "run"
    assert main(["validate", config, *extra]) == 2
    validate_err = capsys.readouterr().err
    assert main(["run", config, "--out", str(out), "--no-progress", *extra]) == 2
    run_err = capsys.readouterr().err
    assert validate_err == run_err and len(run_err.strip().splitlines()) == 1, (validate_err, run_err)
    assert not out.exists()
    return run_err.strip()


def test_asha_rung_that_is_no_nats_schedule_is_refused(tmp_path: Path, table: Path, capsys) -> None:
    line = _refused_alike(tmp_path, _write(tmp_path, _asha(table, "cifar10", [12, 50])), capsys)
    assert line.endswith(
        "strategy.budgets: rung 50: budget: 50 is not a NATS-Bench hp; expected one of 12, 200 (epochs)"
    )


def test_asha_rung_the_table_has_no_metric_for_is_refused(tmp_path: Path, table: Path, capsys) -> None:
    line = _refused_alike(tmp_path, _write(tmp_path, _asha(table, "cifar100", [12, 200])), capsys)
    assert "strategy.budgets: rung 200:" in line and "valid" in line
    # the served rungs pass both commands, and the run's promotions succeed
    config = _write(tmp_path, _asha(table, "cifar10", [12, 200]))
    assert main(["validate", config]) == 0
    assert main(["run", config, "--out", str(tmp_path / "ok"), "--no-progress"]) == 0
    records = [json.loads(line) for line in (tmp_path / "ok/evaluations.jsonl").read_text().splitlines()]
    assert any(r.get("budget") == 200 for r in records) and all(r["status"] == "ok" for r in records)


def test_archive_pointing_at_a_file_is_refused_by_validate_as_by_run(tmp_path: Path, capsys) -> None:
    (tmp_path / "records.pickle").write_bytes(b"not an archive")
    config = {
        "strategy": {"name": "random"},
        "evaluator": {
            "type": "benchmark",
            "archive": str(tmp_path / "records.pickle"),
            "objective": ["valid_accuracy"],
        },
        "budget": {"evaluations": 5},
        "engine": {"mode": "ordered", "in_process": True},
    }
    line = _refused_alike(tmp_path, _write(tmp_path, config), capsys)
    assert "evaluator.archive" in line and "records.pickle" in line


def _latency_table_config(tmp_path: Path, table: Path, csv_text: str, evaluations: int = 40) -> str:
    (tmp_path / "latency.csv").write_text(csv_text)
    config = yaml.safe_load((ROOT / "configs/nsga2-latency-table.yaml").read_text())
    config["evaluator"].update(table=str(table), extra_csv=str(tmp_path / "latency.csv"))
    config["budget"] = {"evaluations": evaluations}
    config["strategy"]["population"] = 10
    return _write(tmp_path, config)


def test_extra_csv_content_is_read_by_validate(tmp_path: Path, table: Path, capsys) -> None:
    archs = [arch.to_str() for arch in itertools.islice(all_archs(), 6)]
    rows = [f"{arch},{1.5 + i}" for i, arch in enumerate(archs[:5])] + [f"{archs[5]},fast"]
    config = _latency_table_config(tmp_path, table, "arch,latency_ms\n" + "\n".join(rows) + "\n")
    line = _refused_alike(tmp_path, config, capsys)
    assert line.endswith("line 7 column 'latency_ms': 'fast' is not a number")


def test_partial_extra_csv_is_announced_stops_by_fail_fast_and_without_it_a_mostly_failed_run_exits_1(
    tmp_path: Path, table: Path, capsys
) -> None:
    archs = [arch.to_str() for arch in itertools.islice(all_archs(), 624)]
    rows = [f"{arch},{1.0 + i / 1000}" for i, arch in enumerate(archs)]
    config = _latency_table_config(tmp_path, table, "arch,latency_ms\n" + "\n".join(rows) + "\n")
    csv_path = tmp_path / "latency.csv"
    warning = (
        f"natsray: warning: extra_csv: {csv_path} has latency_ms for 624 of 15,625 cells (4.0 %); "
        "evaluations of the other cells fail, and a run whose first evaluations (engine.fail_fast) all do "
        f"stops: measure every cell first (`natsray measure-latency --out {csv_path}` continues), or set "
        "engine.fail_fast: 0 to search with the cells it has"
    )
    assert main(["validate", config]) == 0
    assert capsys.readouterr().err.strip() == warning
    # the first 3 cells the CSV lacks (each error naming its own cell) are one failure: bad input, exit 2
    assert main(["run", config, "--out", str(tmp_path / "stopped"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0] == warning
    assert err[1].startswith(
        "natsray: error: evaluator.extra_csv: the first 3 evaluations all failed with: objective "
        "'latency_ms': the evaluator's extra_csv has no value for this cell (NATS index "
    )
    assert f"`natsray measure-latency --out {csv_path}` measures the rest" in err[1]
    records = read_journal(tmp_path / "stopped" / "evaluations.jsonl")
    assert 3 <= len(records) <= 10 and {r["status"] for r in records} == {"failed"}  # + the rest of a batch
    off = ["--set", "engine.fail_fast=0"]
    assert main(["run", config, *off, "--out", str(tmp_path / "run"), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    summary = json.loads((tmp_path / "run/summary.json").read_text())
    assert summary["failed"] > summary["evaluations"] / 2
    assert len(err) == 2 and err[0] == warning
    # the line names the commonest error (a cell the CSV lacks), then where all of them are
    assert err[1].startswith(
        f"natsray: {summary['failed']} of {summary['evaluations']} evaluations failed (more than 50%), "
    )
    assert err[1].endswith(f'; the errors are in {tmp_path / "run/evaluations.jsonl"} ("error")')


def test_training_dataset_missing_from_data_dir_is_refused_before_ray(tmp_path: Path, capsys) -> None:
    (tmp_path / "data").mkdir()
    config = yaml.safe_load((ROOT / "configs/train-digits-topk.yaml").read_text())
    config["evaluator"].update(dataset="cifar10", data_dir=str(tmp_path / "data"))
    line = _refused_alike(tmp_path, _write(tmp_path, config), capsys)
    assert "cifar10" in line and str(tmp_path / "data") in line


def test_switching_the_evaluator_type_drops_the_keys_the_new_type_lacks(table: Path, capsys) -> None:
    """docs/config.md's command: the benchmark's archive key goes, a misspelt --set key still fails."""
    config = str(ROOT / "configs/rea-cifar10.yaml")
    assert (
        main(["validate", config, "--set", "evaluator.type=table", "--set", f"evaluator.table={table}"]) == 0
    )
    assert "evaluator table" in capsys.readouterr().out
    switched = [
        "--set",
        f"evaluator.table={table}",
        "--set",
        "evaluator.archiv=x",
        "--set",
        "evaluator.type=table",
    ]
    assert main(["validate", config, *switched]) == 2
    assert "evaluator.archiv: unknown key" in capsys.readouterr().err
    same = ["--set", "evaluator.type=benchmark", "--set", "evaluator.tabel=x"]  # no switch: nothing dropped
    assert main(["validate", config, *same]) == 2
    assert "evaluator.tabel: unknown key" in capsys.readouterr().err


def test_a_sweep_config_is_validated_per_grid_point_as_run_sees_it(
    tmp_path: Path, table: Path, capsys
) -> None:
    """validate reads a config with a sweep section (it refused the `sweep` key), and refuses what
    `run` would, with the same line, before anything is written."""
    config = str(ROOT / "configs/sweeps/nats-bench-rea-random.yaml")
    assert main(["validate", config, "--set", f"evaluator.table={table}"]) == 0
    assert "sweep of 1800 runs (6 grid point(s) x 300 seed(s))" in capsys.readouterr().out
    (tmp_path / "bad.csv").write_text("arch,score\n|x|,1\n")
    bad = ["--set", f"evaluator.table={table}", "--set", f"evaluator.extra_csv={tmp_path / 'bad.csv'}"]
    line = _refused_alike(tmp_path, config, capsys, *bad)
    assert line.startswith(f"natsray: error: {config}: every grid point: extra_csv:")  # a --set, not a point
