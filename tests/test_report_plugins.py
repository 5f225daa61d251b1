"""Reports of a plugin's sweep, without the plugin: the stored results and the config as data suffice.

A strategy plugin is written in a temp dir and put on ``sys.path`` (as a user's own package is); a
sweep of it runs in this process (``parallel=1``: no Ray), from Python (``natsray.sweep``, which
prints nothing) and from the command line (``natsray run --parallel 1``, which prints its report).
The report written at the end of each sweep equals one written later by ``natsray report`` from a
fresh process in another directory where the plugin is not importable: all runs finished, the
plugin never imported. A stored run whose config cannot be read stops the report with one line
(exit 2) and leaves the report already there as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from table_config import table_evaluator
from user_package import user_package

import natsray
from natsray.cli import main

ROOT = Path(__file__).resolve().parents[1]

PLUGIN = """
from __future__ import annotations

from dataclasses import dataclass

from natsray.strategies.random_search import RandomSearch


@dataclass(frozen=True)
class LuckyConfig:
    name: str = "luckylab.lucky:Lucky"
    tries: int = 3


class Lucky(RandomSearch):
    Config = LuckyConfig
"""


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """``luckylab.lucky:Lucky`` importable in this process (a folder on ``sys.path``), only here."""
    with user_package(tmp_path_factory.mktemp("lib"), "luckylab", {"lucky": PLUGIN}):
        yield


def config(table: Path) -> dict[str, Any]:
    """Plugin vs random x 2 seeds, 12 evaluations each on the table, in simulated time."""
    return {
        "search_space": {"dedup": "arch"},
        "strategy": {"name": "random"},
        "evaluator": table_evaluator(table),
        "budget": {"evaluations": 12},
        "engine": {"mode": "simulated", "simulated_workers": 1},
        "output": {"progress": False, "plots": False},
        "sweep": {
            "seeds": "0-1",
            "grid": {"strategy": {"lucky": {"strategy.name": "luckylab.lucky:Lucky"}, "random": {}}},
        },
    }


@pytest.fixture(scope="module")
def swept(plugin: None, full_table: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sweep run from Python, its report written at its end (``report/``)."""
    out = tmp_path_factory.mktemp("plugin") / "sweep"
    return natsray.sweep(config(full_table), out=out, parallel=1, progress=False).path


def without_plugin(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -c code`` in a clean environment (natsray importable, the plugin's folder not) in ``cwd``."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "HOME": str(cwd)}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def report_without_plugin(sweep: Path, out: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``natsray report SWEEP --out OUT``, then ``natsray.load_sweep(SWEEP).runs``, without the plugin."""
    code = (
        "import sys\nfrom natsray.cli import main\n"
        f"code = main(['report', {str(sweep)!r}, '--out', {str(out)!r}])\n"
        "import natsray\n"
        f"runs = natsray.load_sweep({str(sweep)!r}).runs\n"
        "print('finished', sum(run.finished for run in runs), 'of', len(runs))\n"
        "print('imported', any(name.startswith('luckylab') for name in sys.modules))\n"
        "sys.exit(code)\n"
    )
    return without_plugin(code, cwd)


def same_report(a: Path, b: Path) -> None:
    assert (a / "sweep_report.md").read_text() == (b / "sweep_report.md").read_text()
    assert json.loads((a / "sweep_report.json").read_text()) == json.loads(
        (b / "sweep_report.json").read_text()
    )


def test_a_plugins_sweep_is_reported_the_same_without_the_plugin(swept: Path, tmp_path: Path) -> None:
    done = report_without_plugin(swept, tmp_path / "again", tmp_path)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.startswith("| strategy | seeds |")  # the command prints its table
    assert done.stdout.endswith("finished 4 of 4\nimported False\n")
    same_report(tmp_path / "again", swept / "report")  # the report of the sweep's end, plugin importable
    table = (swept / "report" / "sweep_report.md").read_text()
    assert "| lucky | 2 | 0 |" in table  # both seeds of the plugin's point, none unfinished
    assert "test_accuracy@200 95% CI" in table.splitlines()[0] and "most frequent best nats_index |" in table


def test_the_command_lines_end_of_sweep_report_equals_a_later_one(
    plugin: None, full_table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``natsray run --seeds`` reads its runs once for its end report (and the aggregate); a later
    ``natsray report`` reads them again: the same table and JSON, the plugin not needed."""
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config(full_table)))
    sweep = tmp_path / "sweep"
    assert main(["run", str(path), "--out", str(sweep), "--parallel", "1", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith((sweep / "report" / "sweep_report.md").read_text())
    done = report_without_plugin(sweep, tmp_path / "later", tmp_path)
    assert done.returncode == 0 and "finished 4 of 4" in done.stdout, done.stderr
    same_report(tmp_path / "later", sweep / "report")


def test_a_sweep_from_python_prints_nothing_unless_asked(
    swept: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """natsray.sweep(progress=False) and Sweep.report() print nothing (as natsray.run);
    report(show=True) prints the table the command prints."""
    capsys.readouterr()
    sweep = natsray.load_sweep(swept)
    rows = sweep.report(tmp_path / "quiet")
    assert capsys.readouterr().out == "" and len(rows["points"]) == 2
    same_report(tmp_path / "quiet", swept / "report")
    sweep.report(tmp_path / "shown", show=True)
    table = (swept / "report" / "sweep_report.md").read_text()
    assert capsys.readouterr().out == f"{table}wrote {tmp_path / 'shown'}\n"


def test_natsray_sweep_prints_nothing(
    plugin: None, full_table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = {**config(full_table), "sweep": {"seeds": "0"}}
    sweep = natsray.sweep(data, out=tmp_path / "sweep", parallel=1, progress=False)
    assert capsys.readouterr().out == ""
    assert (sweep.path / "report" / "sweep_report.md").is_file()


def test_a_stored_run_without_a_valid_config_stops_the_report_and_keeps_the_old_one(
    swept: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "sweep"
    shutil.copytree(swept, copy)
    plan = (copy / "sweep.yaml").read_text()
    (copy / "sweep.yaml").write_text(plan.replace("evaluations: 12", "evaluations: -1"))
    before = {path.name: path.read_bytes() for path in (copy / "report").iterdir()}
    done = without_plugin(
        f"import sys\nfrom natsray.cli import main\nsys.exit(main(['report', {str(copy)!r}]))", tmp_path
    )
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("natsray: error: "), done.stderr
    assert "seed-0: finished, but its config in sweep.yaml is invalid" in lines[0]
    assert "budget" in lines[0] and "evaluations" in lines[0]
    assert {path.name: path.read_bytes() for path in (copy / "report").iterdir()} == before


def test_a_sweep_of_an_entry_point_plugin_not_installed_is_reported(swept: Path, tmp_path: Path) -> None:
    """A plugin named by its entry point's short name (``strategy.name: lucky``), its distribution
    not installed where the report runs: the name is kept as given, never looked up."""
    copy = tmp_path / "sweep"
    shutil.copytree(swept, copy)
    plan = (copy / "sweep.yaml").read_text()
    assert "strategy.name: luckylab.lucky:Lucky" in plan
    (copy / "sweep.yaml").write_text(
        plan.replace("strategy.name: luckylab.lucky:Lucky", "strategy.name: lucky")
    )
    done = report_without_plugin(copy, tmp_path / "again", tmp_path)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert "finished 4 of 4" in done.stdout
    assert (tmp_path / "again" / "sweep_report.md").read_text() == (
        swept / "report" / "sweep_report.md"
    ).read_text()
