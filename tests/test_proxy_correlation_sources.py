"""``benchmarks/proxy_correlation.py`` reads an archive or an exported table (issue 11, item 3)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import archive_factory as factory
from benchmark_scripts import load_benchmark

from natsray.evaluators.table import export_table

ROOT = Path(__file__).resolve().parents[1]
N_RECORDS = 8


def _script():
    return load_benchmark("proxy_correlation")


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pc")
    factory.write_archive(root / "archive", N_RECORDS)
    return root / "archive", export_table(root / "archive", root / "t.npz", progress=False)


def test_archive_and_table_give_the_same_report(sources, tmp_path: Path) -> None:
    archive, table = sources
    script = _script()
    reports = []
    for option, path in (("--archive", archive), ("--table", table)):
        out = tmp_path / f"{option[2:]}.json"
        argv = [
            option,
            str(path),
            "--samples",
            "5",
            "--proxies",
            "synflow",
            "--out",
            str(out),
            "--threads",
            "1",
        ]
        reports.append(script.main(argv))
        assert json.loads(out.read_text())["spearman"] == reports[-1]["spearman"]
    first, second = reports
    assert first["spearman"] == second["spearman"]
    assert [c["index"] for c in first["cells"]] == [c["index"] for c in second["cells"]]
    assert all(0 <= c["index"] < N_RECORDS for c in first["cells"])  # only cells with results
    assert set(first["spearman"]) == {"synflow", "params", "flops"}
    assert set(first["spearman"]["params"]) == {"cifar10_test_acc_hp200", "cifar10-valid_valid_acc_hp200"}
    assert first["seconds_per_cell"] > 0


def test_too_many_samples_is_a_usage_error(sources, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        _script().main(
            ["--table", str(sources[1]), "--samples", str(N_RECORDS + 1), "--out", str(tmp_path / "x")]
        )
    assert info.value.code == 2
