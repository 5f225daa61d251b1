"""Sweeps on ``type: benchmark`` read the archive once: a cached compact table, equal results (issue 20).

No Ray: ``--parallel 1`` sweeps run in the driver.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import archive_factory as factory
from toy_evaluator import trajectory

from natsray.cli import main
from natsray.evaluators.benchmark import SWEEP_EXPORT_RUNS, BenchmarkConfig, BenchmarkEvaluator
from natsray.evaluators.metrics import METRICS
from natsray.evaluators.table_cache import cache_dir, cached_table
from natsray.records import Candidate
from natsray.search_space import Arch
from natsray.study.grid import load_plan, plan_runs
from natsray.study.report import load_sweep_runs
from natsray.study.store import journal_lines, stored_runs

N_RECORDS = 24
REPORT = (*METRICS, *(f"{name}@200" for name in METRICS))


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("archive")
    return root, factory.write_archive(root, N_RECORDS)


@pytest.fixture(scope="module")
def xdg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("xdg")  # one cache for the module: each test exports at most once


@pytest.fixture(autouse=True)
def cache(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("NATSRAY_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    return xdg / "natsray"


def comparable(result):  # everything but the worker name and timing
    return result.status, result.objectives, result.metrics, result.cost_s, result.error


def journaled(record: dict) -> dict:
    """A journal record without its wall-clock fields and nulls."""
    wall = ("finish_time", "submit_time", "start_time", "wall_s", "worker")
    return {key: value for key, value in record.items() if key not in wall and value is not None}


def test_cache_location_identity_and_invalidation(
    tmp_path_factory: pytest.TempPathFactory, cache: Path, monkeypatch, capsys
) -> None:
    assert cache_dir() == cache
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("other")))
    cache = cache_dir()
    root = tmp_path_factory.mktemp("archive")
    factory.write_archive(root, 3)
    assert cached_table(root, export=False) is None
    capsys.readouterr()
    path = cached_table(root)
    assert path is not None and path.parent == cache / "tables" and path.suffix == ".npz"
    said = capsys.readouterr()  # an export says so before its wait (a sweep's bar would sit at 0)
    assert said.out == "" and said.err.startswith(f"natsray: reading the archive {root.resolve()} once")
    assert said.err.count("\n") == 2 and "natsray: table cached in " in said.err
    stamp = path.stat().st_mtime_ns
    assert cached_table(root) == path and path.stat().st_mtime_ns == stamp  # reused, not exported again
    assert capsys.readouterr().err == ""  # a cached table: nothing to say
    meta = root / "meta.pickle.pbz2"
    os.utime(meta, ns=(meta.stat().st_atime_ns, meta.stat().st_mtime_ns + 10**9))  # the meta file changed
    fresh = cached_table(root)
    assert fresh != path and fresh.is_file() and not path.exists()  # re-exported, the stale one deleted
    monkeypatch.setenv("NATSRAY_CACHE_DIR", str(cache.parent / "elsewhere"))
    assert cache_dir() == cache.parent / "elsewhere"
    # the record files are counted once per state of the directory (a sweep asks once per evaluator config)
    from natsray.evaluators import table_cache

    listed: list[str] = []
    listdir = os.listdir
    monkeypatch.setattr(table_cache.os, "listdir", lambda path: listed.append(path) or listdir(path))
    identity = table_cache.archive_identity(root)
    assert table_cache.archive_identity(root) == identity and len(listed) <= 1
    (root / "999999.pickle.pbz2").write_bytes(b"")  # a record file more: the directory's mtime moves
    os.utime(root, ns=(root.stat().st_atime_ns, root.stat().st_mtime_ns + 10**9))
    changed = table_cache.archive_identity(root)
    assert changed != identity and changed.endswith(f"|{int(identity.rsplit('|', 1)[1]) + 1}")


@pytest.mark.parametrize("seed_mode", ["mean", "random"])
def test_a_sweeps_table_scores_like_the_archive(archive, seed_mode: str) -> None:
    root, archs = archive
    config = BenchmarkConfig(archive=str(root), hp="12", report=REPORT, seed_mode=seed_mode)
    small = BenchmarkEvaluator.prepare_sweep_shared(config, SWEEP_EXPORT_RUNS - 1)
    assert (small is None) == (cached_table(root, export=False) is None)  # a small sweep: the cache if any
    shared = BenchmarkEvaluator.prepare_sweep_shared(config, SWEEP_EXPORT_RUNS)
    assert shared is not None
    batch = [Candidate(i, Arch.from_str(archs[i]), seed=i) for i in range(N_RECORDS + 3)]
    batch.append(Candidate(99, batch[1].arch, seed=5, budget=200))
    from_archive, from_table = BenchmarkEvaluator(config), BenchmarkEvaluator(config, shared)
    from_archive.setup()
    from_table.setup()
    expected, got = from_archive.evaluate(batch), from_table.evaluate(batch)
    assert [comparable(r) for r in got] == [comparable(r) for r in expected]
    assert sum(r.ok for r in got) == N_RECORDS + 1 and "is missing" in (got[N_RECORDS].error or "")


def test_an_archive_sweep_equals_single_archive_runs(archive, tmp_path: Path, capsys) -> None:
    root, _ = archive
    data = {
        "search_space": {"dedup": "none"},
        "strategy": {"name": "random"},
        "evaluator": {"type": "benchmark", "archive": str(root), "objective": ["valid_accuracy"]},
        "budget": {"evaluations": 30},
        "engine": {"mode": "simulated", "simulated_workers": 1},
        "output": {"dir": str(tmp_path / "runs"), "progress": False, "plots": False},
    }
    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump(data))
    sweep = tmp_path / "sweep"
    seeds = f"0-{SWEEP_EXPORT_RUNS - 1}"
    argv = ["run", str(config), "--seeds", seeds, "--parallel", "1", "--out", str(sweep), "--no-progress"]
    assert main(argv) == 1  # exit 1 by design: most cells have no record in this 24-record archive
    assert len(list((cache_dir() / "tables").glob("*.npz"))) == 1  # exported once
    runs = plan_runs(load_plan(sweep), sweep)
    loaded = dict(zip([run.seed for run in runs], load_sweep_runs(sweep, runs), strict=True))
    for seed in (0, SWEEP_EXPORT_RUNS - 1):
        single = tmp_path / f"single-{seed}"
        assert main(["run", str(config), "--set", f"seed={seed}", "--out", str(single), "--no-progress"]) == 1
        swept = loaded[seed]
        assert swept is not None
        alone = (single / "evaluations.jsonl").read_text().splitlines()
        stored = journal_lines(stored_runs(sweep)[f"seed-{seed}"]).decode().splitlines()
        assert [journaled(json.loads(line)) for line in stored] == [journaled(json.loads(x)) for x in alone]
        assert sorted(r["arch"] for r in swept.records) == sorted(row[1] for row in trajectory(single))
        summary = json.loads((single / "summary.json").read_text())
        assert {k: swept.summary[k] for k in ("best_arch", "evaluations", "failed")} == {
            k: summary[k] for k in ("best_arch", "evaluations", "failed")
        }
    capsys.readouterr()
