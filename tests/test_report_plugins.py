"""Reports of a plugin's sweep, without the plugin: the stored results and the config as data suffice.

A strategy plugin is written in a temp dir and put on ``sys.path`` (as a user's own package is);
a sweep of it (the sweep task's own code, :func:`~natsray.study.sweep.execute_run` with the sweep's
store, in this process: no Ray) is reported here, with the plugin importable, and from a fresh
process in another directory where it is not: the tables are the same, all runs finished, and the
plugin is never imported. A stored run whose config cannot be read stops the report with one
line (exit 2) and leaves the report already there as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from natsray.api import plan_sweep
from natsray.study.report import sweep_report
from natsray.study.store import StoreWriter
from natsray.study.sweep import execute_run

ROOT = Path(__file__).resolve().parents[1]

PLUGIN = '''
from __future__ import annotations

from dataclasses import dataclass

from natsray.strategies.random_search import RandomSearch


@dataclass(frozen=True)
class LuckyConfig:
    name: str = "luckylab.lucky:Lucky"
    tries: int = 3


class Lucky(RandomSearch):
    Config = LuckyConfig
'''


@pytest.fixture(scope="module")
def swept(full_table: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished sweep (plugin vs random x 2 seeds, 12 evaluations each) in the sweep's store, and
    its report written with the plugin importable (``report/``)."""
    root = tmp_path_factory.mktemp("plugin")
    (root / "lib" / "luckylab").mkdir(parents=True)
    (root / "lib" / "luckylab" / "__init__.py").write_text("")
    (root / "lib" / "luckylab" / "lucky.py").write_text(textwrap.dedent(PLUGIN))
    sys.path.insert(0, str(root / "lib"))
    try:
        data: dict[str, Any] = {
            "search_space": {"dedup": "arch"},
            "strategy": {"name": "random"},
            "evaluator": {
                "type": "table",
                "table": str(full_table),
                "dataset": "cifar10",
                "hp": "12",
                "objective": ["valid_accuracy"],
                "report": ["test_accuracy@200"],
            },
            "budget": {"evaluations": 12},
            "engine": {"mode": "simulated", "simulated_workers": 1},
            "output": {"progress": False, "plots": False},
            "sweep": {
                "seeds": "0-1",
                "grid": {"strategy": {"lucky": {"strategy.name": "luckylab.lucky:Lucky"}, "random": {}}},
            },
        }
        sweep_dir, runs = plan_sweep(data, root / "sweep", absolute=True)
        store = StoreWriter(sweep_dir)
        for run in runs:
            execute_run(run.config, run.run_dir, store=store, name=run.name)
        store.close()
        sweep_report(sweep_dir)
    finally:
        sys.path.remove(str(root / "lib"))
        for name in [name for name in sys.modules if name.startswith("luckylab")]:
            del sys.modules[name]
    return sweep_dir


def without_plugin(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -c code`` in a clean environment (natsray importable, the plugin's folder not) in ``cwd``."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "HOME": str(cwd)}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_a_plugins_sweep_is_reported_the_same_without_the_plugin(swept: Path, tmp_path: Path) -> None:
    out = tmp_path / "again"
    code = (
        "import sys\nfrom natsray.cli import main\n"
        f"code = main(['report', {str(swept)!r}, '--out', {str(out)!r}])\n"
        "import natsray\n"
        f"runs = natsray.load_sweep({str(swept)!r}).runs\n"
        "print('finished', sum(run.finished for run in runs), 'of', len(runs))\n"
        "print('imported', any(name.startswith('luckylab') for name in sys.modules))\n"
        "sys.exit(code)\n"
    )
    done = without_plugin(code, tmp_path)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert "finished 4 of 4\nimported False\n" in done.stdout
    want = (swept / "report" / "sweep_report.md").read_text()
    assert (out / "sweep_report.md").read_text() == want
    assert "| lucky | 2 | 0 |" in want  # both seeds of the plugin's point, none unfinished
    assert "test_accuracy@200 95% CI" in want.splitlines()[0]
    assert json.loads((out / "sweep_report.json").read_text()) == json.loads(
        (swept / "report" / "sweep_report.json").read_text()
    )


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
