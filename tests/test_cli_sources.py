"""Every CLI command with every data source it documents, on a generated archive and its table.

Issue 11, item 1: ``show --table`` crashed because no test ran it. Here ``show`` runs with
``--archive`` and ``--table``, by NATS index and by arch string, for every dataset, and the two
sources must print the same numbers; ``validate``, ``run``, ``resume`` and ``report`` run on
``type: benchmark``, ``type: table`` and ``type: table`` with an ``extra_csv``; ``export-table``
writes the table the others read. With ``../shared/nats-tss`` present the real records are
shown too.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import archive_factory as factory

from natsray.cli import main

N_RECORDS = 30
DATASETS = ("cifar10", "cifar100", "ImageNet16-120")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "nats-tss"


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("sources")
    archs = factory.write_archive(root / "archive", N_RECORDS)
    csv = root / "latency.csv"
    csv.write_text("index,my_latency\n" + "".join(f"{i},{1.5 + i}\n" for i in range(N_RECORDS)))
    return {"archive": root / "archive", "table": root / "table.npz", "csv": csv, "archs": archs}


@pytest.fixture(scope="module")
def table(sources: dict[str, Any]) -> Path:
    code = main(["export-table", "--archive", str(sources["archive"]), "--out", str(sources["table"])])
    assert code == 0 and sources["table"].is_file()
    return sources["table"]


def _lines(out: str) -> dict[str, str]:
    return dict(line.rsplit(None, 1) for line in out.splitlines() if line and not line.startswith("  "))


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("by", ["index", "arch"])
def test_show_archive_and_table_print_the_same(sources, table, capsys, dataset: str, by: str) -> None:
    index = 7
    spec = str(index) if by == "index" else sources["archs"][index]
    outputs = {}
    for option, path in (("--archive", sources["archive"]), ("--table", table)):
        code, out, err = cli(capsys, "show", spec, option, path, "--dataset", dataset)
        assert code == 0, err
        outputs[option] = out
    assert outputs["--archive"] == outputs["--table"]
    lines = _lines(outputs["--table"])
    assert lines["NATS index"] == str(index)
    assert float(lines["params"]) == pytest.approx(factory.params(index, dataset))
    assert float(lines["valid_accuracy@12"]) > 0 and lines["test_accuracy@200"] != "n/a"


def test_show_without_a_source_and_bad_indices(sources, table, capsys) -> None:
    code, out, err = cli(capsys, "show", sources["archs"][3])
    assert code == 0 and "NATS index" not in out and "params" in out, err
    for option, path in (("--archive", sources["archive"]), ("--table", table)):
        code, _, err = cli(capsys, "show", str(N_RECORDS + 1), option, path)
        assert code == 2 and err.count("\n") == 1 and f"no record for NATS index {N_RECORDS + 1}" in err


def _config(tmp_path: Path, evaluator: dict[str, Any], name: str) -> Path:
    data = {
        "seed": 0,
        "strategy": {"name": "random"},
        "evaluator": {"dataset": "cifar10", "report": ["test_accuracy@200", "params"], **evaluator},
        "budget": {"evaluations": 6},
        # fail_fast off: the cells a partial archive lacks (each error naming its own) would stop it at 3
        "engine": {"mode": "ordered", "in_process": True, "fail_fast": 0},
        "output": {"dir": str(tmp_path / name)},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _evaluators(sources: dict[str, Any], table: Path) -> dict[str, dict[str, Any]]:
    return {
        "benchmark": {"type": "benchmark", "archive": str(sources["archive"])},
        "table": {"type": "table", "table": str(table)},
        "table-csv": {
            "type": "table",
            "table": str(table),
            "extra_csv": str(sources["csv"]),
            "extra_key": "index",
            "objective": ["valid_accuracy", "my_latency:min"],
        },
    }


def _mostly_failed(run_dir: Path) -> bool:
    summary = json.loads((run_dir / "summary.json").read_text())
    return summary["failed"] * 2 > summary["evaluations"]


@pytest.mark.parametrize("source", ["benchmark", "table", "table-csv"])
def test_validate_run_resume_report(sources, table, tmp_path: Path, capsys, source: str) -> None:
    config = _config(tmp_path, _evaluators(sources, table)[source], source)
    code, out, err = cli(capsys, "validate", config)
    assert code == 0 and out.startswith("OK: "), err
    # the generated archive holds a few records: random search's cells mostly fail there, which the
    # run (and a sweep of such runs) reports in one line and exit code 1, its files written all the same
    code, out, err = cli(capsys, "run", config, "--no-progress")
    run_dir = tmp_path / source
    failing = _mostly_failed(run_dir)
    assert code == (1 if failing else 0), err
    assert ("of 6 evaluations failed (more than 50%)" in err) == failing
    assert f"run dir       {run_dir}" in out and "evaluations   6 (" in out
    journal = [json.loads(line) for line in (run_dir / "evaluations.jsonl").read_text().splitlines()]
    assert len(journal) == 6
    code, out, err = cli(capsys, "resume", run_dir, "--set", "budget.evaluations=9", "--no-progress")
    assert code == (1 if _mostly_failed(run_dir) else 0) and "evaluations   9 (" in out, err
    code, out, err = cli(
        capsys, "run", config, "--no-progress", "--seeds", "0-1", "--out", tmp_path / "seeds"
    )
    import natsray

    stored = natsray.load_sweep(tmp_path / "seeds").runs  # short runs live in the store: dirs written now
    assert [run.path.name for run in stored] == ["seed-0", "seed-1"]
    failing = all(_mostly_failed(tmp_path / "seeds" / f"seed-{seed}") for seed in (0, 1))
    assert code == (1 if failing else 0) and "aggregate" in out, err
    assert ("in 2 of 2 runs more than 50% of the evaluations failed" in err) == failing
    code, out, err = cli(capsys, "report", run_dir, tmp_path / "seeds" / "seed-1", "--out", tmp_path / "rep")
    assert code == 0, err
    assert any((tmp_path / "rep").iterdir())


def test_show_real_records_from_archive_and_table(tmp_path: Path, capsys) -> None:
    records = SHARED / "real-records"
    if not records.is_dir():
        pytest.skip(f"{records} not present")
    table = tmp_path / "real.npz"
    assert main(["export-table", "--archive", str(records), "--out", str(table)]) == 0
    capsys.readouterr()
    outs = [
        cli(capsys, "show", "11", option, path)
        for option, path in (("--archive", records), ("--table", table))
    ]
    assert outs[0][0] == outs[1][0] == 0 and outs[0][1] == outs[1][1]
