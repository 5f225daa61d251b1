"""What a new user of sweeps is told: a sweep's directory that holds a single run or another sweep,
where ``validate`` says the runs will go, the did-you-mean of ``sweep`` keys and enumerated values,
and ``report`` of one grid point's directory. No Ray: look-up runs in the driver or forked workers."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from table_config import table_evaluator

from natsray.cli import main
from natsray.study.forks import fork_available


def config(table: Path, tmp_path: Path, name: str = "exp.yaml", **extra: Any) -> Path:
    data = {
        "seed": 0,
        "search_space": {"dedup": "none"},
        "strategy": {"name": "regularized_evolution", "population": 5, "sample_size": 2},
        "evaluator": table_evaluator(table),
        "budget": {"evaluations": 8},
        "engine": {"mode": "simulated", "simulated_workers": 1},
        "output": {"progress": False},
        **extra,
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def refused(capsys: pytest.CaptureFixture[str], *argv: object) -> str:
    code, _, err = cli(capsys, *argv)
    assert code == 2 and err.count("\n") == 1, err
    return err.removeprefix("natsray: error: ").rstrip("\n")


def test_a_sweep_into_a_single_run_or_another_sweep_is_refused_with_the_right_advice(
    full_table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(full_table, tmp_path)
    run, sweep = tmp_path / "run", tmp_path / "sweep"
    assert cli(capsys, "run", path, "--out", run, "--no-progress")[0] == 0
    assert refused(capsys, "run", path, "--seeds", "0-1", "--out", run, "--no-progress") == (
        f"{run} holds a single run, not a sweep: give the sweep its own --out (out=...), "
        "or replace the run with --overwrite (overwrite=True)"
    )
    assert not (run / "sweep.yaml").exists() and not (run / "seed-0").exists()

    grid = ["--grid", "search_space.dedup=none,arch"]
    code, _, err = cli(capsys, "run", path, "--seeds", "0-1", *grid, "--out", sweep, "--parallel", "1")
    assert code == 0, err
    assert refused(capsys, "run", path, "--seeds", "0-1", "--out", sweep) == (
        f"{sweep} already holds another sweep (its sweep.yaml plans a different config or grid): "
        f"give this one its own --out (out=...), or continue that one with 'natsray resume {sweep}'"
    )
    assert refused(capsys, "run", path, "--seeds", "0-3", *grid, "--out", sweep).startswith(
        f"{sweep} already holds a sweep: continue it with 'natsray resume {sweep}'"
    )  # the same plan (more seeds): resume is the advice

    point = sweep / "search_space.dedup=arch"
    assert refused(capsys, "report", point) == (
        f"{point}: one grid point of the sweep {sweep}, not a run: report the sweep "
        f"(natsray report {sweep}) or one of its runs (natsray report {point / 'seed-0'})"
    )
    assert cli(capsys, "report", point / "seed-0")[0] == 0  # as advised


def test_validate_of_a_sweep_says_where_its_runs_go(
    full_table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(full_table, tmp_path)
    head = f"OK: {path}: sweep of 4 runs (1 grid point(s) x 4 seed(s)), each run's engine simulated with 1 "
    head += "simulated worker(s); runs "
    code, out, err = cli(capsys, "validate", path, "--seeds", "0-3", "--parallel", "1")
    assert (code, out) == (0, head + "one at a time in the natsray process (no Ray)\n"), err
    if fork_available():
        code, out, err = cli(capsys, "validate", path, "--seeds", "0-3", "--parallel", "2")
        forked = "on 2 worker processes forked from the natsray process (no Ray)\n"
        assert (code, out) == (0, head + forked), err


@pytest.mark.parametrize(
    ("extra", "argv", "expected"),
    [
        ({"sweeps": {"seeds": "0-1"}}, [], "sweeps: unknown key (did you mean 'sweep'?)"),
        ({"sweep": {"seed": "0-1"}}, [], "sweep.seed: unknown key (did you mean 'seeds'?)"),
        ({"sweep": {"grids": {"seed": [0, 1]}}}, [], "sweep.grids: unknown key (did you mean 'grid'?)"),
        (
            {},
            ["--set", "evaluator.dataset=cifar-10"],
            "evaluator.dataset: 'cifar-10' is not one of cifar10, cifar100, ImageNet16-120 "
            "(did you mean 'cifar10'?)",
        ),
        (
            {},
            ["--set", "engine.mode=simulate"],
            "engine.mode: 'simulate' is not one of async, ordered, simulated (did you mean 'simulated'?)",
        ),
    ],
)
def test_a_misspelt_sweep_key_or_value_gets_a_did_you_mean(
    full_table: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: dict[str, Any],
    argv: list[str],
    expected: str,
) -> None:
    path = config(full_table, tmp_path, **extra)
    assert refused(capsys, "validate", path, *argv) == f"{path}: {expected}"
