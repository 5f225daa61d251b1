"""Sweeps: grid plans, parallel runs equal to single runs, failures, SIGKILL + resume, the report."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from table_config import table_evaluator
from toy_evaluator import trajectory, trajectory_of

from natsray.cli import main
from natsray.config import ConfigError
from natsray.experiment.run_data import RunData
from natsray.study import report as study_report
from natsray.study.grid import (
    GridOverrideWarning,
    SweepPlan,
    load_plan,
    parse_grid_option,
    plan_runs,
    sweep_from_config,
    write_plan,
)
from natsray.study.report import load_sweep_runs
from natsray.study.store import STORE_DIR
from natsray.study.sweep import run_state

ROOT = Path(__file__).resolve().parents[1]


def base(table: str | Path, evaluations: int = 40) -> dict[str, Any]:
    return {
        "search_space": {"dedup": "none"},
        "strategy": {"name": "regularized_evolution", "population": 5, "sample_size": 2},
        "evaluator": table_evaluator(table),
        "budget": {"evaluations": evaluations},
        "engine": {"mode": "simulated", "simulated_workers": 1},
        "output": {"dir": "runs/x", "progress": False},
    }


def test_grid_points_names_and_per_value_settings(tmp_path: Path) -> None:
    data = base(tmp_path / "t.npz")
    data["sweep"] = {
        "seeds": "0-1",
        "grid": {
            "strategy": {
                "rea": {"strategy": {"name": "regularized_evolution"}},
                "rs": {"strategy": {"name": "random"}},
            },
            "dataset": {
                "cifar10": {"evaluator.dataset": "cifar10", "budget.evaluations": 20},
                "cifar100": {"evaluator.dataset": "cifar100", "budget.evaluations": 40},
            },
        },
    }
    (tmp_path / "t.npz").write_bytes(b"")  # paths are checked for existence only
    plan = sweep_from_config(data, grid=["search_space.dedup=none,arch"])
    assert plan is not None and plan.seeds == (0, 1)
    runs = plan_runs(plan, tmp_path / "out")
    assert len(runs) == 2 * 2 * 2 * 2
    first = runs[0]
    assert (
        first.run_dir
        == tmp_path / "out" / "strategy=rea__dataset=cifar10__search_space.dedup=none" / "seed-0"
    )
    last = runs[-1]
    assert last.config is not None and last.error is None
    assert last.config.strategy.name == "random" and not hasattr(last.config.strategy, "population")
    assert last.config.evaluator.dataset == "cifar100" and last.config.budget.evaluations == 40
    assert last.config.search_space.dedup == "arch" and last.config.seed == 1
    assert last.config.output.dir == str(last.run_dir)
    assert sweep_from_config(base(tmp_path / "t.npz")) is None  # no sweep asked for


def test_a_set_key_the_grid_sets_is_checked_in_every_grid_point(tmp_path: Path) -> None:
    """A ``--set`` that some grid points override: one warning naming them; a value no grid point
    accepts (overridden or not): refused in one line; one that a grid point accepts: kept."""
    data = base(tmp_path / "t.npz")
    (tmp_path / "t.npz").write_bytes(b"")  # paths are checked for existence only
    data["sweep"] = {"grid": {"size": {"small": {"strategy.population": 4}, "default": {}}}}
    with pytest.warns(GridOverrideWarning) as warned:
        plan = sweep_from_config(data, ["strategy.population=6"], source="x.yaml")
    assert [str(w.message) for w in warned] == [
        "--set strategy.population=6 is overridden by the sweep's grid in 1 of 2 grid points "
        "(strategy.population: 4)"
    ]
    assert plan is not None and [run.config.strategy.population for run in plan_runs(plan, tmp_path)] == [
        4,
        6,
    ]
    for item, error in [
        ("strategy.population=abc", "strategy.population: expected an integer, got 'abc'"),
        ("strategy.populaton=4", "strategy.populaton: unknown key (did you mean 'population'?)"),
    ]:
        data["sweep"] = {"grid": {"strategy": {"rea": {"strategy": {"name": "regularized_evolution"}}}}}
        with pytest.raises(ConfigError, match=rf"^x\.yaml: {re.escape(error)}$"):
            sweep_from_config(data, [item], source="x.yaml")
    # sample_size 8 is valid only with a grid point's population (20), not with the base's (5)
    data["sweep"] = {
        "grid": {"size": {"big": {"strategy": {"name": "regularized_evolution", "population": 20}}}}
    }
    with pytest.warns(GridOverrideWarning, match=r"strategy replaced by grid points size=big\)$"):
        assert sweep_from_config(data, ["strategy.sample_size=8"]) is not None


@pytest.mark.parametrize(
    ("option", "words"),
    [
        ("strategy.name", "expected KEY.PATH=v1,v2"),
        ("evaluator.dataset=a/b", "cannot name a directory"),
        ("seed=1,1", "listed twice"),
    ],
)
def test_bad_grid_options_are_one_line(option: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as info:
        parse_grid_option(option)
    assert "\n" not in str(info.value)


def _record(i: int, objectives: dict[str, Any] | None, metric: float | None, **fields: Any) -> dict[str, Any]:
    record = {"candidate_id": i, "arch": f"cell-{i}", "status": "ok", "objectives": objectives or {}}
    if metric is not None:
        record["metrics"] = {"test_accuracy@200": metric}
    return {**record, **fields}


INCUMBENT_RUNS: dict[str, tuple[str, list[dict[str, Any]]]] = {
    # a failure, a null objective, equal values (the first stays best), a cache answer (not an
    # evaluation), finish times out of journal order and equal, a metric only among the objectives
    "max": ("valid_accuracy:max", [
        _record(0, {"valid_accuracy": 80.0}, 70.0, sim_finish=30.0),
        _record(1, None, None, status="failed", sim_finish=10.0),
        _record(2, {"valid_accuracy": None}, 99.0, sim_finish=20.0),
        _record(3, {"valid_accuracy": 85.0}, 71.0, sim_finish=20.0),
        _record(4, {"valid_accuracy": 85.0}, 72.0, sim_finish=5.0),
        _record(5, {"valid_accuracy": 99.0}, 99.0, cached=True, sim_finish=1.0),
        _record(6, {"valid_accuracy": 90.0, "test_accuracy@200": 73.0}, None, sim_finish=40.0),
    ]),
    "min": ("valid_loss:min", [  # starts with a null objective: nothing best yet (NaN)
        _record(i, {"valid_loss": loss}, 60.0 + i, sim_finish=float(i))
        for i, loss in enumerate([None, 2.0, 1.5, 1.5, 1.8])
    ]),
    "older clock": ("valid_accuracy:max", [  # no sim_finish field: sim_finish_time (absent: 0)
        _record(0, {"valid_accuracy": 50.0}, 40.0, sim_finish_time=3.0),
        _record(1, {"valid_accuracy": 60.0}, 41.0, sim_finish_time=1.0),
        _record(2, {"valid_accuracy": 55.0}, 42.0),
    ]),
    "all failed": ("valid_accuracy:max", [_record(0, None, None, status="failed", sim_finish=1.0)]),
    "empty": ("valid_accuracy:max", []),
}  # fmt: skip


def _reference_incumbent(spec: str, records: list[dict[str, Any]], by_time: bool) -> tuple[list, list]:
    """The best-so-far curve of one run, evaluation by evaluation (the definition, in plain Python)."""
    name, _, direction = spec.partition(":")
    clock = "sim_finish" if any("sim_finish" in r for r in records) else "sim_finish_time"
    rows = [r for r in records if r["status"] == "ok" and not r.get("cached")]
    if by_time:
        rows = sorted(rows, key=lambda r: r.get(clock) or 0.0)  # stable: equal times in journal order
    best_key, best, xs, ys = None, float("nan"), [], []
    for count, r in enumerate(rows, start=1):
        value = r["objectives"].get(name)
        if value is not None and (best_key is None or (value if direction == "max" else -value) > best_key):
            best_key = value if direction == "max" else -value
            best = (r.get("metrics") or {}).get("test_accuracy@200", r["objectives"].get("test_accuracy@200"))
        xs.append(float(r.get(clock) or 0.0) if by_time else float(count))
        ys.append(best)
    return xs, ys


@pytest.mark.parametrize("by_time", [False, True])
def test_incumbent_curves_of_all_runs_at_once_equal_each_runs_own(tmp_path: Path, by_time: bool) -> None:
    """The report computes every run's best-so-far curve in one vectorised pass over the concatenated
    journals: each equals the run's own curve (NaN, failures, ties, cache answers, finish order)."""
    from natsray.experiment.journal_table import table_from_lines
    from natsray.experiment.run_data import run_from_parts
    from natsray.study.report import _curves, _incumbents

    runs = []
    for name, (spec, records) in INCUMBENT_RUNS.items():
        lines = "".join(json.dumps(record) + "\n" for record in records).encode()
        table = table_from_lines(lines, name)
        runs.append(run_from_parts(tmp_path / name, table, {"objectives": [spec]}, None))
    pairs = _incumbents(runs, "test_accuracy@200", by_time)
    for (name, (spec, records)), (xs, ys) in zip(INCUMBENT_RUNS.items(), pairs, strict=True):
        want_x, want_y = _reference_incumbent(spec, records, by_time)
        assert xs.tolist() == want_x, name
        assert np.array_equal(ys, np.array(want_y, dtype=float), equal_nan=True), name
    xs, ys = pairs[0]
    if by_time:  # cells 4, 2, 3, 0, 6 (2 and 3 finish together: journal order)
        assert xs.tolist() == [5.0, 20.0, 20.0, 30.0, 40.0] and ys.tolist() == [72.0, 72.0, 72.0, 72.0, 73.0]
    else:
        assert xs.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0] and ys.tolist() == [70.0, 70.0, 71.0, 71.0, 73.0]
    assert np.isnan(pairs[1][1][0]) and pairs[1][1][1:].tolist() == [61.0, 62.0, 62.0, 62.0]
    grid, rows = _curves(pairs[1:3], by_time)  # a finished run holds its last value
    if not by_time:
        assert grid.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
        assert rows[1][2:].tolist() == [41.0, 41.0, 41.0] and np.isnan(rows[0][0])


