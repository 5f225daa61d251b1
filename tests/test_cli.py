"""The ``natsray`` command line: one-line errors with exit code 2, ``validate``, ``show``, ``--seeds``."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from natsray.cli import UsageError, main, parse_seeds
from natsray.engine.cluster import local_nodes

ROOT = Path(__file__).resolve().parents[1]
NATS_SWEEP = ROOT / "configs" / "sweeps" / "nats-bench-rea-random.yaml"
ARCH = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|nor_conv_1x1~0|avg_pool_3x3~1|none~2|"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "nats-tss"


def write_config(tmp_path: Path, data: dict[str, Any], name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def base_config() -> dict[str, Any]:
    return {
        "seed": 0,
        "strategy": {"name": "random"},
        "evaluator": {"type": "cost", "objective": ["params"]},
        "budget": {"evaluations": 10},
    }


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_bad_input(capsys: pytest.CaptureFixture[str], argv: list[str], expected: str) -> None:
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert "Traceback" not in err
    assert err.count("\n") == 1, err
    assert expected in err, err


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"stratgy": {"name": "random"}}, "exp.yaml: stratgy: unknown key (did you mean 'strategy'?)"),
        ({"resources": {"actors": "two"}}, "exp.yaml: resources.actors: expected an integer, got 'two'"),
        ({"resources": {"actors": 0}}, "exp.yaml: resources.actors: must be >= 1, got 0"),
        ({"budget": {"evaluations": -5}}, "exp.yaml: budget.evaluations: must be > 0, got -5"),
        (
            {"budget": {}},
            "exp.yaml: budget: give at least one of evaluations, wall_seconds, simulated_seconds",
        ),
        (
            {"engine": {"mode": "sync"}},
            "exp.yaml: engine.mode: 'sync' is not one of async, ordered, simulated",
        ),
        ({"budget": [10]}, "exp.yaml: budget: expected a mapping of evaluations, wall_seconds"),
        (
            {"objectives": ["params"]},
            "exp.yaml: objectives: not a config key: objectives are set by evaluator",
        ),
        (
            {"strategy": {"name": "annealing"}},
            "exp.yaml: strategy.name: 'annealing' is not one of regularized_",
        ),
        (
            {"evaluator": {"objective": ["x"]}},
            "exp.yaml: evaluator.type: missing required field (one of bench",
        ),
    ],
)
def test_bad_config_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, Any], expected: str
) -> None:
    data = base_config()
    data.update(change)
    path = write_config(tmp_path, data)
    assert_bad_input(capsys, ["validate", str(path)], expected)


def test_missing_required_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = base_config()
    del data["budget"]
    assert_bad_input(
        capsys, ["validate", str(write_config(tmp_path, data))], "exp.yaml: budget: missing required"
    )


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    assert_bad_input(capsys, ["run", str(missing)], f"{missing}: no such config file")
    assert_bad_input(capsys, ["validate", str(missing)], f"{missing}: no such config file")


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("strategy.population", "--set 'strategy.population': expected KEY.PATH=VALUE"),
        ("seed.x=1", "--set 'seed.x=1': seed is 0, not a section"),
        ("engine.mod=async", "exp.yaml: engine.mod: unknown key (did you mean 'mode'?)"),
        ("budgt.evaluations=3", "exp.yaml: budgt: unknown key (did you mean 'budget'?)"),
        ("budget.evaluations=many", "exp.yaml: budget.evaluations: expected an integer, got 'many'"),
    ],
)
def test_bad_overrides_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str, expected: str
) -> None:
    path = write_config(tmp_path, base_config())
    assert_bad_input(capsys, ["validate", str(path), "--set", override], expected)


def test_argparse_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert_bad_input(capsys, ["frobnicate"], "invalid choice: 'frobnicate'")
    assert_bad_input(capsys, ["show", ARCH, "--dataset", "mnist"], "invalid choice: 'mnist'")
    assert_bad_input(
        capsys, ["export-table", "--out", "x.npz"], "the following arguments are required: --archive"
    )


def test_help_is_fast_and_imports_neither_ray_nor_torch() -> None:
    code = (
        "import sys\nfrom natsray.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as exc:\n    assert exc.code == 0\n"
        "assert 'ray' not in sys.modules and 'torch' not in sys.modules, 'heavy import'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "validate" in result.stdout and "export-table" in result.stdout


def test_show_arch_string_without_archive(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "show", ARCH)
    assert code == 0, err
    lines = dict(line.split(None, 1) for line in out.splitlines() if not line.startswith("  "))
    assert lines["arch"] == ARCH
    # skip_connect on 2<-1 feeds node 2, which only reaches the output through a 'none' edge.
    assert lines["canonical"] == "|nor_conv_3x3~0|+|none~0|none~1|+|nor_conv_1x1~0|avg_pool_3x3~1|none~2|"
    assert lines["code"] == "9930"
    assert "  edge 2<-1   skip_connect" in out.splitlines()
    assert lines["params"].startswith("0.344346 M")


def test_show_rejects_bad_arch(capsys: pytest.CaptureFixture[str]) -> None:
    assert_bad_input(capsys, ["show", "|conv~0|+|x~0|y~1|"], "ARCH: ")
    assert_bad_input(capsys, ["show", "42"], "ARCH 42: a NATS index needs --archive or --table")


def test_parse_seeds() -> None:
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("0,3,5") == [0, 3, 5]
    assert parse_seeds("0-2,10") == [0, 1, 2, 10]
    for bad in ("", "a", "3-1", "-1", "0-", "1,1"):
        with pytest.raises(UsageError, match=r"^--seeds: "):
            parse_seeds(bad)
    with pytest.raises(UsageError, match=r"^--seeds: 7-4 is a reversed range; did you mean 4-7\?$"):
        parse_seeds("0,7-4")


@pytest.mark.parametrize(
    ("evaluator", "field"),
    [
        ({"type": "benchmark", "archive": "missing-archive"}, "archive"),
        ({"type": "table", "table": "missing.npz"}, "table"),
        ({"type": "table", "table": "exp.yaml", "extra_csv": "missing.csv"}, "extra_csv"),
        ({"type": "train", "dataset": "cifar10", "data_dir": "missing-data"}, "data_dir"),
        ({"type": "proxy", "dataset": "cifar10", "data_dir": "missing-data"}, "data_dir"),
    ],
)
def test_missing_paths_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    evaluator: dict[str, Any],
    field: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    data = base_config()
    data["evaluator"] = evaluator
    write_config(tmp_path, data)
    expected = f"exp.yaml: evaluator.{field}: {evaluator[field]}: no such file or directory"
    assert_bad_input(capsys, ["validate", "exp.yaml"], expected)
    assert_bad_input(capsys, ["run", "exp.yaml"], expected)
    assert not (tmp_path / "runs").exists()


def test_validate_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, base_config())
    code, out, err = run_cli(capsys, "validate", str(path), "--set", "budget.wall_seconds=60")
    assert code == 0, err
    assert out == (
        f"OK: {path}: strategy random, evaluator cost, objectives params:min, "
        "budget evaluations=10, wall_seconds=60, engine async with 2 Ray actor(s) "
        f"(fits this machine ({os.cpu_count()} CPU, {local_nodes()[0]['GPU']:g} GPU)), seed 0\n"
    )


def test_show_nats_index_from_the_real_records(capsys: pytest.CaptureFixture[str]) -> None:
    records = SHARED / "real-records"
    if not records.is_dir():
        pytest.skip(f"{records} not present")
    code, out, err = run_cli(capsys, "show", "11", "--archive", str(records))
    assert code == 0, err
    lines = dict(line.rsplit(None, 1) for line in out.splitlines() if not line.startswith("  "))
    # acc_hp12.csv and test_acc_hp200.csv, row 11
    assert lines["NATS index"] == "11"
    assert float(lines["valid_accuracy@12"]) == pytest.approx(63.278, abs=1e-3)
    assert float(lines["test_accuracy@12"]) == pytest.approx(74.0)
    assert float(lines["test_accuracy@200"]) == pytest.approx(91.58333, abs=1e-4)
    code, out_by_string, _ = run_cli(capsys, "show", lines["arch"], "--archive", str(records))
    assert code == 0 and out_by_string == out
    assert_bad_input(capsys, ["show", "5", "--archive", str(records)], "no record for NATS index 5 in")
    assert_bad_input(capsys, ["show", "99999", "--archive", str(records)], "ARCH 99999: NATS index must be")


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    # address="local": a fresh instance, never another process's cluster on this machine
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.mark.ray
@pytest.mark.slow
def test_run_seeds_aggregate_refuse_and_resume(
    ray_session: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = {
        "strategy": {"name": "random"},
        "evaluator": {
            "type": "cost",
            "dataset": "digits",
            "digits_size": 8,
            "C": 4,
            "N": 1,
            "objective": ["params"],
            "latency_repeats": 1,
            "latency_warmup": 0,
        },
        "budget": {"evaluations": 3},
        "resources": {"actors": 1},
        "output": {"dir": "runs/tiny"},
    }
    write_config(tmp_path, data)
    code, out, err = run_cli(capsys, "run", "exp.yaml", "--seeds", "0-1", "--no-progress")
    assert code == 0, err
    out_dir = tmp_path / "runs" / "tiny"
    for seed in (0, 1):
        run_dir = out_dir / f"seed-{seed}"
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["evaluations"] == 3 and summary["stop_reason"] == "budget: evaluations"
        written = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert written["seed"] == seed and written["output"]["dir"] == str(Path("runs/tiny") / f"seed-{seed}")
        assert len((run_dir / "evaluations.jsonl").read_text().splitlines()) == 3
    aggregate = json.loads((out_dir / "aggregate.json").read_text())
    assert aggregate["seeds"] == [0, 1]
    best = [
        json.loads((out_dir / f"seed-{s}" / "summary.json").read_text())["best_objectives"]["params"]
        for s in (0, 1)
    ]
    assert aggregate["metrics"]["best.params"]["mean"] == pytest.approx(sum(best) / 2)

    assert_bad_input(
        capsys,
        ["run", "exp.yaml", "--seeds", "0-1"],
        "already holds a sweep: continue it with 'natsray resume",
    )
    code, out, err = run_cli(capsys, "resume", str(out_dir / "seed-0"), "--no-progress")
    assert code == 0, err
    assert "evaluations   3 (0 failed" in out

    assert_bad_input(
        capsys,
        ["resume", str(out_dir / "seed-0"), "--set", "seed=3"],
        "a resumed run may only change budget.*",
    )
    code, out, err = run_cli(
        capsys, "resume", str(out_dir / "seed-0"), "--set", "budget.evaluations=5", "--no-progress"
    )
    assert code == 0, err
    assert "evaluations   5 (0 failed" in out
    assert yaml.safe_load((out_dir / "seed-0" / "config.yaml").read_text())["budget"]["evaluations"] == 5
    records = [
        json.loads(line) for line in (out_dir / "seed-0" / "evaluations.jsonl").read_text().splitlines()
    ]
    assert sorted(r["candidate_id"] for r in records) == [0, 1, 2, 3, 4]
    assert_bad_input(
        capsys,
        ["resume", str(out_dir.parent)],
        f"{out_dir.parent}: not a run or sweep directory (no config.yaml or sweep.yaml)",
    )


def test_failure_during_the_run_is_one_line_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_config(run_dir, base_config(), name="config.yaml")
    (run_dir / "checkpoint.json").write_text("{not json")
    (run_dir / "evaluations.jsonl").write_text("")
    monkeypatch.delenv("NATSRAY_DEBUG", raising=False)
    code, _, err = run_cli(capsys, "resume", str(run_dir))
    assert code == 1
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "checkpoint.json" in err and "NATSRAY_DEBUG=1" in err
    monkeypatch.setenv("NATSRAY_DEBUG", "1")
    with pytest.raises(ValueError, match=r"checkpoint\.json"):
        main(["resume", str(run_dir)])


def test_run_refuses_a_file_as_run_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, base_config())
    assert_bad_input(
        capsys, ["run", str(path), "--out", str(path)], f"{path}: is a file, expected a run directory"
    )


def test_python_dash_m_natsray_is_the_natsray_command() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "natsray", "validate", "configs/quickstart.yaml"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0 and done.stdout.startswith("OK: configs/quickstart.yaml"), done.stderr


# --------------------------------------------------------------------------- sweeps: --set, --parallel, .lock


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("strategy.populaton=5", "strategy.populaton: unknown key (did you mean 'population'?)"),
        ("strategy.population=abc", "strategy.population: expected an integer, got 'abc'"),
        (
            "evaluator.dataset=cifar11",
            "evaluator.dataset: 'cifar11' is not one of cifar10, cifar100, ImageNet16-120 "
            "(did you mean 'cifar10'?)",
        ),
        ("budget.simulated_seconds=-3", "budget.simulated_seconds: must be > 0, got -3.0"),
    ],
)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_sweep_refuses_a_bad_set_of_a_key_its_grid_sets(
    command: str,
    item: str,
    expected: str,
    full_table: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The shipped NATS sweep's grid sets the strategy section, evaluator.dataset and the budget: a
    misspelt key or a bad value given for them with --set is refused, not discarded by the grid."""
    argv = [command, str(NATS_SWEEP), "--set", f"evaluator.table={full_table}", "--set", item]
    if command == "run":
        argv += ["--seeds", "0", "--out", str(tmp_path / "sweep"), "--no-progress"]
    assert_bad_input(capsys, argv, f"natsray: error: {NATS_SWEEP}: {expected}\n")
    assert not (tmp_path / "sweep").exists()


