"""The Python API (``natsray.run`` / ``Run`` / ``load_run`` / ``sweep``), from outside the package.

A run started from Python is a complete run directory: ``natsray report`` reads it and ``natsray
resume`` continues it (a run scored by a Python callable says, in one line, that it resumes from
Python); its DataFrame equals its ``evaluations.csv``; an interrupted run is read back and resumed to
the uninterrupted trajectory; a Ray the caller started is left running.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from toy_evaluator import ToyConfig, ToyEvaluator, local_ray_session, trajectory

import natsray
from natsray.cli import main
from natsray.config import ConfigError
from natsray.engine.checkpoint import read_journal
from natsray.experiment.lifecycle import RunDirError
from natsray.search_space import Arch


def cell_score(arch: Arch, context: Any) -> dict[str, float]:
    """A scoring function reached by import path (``test_api:cell_score``): workers import this module."""
    return {"score": float(sum(op.startswith("nor_conv") for op in arch.ops)) + arch.code / 100_000}


class EdgeCount(ToyEvaluator):
    """An evaluator class of the user's own, reached by import path (``test_api:EdgeCount``)."""


def base(evaluations: int = 12, **engine: Any) -> dict[str, Any]:
    return {
        "seed": 2,
        "strategy": {"name": "regularized_evolution", "population": 4, "sample_size": 2},
        "budget": {"evaluations": evaluations},
        "engine": {"mode": "ordered", **engine},
        "resources": {"actors": 2, "cpus_per_actor": 1},
    }


@pytest.fixture(scope="module")
def ray_session() -> Iterator[str]:
    with local_ray_session() as address:
        yield address