def test_a_reports_plain_configs_equal_the_parsed_ones_of_built_in_components(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``plan_runs(typed=False)`` (what a report reads, no class imported): each run's plain config
    equals config_to_dict of its parsed config (defaults filled in, paths made absolute, seed,
    output.dir, key order), ``ray.address`` None as in config.yaml."""
    from natsray.config import config_to_dict

    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.npz").write_bytes(b"")
    data = base("t.npz")  # relative: both resolve it
    data["sweep"] = {"seeds": "0-2", "grid": {"strategy.name": ["regularized_evolution", "random"]}}
    plan = sweep_from_config(data)
    assert plan is not None
    typed, plain = plan_runs(plan, tmp_path / "sweep"), plan_runs(plan, tmp_path / "sweep", typed=False)
    for run, other in zip(typed, plain, strict=True):
        assert other.config is None and other.run_dir == run.run_dir
        want = config_to_dict(run.config)
        want["ray"]["address"] = None
        got = other.data
        assert got == want and list(got) == list(want) and list(got["output"]) == list(want["output"])
        assert got["seed"] == run.seed and got["output"]["dir"] == str(run.run_dir)
        assert got["evaluator"]["table"] == str(tmp_path / "t.npz")


# --------------------------------------------------------------------------- on Ray


@pytest.fixture(scope="module")
def table(full_table: Path) -> Path:
    """Every cell with a record (``conftest.full_table``)."""
    return full_table


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def stored(sweep_dir: Path, name: str) -> RunData:
    """A finished run of a sweep as ``natsray report`` reads it (from the store or its directory)."""
    runs = plan_runs(load_plan(sweep_dir), sweep_dir, typed=False)
    loaded = dict(zip([run.name for run in runs], load_sweep_runs(sweep_dir, runs), strict=True))
    data = loaded[name]
    assert data is not None, f"{name} has not finished"
    return data


def outcomes(sweep_dir: Path) -> list[dict[str, Any]]:
    lines = (sweep_dir / "sweep-runs.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.ray
@pytest.mark.slow
def test_sweep_runs_equal_single_runs_and_report(
    ray_session: None,
    table: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = write(tmp_path / "exp.yaml", base(table))
    sweep = tmp_path / "sweep"
    code, out, err = run_cli(
        capsys, "run", str(config), "--seeds", "0-2", "--grid", "evaluator.dataset=cifar10,cifar100",
        "--out", str(sweep), "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    for dataset in ("cifar10", "cifar100"):
        single = tmp_path / f"single-{dataset}"
        code, _, err = run_cli(
            capsys, "run", str(config), "--set", "seed=1", "--set", f"evaluator.dataset={dataset}",
            "--out", str(single), "--no-progress",
        )  # fmt: skip
        assert code == 0, err
        swept = stored(sweep, f"evaluator.dataset={dataset}/seed-1")
        assert trajectory_of(swept.records) == trajectory(single)
        a, b = swept.summary, json.loads((single / "summary.json").read_text())
        for key in ("best_arch", "best_objectives", "best_metrics", "evaluations", "simulated_seconds"):
            assert a[key] == b[key]
        assert not (sweep / f"evaluator.dataset={dataset}").exists()  # in the store: no run directory
    assert {o["status"] for o in outcomes(sweep)} == {"done"} and len(outcomes(sweep)) == 6
    frame = pd.read_parquet(sweep / "report" / "evaluations.parquet")  # every evaluation, for pandas
    assert len(frame) == 6 * 40 and frame["run"].nunique() == 6
    assert set(frame["evaluator.dataset"]) == {"cifar10", "cifar100"}
    assert sorted(frame.loc[frame["run"] == "evaluator.dataset=cifar100/seed-1", "candidate_id"]) == [
        row[0] for row in trajectory(tmp_path / "single-cifar100")
    ]

    # the comparative report: one row per grid point, identifiers not averaged, integers stay integers
    assert "| evaluator.dataset | seeds |" in out and "± " in out
    report = json.loads((sweep / "report" / "sweep_report.json").read_text())
    assert [row["evaluator.dataset"] for row in report["points"]] == ["cifar10", "cifar100"]
    row = report["points"][0]
    assert row["seeds"] == 3 and isinstance(row["seeds"], int)
    assert row["evaluations"]["n"] == 3 and row["evaluations"]["mean"] == 40
    # each run named as in evaluations.parquet (its path inside the sweep), not as the CLI was given the sweep
    assert {run["run"] for run in report["runs"]} == set(frame["run"])
    assert "nats_index" not in row and isinstance(row["most frequent best nats_index"]["value"], int)
    assert all(isinstance(r["evaluations"], int) for r in report["runs"])
    for name in ("sweep_report.md", "sweep_report.csv", "anytime_time.png", "anytime_evaluations.png"):
        assert (sweep / "report" / name).stat().st_size > 0

    # a finished sweep resumed: nothing re-run
    code, _, err = run_cli(capsys, "resume", str(sweep), "--no-progress")
    assert code == 0, err
    assert len(outcomes(sweep)) == 6
    code, out, _ = run_cli(capsys, "report", str(sweep), "--out", str(tmp_path / "r2"))
    assert code == 0 and (tmp_path / "r2" / "sweep_report.md").exists()
    for name in ("anytime_time.png", "anytime_evaluations.png"):  # drawn by the plot process, then here
        assert (tmp_path / "r2" / name).read_bytes() == (sweep / "report" / name).read_bytes()
    # evaluations.parquet is written a row group at a time: 240 rows in groups of 50, the same frame
    monkeypatch.setattr(study_report, "PARQUET_ROWS", 50)
    code, _, err = run_cli(capsys, "report", str(sweep), "--out", str(tmp_path / "r3"))
    assert code == 0, err
    assert pq.ParquetFile(tmp_path / "r3" / "evaluations.parquet").metadata.num_row_groups == 5
    assert pd.read_parquet(tmp_path / "r3" / "evaluations.parquet").equals(frame)
    code, _, err = run_cli(capsys, "run", str(config), "--seeds", "0-2", "--out", str(sweep))
    assert code == 2 and "already holds" in err


def test_a_bad_grid_value_is_refused_up_front_and_resume_is_advised_only_where_it_helps(
    table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A grid value that makes one grid point's config invalid: run, validate (same options) and
    natsray.sweep refuse it in one line naming the point, before a file is made. A run failing at run
    time (pre-flight of one point) keeps the others; its resume advice holds (resume runs it once fixed);
    an invalid point in an older sweep.yaml is not advised to resume. More seeds: edit sweep.yaml's seeds
    and resume (docs/sweeps.md)."""
    import natsray

    monkeypatch.chdir(tmp_path)
    config = write(tmp_path / "exp.yaml", base(table, evaluations=10))
    sweep = tmp_path / "sweep"
    options = ["--seeds", "0-1", "--grid", "strategy.sample_size=2,9"]
    line = (
        f"natsray: error: {config}: grid point strategy.sample_size=9: strategy.sample_size: "
        "must be in 1..population (5), got 9\n"
    )
    for argv in (["run", *options, "--out", str(sweep), "--no-progress"], ["validate", *options]):
        code, out, err = run_cli(capsys, argv[0], str(config), *argv[1:])
        assert (code, out, err) == (2, "", line)
    with pytest.raises(ConfigError, match=r"grid point strategy.sample_size=9: strategy.sample_size: must"):
        natsray.sweep(str(config), out=sweep, seeds="0-1", grid=["strategy.sample_size=2,9"], progress=False)
    grid = {"evaluator.dataset": ["cifar10", "cifar11"]}
    section = {**base(table), "sweep": {"seeds": "0-1", "grid": grid}}
    code, _, err = run_cli(capsys, "run", str(write(tmp_path / "s.yaml", section)), "--out", str(sweep))
    assert (code, err) == (
        2,
        f"natsray: error: {tmp_path / 's.yaml'}: grid point evaluator.dataset=cifar11: evaluator.dataset: "
        "'cifar11' is not one of cifar10, cifar100, ImageNet16-120 (did you mean 'cifar10'?)\n",
    )
    assert not sweep.exists()
    # a --set that breaks every point is not blamed on the first one; a missing file is named as in a run
    missing = ["--set", "evaluator.table=missing.npz", "--seeds", "0-1", "--grid", "strategy.sample_size=2,3"]
    expected = (
        f"natsray: error: {config}: every grid point: evaluator.table: {tmp_path / 'missing.npz'}: "
        "no such file or directory (set it with --set evaluator.table=PATH)\n"
    )
    for argv in (["run", *missing, "--out", str(sweep), "--no-progress"], ["validate", *missing]):
        assert run_cli(capsys, argv[0], str(config), *argv[1:]) == (2, "", expected)
    assert not sweep.exists()
    code, _, err = run_cli(capsys, "run", str(config), "--seeds", "5-1")
    assert (code, err) == (2, "natsray: error: --seeds: 5-1 is a reversed range; did you mean 1-5?\n")

    # a failure at run time (pre-flight refuses one point's extra_csv): resume runs it once fixed
    (tmp_path / "bad.csv").write_text("arch,score\n|x|,1\n")
    argv = ["--seeds", "0-1", "--grid", "evaluator.extra_csv=null,bad.csv", "--parallel", "1"]
    code, _, err = run_cli(capsys, "run", str(config), *argv, "--out", "sweep", "--no-progress")
    assert code == 1
    assert err.splitlines()[-1] == (
        "natsray: 2 of 4 runs failed (listed above and in sweep/sweep-runs.jsonl); "
        "after fixing the cause, 'natsray resume sweep' runs them"
    )
    (tmp_path / "bad.csv").write_text("arch,score\n")
    code, _, err = run_cli(capsys, "resume", "sweep", "--no-progress")
    assert code == 0, err
    assert [o["status"] for o in outcomes(sweep)] == ["done"] * 4  # (refused runs get no line)

    # more seeds for the finished sweep, as docs/sweeps.md says: its seeds edited, then resume
    plan = yaml.safe_load((sweep / "sweep.yaml").read_text())
    (sweep / "sweep.yaml").write_text(yaml.safe_dump({**plan, "seeds": "0-2"}, sort_keys=False))
    code, out, err = run_cli(capsys, "resume", "sweep", "--no-progress")
    assert code == 0, err
    assert len(outcomes(sweep)) == 6  # the two new runs only
    assert [row.split(" | ")[1] for row in out.splitlines()[2:4]] == ["3", "3"]  # seeds per grid point

    # an invalid grid point in a sweep.yaml (written before run checked every point): no resume advice
    old = SweepPlan(plan["base"], (parse_grid_option("strategy.sample_size=2,9"),), (0,), str(config))
    write_plan(old, tmp_path / "old")
    code, _, err = run_cli(capsys, "resume", str(tmp_path / "old"), "--parallel", "1", "--no-progress")
    assert code == 1
    assert err.splitlines()[-1] == (
        f"natsray: 1 of 2 runs failed (listed above and in {tmp_path / 'old' / 'sweep-runs.jsonl'}); "
        "resume cannot run the 1 of grid point(s) strategy.sample_size=9: their config in "
        f"{tmp_path / 'old' / 'sweep.yaml'} is invalid (printed above); "
        "run a corrected grid of them with another --out (the finished runs stay here)"
    )


@pytest.mark.ray
@pytest.mark.slow
def test_sigkilled_sweep_resumes_with_nothing_lost_or_repeated(
    ray_session: None, table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = base(table, evaluations=1500)
    data["output"]["checkpoint_every"] = 100
    config = write(tmp_path / "exp.yaml", data)
    sweep = tmp_path / "sweep"
    argv = ["run", str(config), "--seeds", "0-3", "--parallel", "1", "--out", str(sweep), "--no-progress"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from natsray.cli import main; sys.exit(main())",
            *argv,
        ],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    status = sweep / "sweep-runs.jsonl"
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            finished = status.exists() and status.read_text().count("\n") >= 1
            if finished and any(run_state(sweep / f"seed-{seed}") == "started" for seed in range(1, 4)):
                break  # a later run is mid-way (it has checkpointed, not finished)
            time.sleep(0.005)
        assert proc.poll() is None, "the sweep ended before it could be killed"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started
        proc.wait()
    killed_after = len(outcomes(sweep))
    assert 1 <= killed_after < 4
    states = [run_state(sweep / f"seed-{seed}") for seed in range(4)]
    assert "started" in states or "finished" in states, states  # the kill caught a run mid-way
    code, _, err = run_cli(capsys, "resume", str(sweep), "--no-progress")
    assert code == 0, err
    assert len(outcomes(sweep)) == 4  # every run recorded once: finished ones were skipped
    for seed in range(4):
        single = tmp_path / f"single-{seed}"
        code, _, err = run_cli(
            capsys, "run", str(config), "--set", f"seed={seed}", "--out", str(single), "--no-progress"
        )
        assert code == 0, err
        swept = sweep / f"seed-{seed}"
        assert trajectory(swept) == trajectory(single)  # no candidate journaled twice, none lost
        assert len(trajectory(swept)) == 1500


@pytest.mark.ray
def test_one_seed_sweep_report_and_a_sweep_whose_runs_mostly_failed(
    ray_session: None, table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A one-seed sweep: std shown as n/a, no numpy 'Degrees of freedom' warning, an extra_csv
    objective labelled by its own name (not score@12). A sweep whose runs' evaluations mostly
    failed (an extra_csv covering a few cells) exits 1 with one line."""
    import itertools
    import warnings

    from natsray.search_space import all_archs

    archs = [arch.to_str() for arch in all_archs()]
    rows = "".join(f"{arch},{(i * 7919) % 1000 / 10}\n" for i, arch in enumerate(archs))
    (tmp_path / "score.csv").write_text("arch,score\n" + rows)
    config = base(table, evaluations=10)
    config["evaluator"].update(extra_csv=str(tmp_path / "score.csv"), objective=["score"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = run_cli(
            capsys, "run", str(write(tmp_path / "one.yaml", config)), "--seeds", "0",
            "--out", str(tmp_path / "one"), "--no-progress",
        )  # fmt: skip
    assert code == 0, err
    assert not [w for w in caught if "Degrees of freedom" in str(w.message)]
    assert "Degrees of freedom" not in err
    assert "best score (mean ± std)" in out and "score@12" not in out and "± n/a" in out

    few = "".join(f"{arch},1.0\n" for arch in itertools.islice(archs, 40))
    (tmp_path / "few.csv").write_text("arch,score\n" + few)
    config["evaluator"]["extra_csv"] = str(tmp_path / "few.csv")
    config["engine"]["fail_fast"] = 0  # else the first 3 cells the CSV lacks stop each run (test_preflight)
    code, _, err = run_cli(
        capsys, "run", str(write(tmp_path / "few.yaml", config)), "--seeds", "0-1",
        "--out", str(tmp_path / "few"), "--no-progress",
    )  # fmt: skip
    assert code == 1
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith("natsray: in 2 of 2 runs more than 50% of the evaluations failed (e.g. ")
    )


@pytest.mark.ray
def test_a_sweep_without_report_metrics_reports_each_runs_best_objective(
    ray_session: None, table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A config without ``report:``: the report's metric is the first objective, its column filled
    with each run's best objective (not '-' and n = 0), the value its anytime curve ends on."""
    from natsray.study.report import _incumbents

    config = base(table, evaluations=20)
    del config["evaluator"]["report"]
    sweep = tmp_path / "sweep"
    code, out, err = run_cli(
        capsys, "run", str(write(tmp_path / "exp.yaml", config)), "--seeds", "0-1",
        "--grid", "strategy.name=regularized_evolution,random", "--out", str(sweep), "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads((sweep / "report" / "sweep_report.json").read_text())
    assert len(report["points"]) == 2
    for row in report["points"]:
        runs = [stored(sweep, f"strategy.name={row['strategy.name']}/seed-{seed}") for seed in (0, 1)]
        best = [run.summary["best_objectives"]["valid_accuracy"] for run in runs]
        assert row["metric"] == "valid_accuracy"
        assert row["valid_accuracy"]["n"] == 2
        assert row["valid_accuracy"]["mean"] == pytest.approx(np.mean(best))
        assert row["valid_accuracy"]["ci95"] is not None
        assert row["valid_accuracy"]["mean"] == row["best valid_accuracy@12"]["mean"]
        ends = [float(ys[-1]) for _, ys in _incumbents(runs, "valid_accuracy", by_time=False)]
        assert ends == pytest.approx(best)  # what the anytime plots draw
    markdown = (sweep / "report" / "sweep_report.md").read_text()
    assert "valid_accuracy (mean ± std) | valid_accuracy 95% CI" in markdown
    assert " - |" not in markdown and "n/a" not in markdown
    assert markdown.splitlines()[2] in out  # the table printed is the one written


def test_a_run_stopped_while_drawing_its_plots_is_finished_by_resume(
    table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Ctrl-C as a run's loop ends, while it draws its plots: no evaluations.csv yet, so a resume
    finishes it (before, the CSV came first and the run counted as done without plots). A run left so
    by an older natsray (CSV, no plots) is finished too; with output.plots false it is done."""
    from natsray.config import load_config
    from natsray.experiment import report as run_report
    from natsray.study.sweep import execute_run

    run_dir = tmp_path / "run"
    config_path = write(tmp_path / "exp.yaml", base(table, evaluations=20))
    code, _, err = run_cli(capsys, "run", str(config_path), "--out", str(run_dir), "--no-progress")
    assert code == 0, err
    plots = [run_dir / name for name in ("best_so_far.png", "fitness.png")]
    assert run_state(run_dir) == "finalized" and all(path.exists() for path in plots)

    def interrupted(*_: Any) -> None:
        raise KeyboardInterrupt

    for path in [*plots, run_dir / "evaluations.csv"]:
        path.unlink()
    with monkeypatch.context() as patch:
        patch.setattr(run_report, "plot_population", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run_report.finalize_run(run_dir)
    assert not (run_dir / "evaluations.csv").exists() and run_state(run_dir) == "finished"
    config = load_config(run_dir / "config.yaml")
    assert execute_run(config, run_dir) == 20
    assert run_state(run_dir) == "finalized" and all(path.exists() for path in plots)

    for path in plots:  # an older natsray's leftover: the CSV written, the plots not
        path.unlink()
    assert run_state(run_dir) == "finished"
    execute_run(config, run_dir)
    assert run_state(run_dir) == "finalized" and all(path.exists() for path in plots)
    for path in plots:
        path.unlink()
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    saved["output"]["plots"] = False
    write(run_dir / "config.yaml", saved)
    assert run_state(run_dir) == "finalized"


def stored_names(sweep_dir: Path) -> list[str]:
    """The run names of every complete summary line in the store, duplicates kept."""
    names = []
    for path in sorted((sweep_dir / STORE_DIR).glob("*.runs.jsonl")):
        data = path.read_bytes()
        names += [json.loads(line)["run"] for line in data[: data.rfind(b"\n") + 1].splitlines()]
    return names


@pytest.mark.ray
@pytest.mark.slow
def test_sigkilled_sweep_of_short_runs_keeps_each_stored_run_once(
    ray_session: None, table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Runs that finish within their task live in the sweep's store: a SIGKILL mid-sweep loses none of
    them, and the resumed sweep (on Ray tasks) runs exactly the others."""
    config = write(tmp_path / "exp.yaml", base(table, evaluations=300))
    sweep = tmp_path / "sweep"
    argv = ["run", str(config), "--seeds", "0-199", "--parallel", "1", "--out", str(sweep), "--no-progress"]
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from natsray.cli import main; sys.exit(main())", *argv],
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None and len(stored_names(sweep)) < 5:
            time.sleep(0.01)
        assert proc.poll() is None, "the sweep ended before it could be killed"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = stored_names(sweep)
    assert 5 <= len(before) < 200 and len(set(before)) == len(before)
    assert not any(sweep.glob("seed-*"))  # short runs never got a directory
    code, _, err = run_cli(capsys, "resume", str(sweep), "--no-progress")
    assert code == 0, err
    after = stored_names(sweep)
    assert set(before) <= set(after)
    assert sorted(after) == sorted(f"seed-{seed}" for seed in range(200))  # each once: none lost or repeated
    last = int(before[-1].split("-")[1])
    for seed in (0, last, last + 1):
        single = tmp_path / f"single-{seed}"
        code, _, err = run_cli(
            capsys, "run", str(config), "--set", f"seed={seed}", "--out", str(single), "--no-progress"
        )
        assert code == 0, err
        assert trajectory_of(stored(sweep, f"seed-{seed}").records) == trajectory(single)
    aggregate = json.loads((sweep / "aggregate.json").read_text())
    assert aggregate["metrics"]["evaluations"]["n"] == 200
    # a stored run's directory is written when asked for: the journal exactly as the run wrote it
    code, _, err = run_cli(capsys, "report", str(sweep / "seed-0"), "--out", str(tmp_path / "r0"))
    assert code == 0, err
    assert trajectory(sweep / "seed-0") == trajectory(tmp_path / "single-0")
    assert all((sweep / "seed-0" / name).is_file() for name in ("evaluations.csv", "best_arch.yaml"))


def test_t_quantile_equals_scipys() -> None:
    """The report's Student t quantile (no scipy import: seconds off every report) is scipy's."""
    stats = pytest.importorskip("scipy.stats")
    from natsray.study.stats import ci95, t_quantile_975

    for df in (*range(1, 60), 99, 299, 1000):
        assert t_quantile_975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=1e-10)
    values = np.random.default_rng(0).normal(size=(30, 2))
    expected = stats.t.ppf(0.975, 29) * values.std(axis=0, ddof=1) / np.sqrt(30)
    assert ci95(values) == pytest.approx(expected, rel=1e-10)


def test_the_most_frequent_best_cell_breaks_ties_by_the_mean_metric_then_the_lower_index() -> None:
    """Documented in docs/sweeps.md: equally frequent best cells go to the better mean report metric,
    then to the lower nats_index, whatever order the runs finished in (the first in seed order won)."""
    import itertools

    import pyarrow as pa

    from natsray.records import Objective
    from natsray.study.grid import GridPoint
    from natsray.study.report import PointRuns, _point_row
    from natsray.study.stats import most_frequent

    def best(metric: str, runs: list[tuple[int | None, float]]) -> dict[str, Any]:
        data = [
            RunData(
                Path(f"seed-{seed}"),
                pa.table({}),
                {"best_metrics": {metric: score, "nats_index": cell}, "best_objectives": {}},
                None,
                (Objective("valid_accuracy"),),
            )
            for seed, (cell, score) in enumerate(runs)
        ]
        point = GridPoint((), {})
        rows = [_point_row(PointRuns(point, tuple(order), 0)) for order in itertools.permutations(data)]
        answers = {json.dumps(row["most frequent best nats_index"]) for row in rows}
        assert len(answers) == 1  # the same for every order the runs could finish in
        return json.loads(answers.pop())

    tie = [(7, 90.0), (3, 91.0), (7, 90.0), (3, 91.0), (11, 95.0)]
    assert best("test_accuracy@200", tie) == {"value": 3, "seeds": 2, "of": 5}  # higher accuracy
    assert best("test_loss", tie) == {"value": 7, "seeds": 2, "of": 5}  # a loss: lower is better
    assert best("test_accuracy@200", [(7, 90.0), (3, 90.0), (11, 89.0), (None, 99.0)]) == {
        "value": 3,  # equal means: the lower nats_index; a run without a cell counts in "of" only
        "seeds": 1,
        "of": 4,
    }
    # no report metric (a config without report:): the tie goes to the better best objective
    no_report = [
        RunData(
            Path(f"seed-{seed}"),
            pa.table({}),
            {"best_metrics": {"nats_index": cell}, "best_objectives": {"valid_accuracy": score}},
            None,
            (Objective("valid_accuracy"),),
        )
        for seed, (cell, score) in enumerate([(3, 80.0), (7, 90.0)])
    ]
    row = _point_row(PointRuns(GridPoint((), {}), tuple(no_report), 0))
    assert row["metric"] == "valid_accuracy" and row["valid_accuracy"]["mean"] == 85.0
    assert row["most frequent best nats_index"] == {"value": 7, "seeds": 1, "of": 2}
    assert most_frequent([5, 2, 5, 2], [float("nan"), None, 80.0, 70.0]) == (5, 2)  # means of finite scores
    assert most_frequent([5, 2], [None, 70.0]) == (2, 1)  # a cell with a score beats one without
    assert most_frequent([None], [1.0]) is None


def test_plot_legends_name_the_axes_that_vary_and_leave_out_the_panels_dataset() -> None:
    """Each point is named ``axis=label`` by the axes that vary (before: a named axis's bare label,
    ``rea``); a field axis by its key's last part while that stays unique; an axis of one value left out;
    in a legend the dataset, which has its own panel, too."""
    from types import SimpleNamespace

    from natsray.study.grid import GridPoint
    from natsray.study.report import PointRuns, _legend, _names

    def group(*labels: tuple[str, str]) -> PointRuns:
        run = SimpleNamespace(config={"evaluator": {"dataset": dict(labels).get("dataset", "cifar10")}})
        return PointRuns(GridPoint(labels, {}), (run,), 0)  # type: ignore[arg-type]

    def legends(*groups: PointRuns) -> list[str]:
        names = _names(groups)
        return [_legend(g, names[g.point.name]) for g in groups]

    groups = [
        group(("strategy", s), ("dataset", d)) for s in ("rea", "random") for d in ("cifar10", "cifar100")
    ]
    assert list(_names(groups).values()) == [
        "strategy=rea, dataset=cifar10",
        "strategy=rea, dataset=cifar100",
        "strategy=random, dataset=cifar10",
        "strategy=random, dataset=cifar100",
    ]
    assert legends(*groups) == ["strategy=rea", "strategy=rea", "strategy=random", "strategy=random"]
    dedup = [group(("search_space.dedup", v), ("evaluator.seed_policy", "x")) for v in ("none", "arch")]
    assert legends(*dedup) == ["dedup=none", "dedup=arch"]
    same_tail = [group(("strategy.population", a), ("budget.population", b)) for a in "46" for b in "48"]
    assert legends(*same_tail)[1] == "strategy.population=4, budget.population=8"
    assert legends(group()) == ["all seeds"]  # a seeds-only sweep


def test_a_sweep_report_names_its_points_by_the_axes_that_vary_and_keeps_the_plan(
    table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write(tmp_path / "exp.yaml", base(table, evaluations=12))
    sweep = tmp_path / "sweep"
    code, _, err = run_cli(
        capsys, "run", str(config), "--seeds", "0-1", "--grid", "strategy.population=4,6",
        "--grid", "evaluator.dataset=cifar10,cifar100", "--grid", "search_space.dedup=none",
        "--out", str(sweep), "--no-progress", "--parallel", "1",
    )  # fmt: skip
    assert code == 0, err
    names = [f"population={p}, dataset={d}" for p in (4, 6) for d in ("cifar10", "cifar100")]
    report = json.loads((sweep / "report" / "sweep_report.json").read_text())
    assert [row["group"] for row in report["points"]] == names
    assert [row["group"] for row in report["runs"]] == [name for name in names for _ in range(2)]
    assert report["points"][0]["strategy.population"] == "4"  # the axis labels stay, as before
    frame = pd.read_csv(sweep / "report" / "sweep_report.csv")
    assert list(frame["group"]) == names
    # the plan and the run names keep their form: a resume and a later report read the sweep as before
    runs = plan_runs(load_plan(sweep), sweep, typed=False)
    assert runs[0].name == "strategy.population=4__evaluator.dataset=cifar10__search_space.dedup=none/seed-0"
    code, _, err = run_cli(capsys, "resume", str(sweep), "--no-progress")
    assert code == 0, err
    code, _, err = run_cli(capsys, "report", str(sweep), "--out", str(tmp_path / "again"))
    again = json.loads((tmp_path / "again" / "sweep_report.json").read_text())
    assert code == 0 and [row["group"] for row in again["points"]] == names


def test_sweep_tables_show_small_metrics_to_their_significant_digits() -> None:
    """A new user's params sweep printed '0.07 ± 0.00', which cannot tell 0.0733 M from 0.0789 M."""
    from natsray.study.report import _table

    params = {"mean": 0.0756, "std": 0.0021, "min": 0.0733, "max": 0.0789, "n": 10, "ci95": 0.0015}
    accuracy = {"mean": 94.0712, "std": 0.3104, "min": 93.1, "max": 94.4, "n": 10, "ci95": 0.222}
    rows = [
        {"strategy": "rea", "seeds": 10, "unfinished": 0, "metric": "params", "params": params},
        {"strategy": "rea", "seeds": 10, "unfinished": 0, "metric": "acc", "acc": accuracy},
    ]
    header, lines = _table(rows, ["strategy"])
    assert header[3:] == ["params (mean ± std)", "params 95% CI", "acc (mean ± std)"]
    assert lines[0][3:5] == ["0.0756 ± 0.0021", "± 0.0015"]
    assert lines[1][-1] == "94.07 ± 0.31"  # 2 decimals from a mean of 1 up, as before