def test_a_set_that_the_sweep_grid_overrides_is_one_warning_and_the_grid_wins(
    full_table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/sweeps.md's validate command (its output as documented), its refusal of a misspelt key,
    and a sweep whose grid overrides a --set: one warning, the grid's values run."""
    doc = (ROOT / "docs" / "sweeps.md").read_text()
    block = next(b for b in doc.split("```bash\n")[1:] if "is overridden by the sweep's grid" in b).split(
        "```"
    )[0]
    command = " ".join(line.rstrip("\\") for line in block.splitlines() if not line.startswith("#"))
    expected = [line.removeprefix("# ") for line in block.splitlines() if line.startswith("#")]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    (tmp_path / "nats-tss.npz").symlink_to(full_table)
    code, _, err = run_cli(capsys, *shlex.split(command)[1:])
    assert code == 0, err
    assert err.splitlines() == expected and len(expected) == 2
    assert_bad_input(
        capsys,
        [*shlex.split(command)[1:5], "--set", "strategy.populaton=5"],
        "natsray: error: configs/sweeps/nats-bench-rea-random.yaml: strategy.populaton: unknown key "
        "(did you mean 'population'?)\n",
    )
    table = f"evaluator.table={full_table}"
    sweep = tmp_path / "sweep"
    code, _, err = run_cli(
        capsys, "run", str(NATS_SWEEP), "--set", table, "--set", "budget.simulated_seconds=100",
        "--seeds", "0", "--parallel", "1", "--out", str(sweep), "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    assert err.splitlines() == [
        "natsray: warning: --set budget.simulated_seconds=100 is overridden by the sweep's grid "
        "(budget.simulated_seconds: 20000, 40000, 120000)"
    ]
    import natsray

    runs = natsray.load_sweep(sweep).runs
    assert len(runs) == 6 and all(run.summary["simulated_seconds"] > 10_000 for run in runs)
    assert not list(sweep.rglob(".lock"))  # nothing holds the finished sweep


@pytest.mark.parametrize("value", ["-1", "0", "two", "1.5"])
@pytest.mark.parametrize("command", ["run", "resume"])
def test_parallel_is_a_positive_integer(
    command: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "run",
        str(write_config(tmp_path, base_config())),
        "--seeds",
        "0-1",
        "--out",
        str(tmp_path / "runs"),
    ]
    if command == "resume":
        argv = ["resume", str(tmp_path)]
    assert_bad_input(
        capsys,
        [*argv, "--parallel", value],
        f"natsray: error: --parallel: expected a positive integer, got {value}\n",
    )
    assert not (tmp_path / "runs").exists()


def test_parallel_and_seeds_of_the_python_api_are_checked_before_a_file_is_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import natsray
    from natsray.study.sweep import run_sweep

    for parallel in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match=rf"^parallel: expected a positive integer, got {parallel!r}$"):
            natsray.sweep(base_config(), out=tmp_path / "sweep", seeds="0-1", parallel=parallel)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="parallel: expected a positive integer"):
            run_sweep([], tmp_path / "sweep", parallel=parallel)  # type: ignore[arg-type]
    assert not (tmp_path / "sweep").exists()
    config = str(write_config(tmp_path, base_config()))
    assert_bad_input(
        capsys,
        ["run", config, "--seeds", "0-4294967295"],
        "natsray: error: --seeds: 0-4294967295: more than 1,000,000 seeds in one sweep\n",
    )  # a command-line option: not prefixed with the config file