@pytest.mark.ray
def test_a_lambda_on_two_actors_gives_a_complete_run(
    ray_session: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import ray

    run = natsray.run(
        base(),
        evaluator=lambda arch, context: {"score": float(arch.code % 101), "seed": context.seed},
        out=tmp_path / "run",
        progress=False,
    )
    assert ray.is_initialized()  # the caller's Ray is left running
    frame = run.evaluations
    pd.testing.assert_frame_equal(frame, pd.read_csv(tmp_path / "run" / "evaluations.csv"))
    assert len(frame) == 12 and set(frame["status"]) == {"ok"}
    assert frame["worker"].nunique() == 2  # both actors scored
    expected = [float(Arch.from_str(arch).code % 101) for arch in frame["arch"]]
    assert frame["objective.score"].tolist() == expected
    assert run.best is not None and run.best.objectives["score"] == max(expected)
    assert run.best.arch == Arch.from_str(run.summary["best_arch"])
    assert set(run.plots) == {"best_so_far", "fitness"} and all(path.is_file() for path in run.plots.values())

    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    name = "test_api.test_a_lambda_on_two_actors_gives_a_complete_run.<locals>.<lambda>"
    assert config["evaluator"]["function"] == f"<python callable> {name}"
    assert main(["report", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "report" / "report.json").is_file()
    capsys.readouterr()
    assert main(["resume", str(tmp_path / "run"), "--set", "budget.evaluations=16"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"natsray: error: {tmp_path / 'run' / 'config.yaml'}: evaluator.function: this run scores cells with "
        f"{name}, a Python object given to natsray.run(evaluator=...), which a config file cannot "
        "name; continue it from Python: natsray.load_run(RUN_DIR).resume(evaluator=FUNCTION)\n"
    )
    # ... which continues it, with the callable given again
    resumed = natsray.load_run(tmp_path / "run").resume(
        overrides=["budget.evaluations=16"],
        evaluator=lambda arch, context: {"score": float(arch.code % 101), "seed": context.seed},
        progress=False,
    )
    assert resumed.summary["evaluations"] == 16 and len(resumed.evaluations) == 16


@pytest.mark.ray
def test_a_sweep_from_python(ray_session: str, tmp_path: Path) -> None:
    config = {
        **base(8, in_process=True),
        "evaluator": {"type": "function", "function": "test_api:cell_score"},
    }
    config["evaluator"]["cheap"] = True
    sweep = natsray.sweep(config, seeds=[0, 1], out=tmp_path / "sweep", progress=False, report=False)
    assert [outcome.status for outcome in sweep.outcomes] == ["done", "done"]
    runs = natsray.load_sweep(tmp_path / "sweep").runs
    assert [run.path.name for run in runs] == ["seed-0", "seed-1"]
    assert all(run.finished and len(run.evaluations) == 8 for run in runs)
    assert runs[0].evaluations["arch"].tolist() != runs[1].evaluations["arch"].tolist()  # two seeds
    with pytest.raises(RunDirError, match="already holds a sweep"):
        natsray.sweep(config, seeds=[0, 1], out=tmp_path / "sweep", progress=False)


def test_a_run_from_python_resumes_and_reports_with_the_cli(tmp_path: Path, capsys) -> None:
    """In-process (no Ray): a YAML path and an import-path function; ``natsray resume`` extends it."""
    path = tmp_path / "x.yaml"
    data = {**base(10, in_process=True), "evaluator": {"type": "function", "function": "test_api:cell_score"}}
    data["evaluator"]["cheap"] = True
    path.write_text(yaml.safe_dump(data))
    run = natsray.run(path, out=tmp_path / "run", progress=False, overrides=["seed=5"])
    assert run.config["seed"] == 5 and run.config["evaluator"]["function"] == "test_api:cell_score"
    assert main(["resume", str(tmp_path / "run"), "--set", "budget.evaluations=14", "--no-progress"]) == 0
    assert natsray.load_run(tmp_path / "run").summary["evaluations"] == 14
    assert main(["report", str(tmp_path / "run")]) == 0
    assert "wrote " in capsys.readouterr().out


def test_an_evaluator_class_becomes_the_runs_evaluator_type(tmp_path: Path) -> None:
    """``evaluator=Class`` is ``evaluator.type: 'module:Class'``: the same run, resumable from the shell."""
    config = {**base(6, in_process=True), "evaluator": {"sleep_s": 0.001}}
    run = natsray.run(config, evaluator=EdgeCount, out=tmp_path / "class", progress=False)
    assert (run.config["evaluator"]["type"], run.config["evaluator"]["sleep_s"]) == (
        "test_api:EdgeCount",
        0.001,
    )
    assert run.summary["failed"] == 0 and run.best is not None
    named = {**config, "evaluator": {**config["evaluator"], "type": "test_api:EdgeCount"}}
    natsray.run(named, out=tmp_path / "named", progress=False)
    assert trajectory(tmp_path / "class") == trajectory(tmp_path / "named")
    assert main(["resume", str(tmp_path / "class"), "--set", "budget.evaluations=8", "--no-progress"]) == 0
    assert natsray.load_run(tmp_path / "class").summary["evaluations"] == 8


class Interrupt:
    """A cheap scoring function that raises KeyboardInterrupt (Ctrl-C) at its ``at``-th call."""

    def __init__(self, at: int | None) -> None:
        self.at, self.calls = at, 0

    def __call__(self, arch: Arch, context: Any) -> dict[str, float]:
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return cell_score(arch, context)


def test_load_run_reads_an_interrupted_run_which_resumes_to_the_uninterrupted_one(tmp_path: Path) -> None:
    config = {**base(20, in_process=True, batch_size=1), "evaluator": {"cheap": True}}
    natsray.run(config, evaluator=Interrupt(None), out=tmp_path / "whole", progress=False)
    with pytest.raises(KeyboardInterrupt):
        natsray.run(config, evaluator=Interrupt(8), out=tmp_path / "cut", progress=False)
    run = natsray.load_run(tmp_path / "cut")
    assert not run.finished and run.summary is None
    frame = run.evaluations
    assert frame["candidate_id"].tolist() == list(range(7))  # the 7 evaluations finished before Ctrl-C
    best = max(range(7), key=lambda i: (frame["objective.score"][i], -i))
    assert run.best is not None and run.best.candidate_id == best
    run.resume(evaluator=Interrupt(None), progress=False)
    assert run.finished and trajectory(tmp_path / "cut") == trajectory(tmp_path / "whole")
    assert len(read_journal(tmp_path / "cut" / "evaluations.jsonl")) == 20


def test_bad_calls_are_one_line(tmp_path: Path) -> None:
    def score(arch: Arch, context: Any) -> dict[str, float]:
        return {"score": 1.0}

    table = {**base(4, in_process=True), "evaluator": {"type": "table", "table": "x.parquet"}}
    with pytest.raises(
        ConfigError, match=r"^evaluator.type: 'table', but evaluator= gives a scoring function"
    ):
        natsray.run(table, evaluator=score, out=tmp_path / "a")
    with pytest.raises(ConfigError, match=r"^evaluator: expected a callable"):
        natsray.run(base(), evaluator=3, out=tmp_path / "a")  # type: ignore[arg-type]

    class Local(ToyEvaluator):
        pass

    for evaluator, words in [
        (
            EdgeCount(ToyConfig()),
            r"^evaluator: got an instance of EdgeCount; pass the class \(evaluator=EdgeCount\)",
        ),
        (
            Local,
            r"^evaluator: .*Local is defined in a function, so the Ray actors and a resumed run cannot",
        ),
        (Interrupt, r"^evaluator: test_api:Interrupt is a class, neither a scoring function"),
    ]:
        with pytest.raises(ConfigError, match=words):
            natsray.run(base(), evaluator=evaluator, out=tmp_path / "a")
    with pytest.raises(
        ConfigError, match=r"^evaluator.type: 'table', but evaluator= gives the class test_api:EdgeCount"
    ):
        natsray.run(table, evaluator=EdgeCount, out=tmp_path / "a")
    with pytest.raises(
        ConfigError, match=r"^config: expected a mapping, a YAML file's path or an ExperimentConfig"
    ):
        natsray.run([1], evaluator=score)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"no such config file"):
        natsray.run(tmp_path / "missing.yaml")
    cheap = {**base(4, in_process=True), "evaluator": {"cheap": True}}
    natsray.run(cheap, evaluator=score, out=tmp_path / "b", progress=False)
    with pytest.raises(RunDirError, match=r"already holds a run"):
        natsray.run(cheap, evaluator=score, out=tmp_path / "b", progress=False)
    assert natsray.run(cheap, evaluator=score, out=tmp_path / "b", progress=False, overwrite=True).finished
    with pytest.raises(RunDirError, match=r"no such run directory"):
        natsray.load_run(tmp_path / "nowhere")
    with pytest.raises(
        ConfigError, match=r"^evaluator.function: a sweep names its scoring function by import path"
    ):
        natsray.sweep({**cheap, "evaluator": {"function": score}}, seeds=[0, 1], out=tmp_path / "s")
    with pytest.raises(RunDirError, match=r"may only change budget"):
        natsray.load_run(tmp_path / "b").resume(overrides=["seed=3"], evaluator=score)


def test_callbacks_are_called_on_each_result_and_at_the_end(tmp_path: Path) -> None:
    class Record(natsray.Callback):
        def __init__(self) -> None:
            self.results: list[int] = []
            self.end: list[Any] = []

        def on_result(self, result: Any, index: int, candidate: Any) -> None:
            self.results.append(candidate.id)

        def on_run_end(self, run_dir: Path, summary: Any) -> None:
            self.end.append((run_dir, summary["evaluations"], (run_dir / "evaluations.csv").is_file()))

    record = Record()
    cheap = {**base(6, in_process=True), "evaluator": {"cheap": True}}
    natsray.run(cheap, evaluator=cell_score, out=tmp_path / "run", progress=False, callbacks=[record])
    assert sorted(record.results) == list(range(6))
    assert record.end == [(tmp_path / "run", 6, True)]  # after the CSV and plots were written


def test_progress_uses_tqdm_auto_so_jupyter_gets_its_bar() -> None:
    from tqdm.auto import tqdm

    from natsray.engine.progress import Progress

    bar = Progress(True, 10)
    bar.update(1, 0.5)  # the bar appears (tqdm imported) with the first update
    try:
        assert type(bar._bar) is tqdm
    finally:
        bar.close()


def test_natsray_run_refuses_what_the_shell_refuses_before_ray_starts(tmp_path: Path) -> None:
    # The pre-flight of `natsray run` (resources of a local Ray, the evaluator's inputs) runs for
    # natsray.run too: one line, no run directory, no Ray started. In a fresh interpreter, so no Ray
    # of this module is running.
    import subprocess
    import sys

    code = (
        "import natsray, ray\n"
        "cfg = {'strategy': {'name': 'random'}, 'budget': {'evaluations': 4},\n"
        "       'resources': {'actors': 2, 'cpus_per_actor': 512}}\n"
        "try:\n"
        "    natsray.run(cfg, evaluator=lambda a, c: {'score': 1.0}, out='run', progress=False)\n"
        "except ValueError as exc:\n"
        "    print('REFUSED', exc)\n"
        "print('RAY', ray.is_initialized())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    lines = done.stdout.splitlines()
    assert lines[0].startswith("REFUSED ") and "cpus_per_actor" in lines[0], done.stdout + done.stderr
    assert lines[1] == "RAY False" and not (tmp_path / "run").exists()
