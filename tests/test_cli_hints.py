"""What the CLI prints names the real thing, and a closed stdout ends it quietly (issue 11, item 5)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import toy_evaluator  # noqa: F401  (registers evaluator.type: toy)

from natsray.cli import main

ROOT = Path(__file__).resolve().parents[1]
ARCH = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|nor_conv_1x1~0|avg_pool_3x3~1|none~2|"


def cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def toy_config(tmp_path: Path, budget: dict, engine: dict, name: str = "exp.yaml") -> Path:
    data = {
        "seed": 0,
        "strategy": {"name": "random"},
        "evaluator": {"type": "toy"},
        "budget": budget,
        "engine": engine,
        "output": {"dir": str(tmp_path / "run")},
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_resume_that_cannot_run_longer_names_the_binding_budget(tmp_path: Path, capsys) -> None:
    config = toy_config(tmp_path, {"simulated_seconds": 20}, {"mode": "simulated", "simulated_workers": 2})
    code, out, err = cli(capsys, "run", config, "--no-progress")
    assert code == 0 and "stopped: budget: simulated_seconds" in out, err
    run = tmp_path / "run"
    before = (run / "evaluations.jsonl").read_text()
    code, out, err = cli(capsys, "resume", run, "--set", "budget.evaluations=500", "--no-progress")
    assert code == 2 and err.count("\n") == 1, (out, err)
    assert (
        "cannot run longer: budget.simulated_seconds=20 (" in err
        and "--set budget.simulated_seconds=N" in err
    )
    assert (run / "evaluations.jsonl").read_text() == before  # nothing ran
    assert yaml.safe_load((run / "config.yaml").read_text())["budget"].get("evaluations") is None
    code, out, err = cli(
        capsys, "resume", run, "--set", "budget.simulated_seconds=40", "--no-progress"
    )  # raising the binding budget runs on
    assert code == 0, err
    assert json.loads((run / "summary.json").read_text())["simulated_seconds"] >= 40


def test_resume_of_a_seeds_parent_names_its_seed_runs(tmp_path: Path, capsys) -> None:
    # seed runs made one by one (no sweep.yaml: `run --seeds` makes a sweep, which `resume` continues whole)
    config = toy_config(tmp_path, {"evaluations": 3}, {"mode": "ordered", "in_process": True})
    for seed in (0, 1):
        out = tmp_path / "many" / f"seed-{seed}"
        code, _, err = cli(capsys, "run", config, "--set", f"seed={seed}", "--out", out, "--no-progress")
        assert code == 0, err
    code, _, err = cli(capsys, "resume", tmp_path / "many")
    assert code == 2 and err.count("\n") == 1
    assert (
        "holds 2 seed runs (seed-0, seed-1)" in err
        and f"natsray resume {tmp_path / 'many' / 'seed-0'}" in err
    )


def test_interrupt_names_the_run_dir(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    import natsray.engine.runner as runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_experiment", interrupted)
    config = toy_config(tmp_path, {"evaluations": 3}, {"mode": "ordered", "in_process": True})
    code, _, err = cli(capsys, "run", config, "--out", tmp_path / "stopped", "--no-progress")
    assert code == 130
    assert err == f"natsray: interrupted; continue with 'natsray resume {tmp_path / 'stopped'}'\n"


def test_interrupted_sweep_names_the_sweep_dir(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    import natsray.study.sweep as sweep

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep, "run_sweep", interrupted)
    config = toy_config(tmp_path, {"evaluations": 3}, {"mode": "ordered", "in_process": True})
    code, _, err = cli(capsys, "run", config, "--seeds", "0-1", "--out", tmp_path / "sw", "--no-progress")
    assert code == 130
    assert err == f"natsray: interrupted; continue with 'natsray resume {tmp_path / 'sw'}'\n"


def test_ctrl_c_while_the_files_are_written_finishes_them(tmp_path: Path, capsys, monkeypatch) -> None:
    """A Ctrl-C after the search, while evaluations.csv and the plots are written, only prints a note (a
    KeyboardInterrupt inside Arrow or matplotlib once aborted the interpreter); the run finishes, exit 0."""
    import natsray.experiment.report as report

    finalize = report.finalize_run
    handlers = []

    def finalize_with_ctrl_c(run_dir):
        os.kill(os.getpid(), signal.SIGINT)  # delivered at the next bytecode: inside this function
        handlers.append(signal.getsignal(signal.SIGINT))
        finalize(run_dir)

    monkeypatch.setattr(report, "finalize_run", finalize_with_ctrl_c)
    before = signal.getsignal(signal.SIGINT)
    config = toy_config(tmp_path, {"evaluations": 3}, {"mode": "ordered", "in_process": True})
    code, _, err = cli(capsys, "run", config, "--out", tmp_path / "done", "--no-progress")
    assert code == 0 and (tmp_path / "done" / "evaluations.csv").exists(), err
    assert err == "natsray: the search is finished, writing its files; Ctrl-C again to stop now\n"
    assert handlers == [signal.SIG_DFL]  # a second Ctrl-C would end the process at once
    assert signal.getsignal(signal.SIGINT) is before  # restored afterwards


@pytest.mark.parametrize(
    ("engine", "described"),
    [
        ({"mode": "ordered", "in_process": True}, "engine ordered in-process (no Ray: runs in the driver)"),
        ({"mode": "async"}, "engine async with 2 Ray actor(s)"),
        (
            {"mode": "simulated", "simulated_workers": 4},
            "engine simulated with 4 simulated worker(s) (no Ray: runs in the driver)",
        ),
    ],
)
def test_validate_describes_the_engine_really_used(tmp_path: Path, capsys, engine, described) -> None:
    code, out, err = cli(capsys, "validate", toy_config(tmp_path, {"evaluations": 3}, engine))
    assert code == 0 and described in out, err


def _natsray(*argv: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "import sys; from natsray.cli import main; sys.exit(main())",
        *argv,
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.mark.parametrize("command", [("show", ARCH), ("validate", "configs/quickstart.yaml")])
def test_closed_stdout_pipe_exits_quietly(command: tuple[str, ...]) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before natsray writes: every write gets EPIPE
    try:
        result = subprocess.run(
            _natsray(*command),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
            timeout=120,
            cwd=ROOT,
        )
    finally:
        os.close(write_end)
    assert result.stderr == "" and result.returncode == 141


def test_head_of_show_and_report_through_a_shell_pipe(tmp_path: Path, capsys) -> None:
    config = toy_config(tmp_path, {"evaluations": 40}, {"mode": "ordered", "in_process": True})
    assert main(["run", str(config), "--no-progress"]) == 0
    capsys.readouterr()
    # the documented commands, as a user types them (the closed-pipe case itself is the test above)
    for command, lines in ((["show", ARCH], 1), (["report", str(tmp_path / "run")], 2)):
        shell = " ".join(f"'{arg}'" for arg in _natsray(*command))
        result = subprocess.run(
            ["bash", "-c", f"set -o pipefail; {shell} | head -{lines}"],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=180,
        )
        assert len(result.stdout.splitlines()) == lines
        assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr


def test_address_on_a_driver_only_run_is_named_as_unused(tmp_path: Path, capsys) -> None:
    config = toy_config(tmp_path, {"evaluations": 3}, {"mode": "ordered", "in_process": True})
    code, _, err = cli(capsys, "run", config, "--address", "127.0.0.1:1", "--no-progress")
    assert code == 0 and "--address 127.0.0.1:1 is not used: this config runs in the driver" in err