def test_a_finished_sweep_keeps_no_lock_and_a_killed_holders_lock_blocks_no_resume(
    full_table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The sweep's ``.lock`` is removed when the sweep ends; one left by a SIGKILLed holder (its
    ``flock`` gone with it) does not stop ``natsray resume``, a live holder does."""
    config = base_config()
    config["evaluator"] = {"type": "table", "table": str(full_table), "objective": ["valid_accuracy"]}
    config["engine"] = {"mode": "simulated"}
    sweep = tmp_path / "sweep"
    argv = ["--seeds", "0-1", "--parallel", "1", "--out", str(sweep), "--no-progress"]
    code, _, err = run_cli(capsys, "run", str(write_config(tmp_path, config)), *argv)
    assert code == 0, err
    assert sorted(path.name for path in sweep.iterdir()) == [
        ".gitignore",  # '*': a sweep's results stay out of git and of a Ray working_dir upload
        "aggregate.json",
        "report",
        "store",
        "sweep-runs.jsonl",
        "sweep.yaml",
    ]
    assert_bad_input(  # a run the sweep has not finished (here: not one of its runs at all)
        capsys,
        ["report", str(sweep / "seed-7")],
        f"{sweep / 'seed-7'}: no such run directory, and the sweep {sweep} has no finished run of that name "
        f"(a run not finished yet: natsray resume {sweep})",
    )
    code, _, err = run_cli(capsys, "report", str(sweep / "seed-1"))  # written from the store
    assert code == 0 and (sweep / "seed-1" / "summary.json").is_file(), err
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from natsray.engine.checkpoint import RunLock; lock = RunLock(sys.argv[1]); "
            "print('held', flush=True); time.sleep(120)",
            str(sweep),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        assert_bad_input(
            capsys,
            ["resume", str(sweep), "--no-progress"],
            f"{sweep}: in use by another process (pid {holder.pid})",
        )
    finally:
        holder.kill()
        holder.wait()
    assert (sweep / ".lock").read_text() == str(holder.pid)  # left by the killed holder
    code, _, err = run_cli(capsys, "resume", str(sweep), "--no-progress")
    assert code == 0, err
    assert not (sweep / ".lock").exists()
