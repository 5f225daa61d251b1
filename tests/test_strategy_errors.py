"""A strategy of the user's own that fails, reached as a user reaches it (a package in a temp dir, named
by import path): one line naming the class, the method and the user's file:line, with the resume hint, as
evaluators get; ``validate`` builds the strategy; ``natsray.run(strategy=Class)``; a SIGTERM-stopped run's
summary says ``interrupted``; a plugin sweep resumed from another directory. No Ray is started here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from user_package import user_package

import natsray
from natsray.cli import main
from natsray.config import ConfigError

REPO = Path(__file__).resolve().parents[1]

STRATEGY = """
import os
import signal
from dataclasses import dataclass

from natsray import BaseEvaluator, Score, Strategy
from natsray.search_space import random_sample


@dataclass(frozen=True)
class FlakyConfig:
    name: str = "labstrat.flaky:Flaky"
    fail_in: str = ""  # the method that raises: __init__, ask, tell, state
    sigterm_at: int = -1  # send this process SIGTERM when told this candidate id


class Flaky(Strategy):
    Config = FlakyConfig

    def __init__(self, config, *, num_objectives=1, seed=0):
        super().__init__(config, num_objectives=num_objectives, seed=seed)
        self._fail("__init__")

    def _fail(self, method):
        if self.config.fail_in == method:
            raise KeyError("missing")

    def ask(self):
        self._fail("ask")
        found = self._novel(lambda: random_sample(self.rng))
        return None if found is None else self._propose(found[0])

    def tell(self, candidate, fitness):
        self._fail("tell")
        if candidate.id == self.config.sigterm_at:
            os.kill(os.getpid(), signal.SIGTERM)

    def _state(self):
        self._fail("state")
        return {}

    def _load_state(self, state):
        pass


@dataclass(frozen=True)
class ConvsConfig:
    type: str = "labstrat.flaky:Convs"
    objective: tuple[str, ...] = ("score",)


class Convs(BaseEvaluator):
    Config = ConvsConfig
    cheap = True

    def score(self, candidate):
        return Score({"score": float(candidate.arch.ops.count("nor_conv_3x3"))}, {}, cost_s=1.0)
"""


LINE = next(i for i, line in enumerate(STRATEGY.splitlines(), 1) if "raise KeyError" in line)
"""The line of flaky.py that raises."""


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with user_package(tmp_path_factory.mktemp("project"), "labstrat", {"flaky": STRATEGY}) as root:
        yield root


def config(**strategy: Any) -> dict[str, Any]:
    return {
        "seed": 1,
        "strategy": {"name": "labstrat.flaky:Flaky", **strategy},
        "evaluator": {"type": "labstrat.flaky:Convs"},
        "budget": {"evaluations": 20},
        "engine": {"in_process": True, "batch_size": 1},
        "output": {"progress": False, "plots": False},
    }


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize("method", ["__init__", "ask", "tell", "state"])
def test_a_failing_strategy_is_named_with_its_method_file_line_and_the_resume_hint(
    package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], method: str
) -> None:
    path = write(tmp_path / "x.yaml", config(fail_in=method))
    run_dir = tmp_path / "run"
    assert main(["run", str(path), "--out", str(run_dir), "--no-progress"]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"natsray: failed: StrategyError: strategy labstrat.flaky:Flaky: {method} raised KeyError: 'missing' "
        f"(flaky.py:{LINE}); after fixing it, 'natsray resume {run_dir}' continues the run "
        "(NATSRAY_DEBUG=1 shows the traceback)"
    )
    if method == "__init__":  # validate builds the strategy: the same line, before anything runs
        assert main(["validate", str(path)]) == 1
        err = capsys.readouterr().err
        assert err == (
            "natsray: failed: StrategyError: strategy labstrat.flaky:Flaky: __init__ raised "
            f"KeyError: 'missing' (flaky.py:{LINE}) (NATSRAY_DEBUG=1 shows the traceback)\n"
        )
        assert not list(tmp_path.glob("runs"))


def test_run_takes_a_strategy_class_as_it_takes_an_evaluator_class(package: Path, tmp_path: Path) -> None:
    from labstrat.flaky import Flaky, FlakyConfig

    data = config()
    del data["strategy"]["name"]
    run = natsray.run(data, strategy=Flaky, out=tmp_path / "a", progress=False)
    assert run.config["strategy"]["name"] == "labstrat.flaky:Flaky" and run.summary["evaluations"] == 20
    run = natsray.run({**data, "strategy": {"name": Flaky}}, out=tmp_path / "b", progress=False)
    assert run.config["strategy"]["name"] == "labstrat.flaky:Flaky"
    with pytest.raises(
        ConfigError, match=r"^strategy: builtins:dict is a class, not a natsray.Strategy subclass$"
    ):
        natsray.run(data, strategy=dict, out=tmp_path / "c", progress=False)
    with pytest.raises(ConfigError) as info:  # an instance is named as one, not as if the class were given
        natsray.run(data, strategy=Flaky(FlakyConfig()), out=tmp_path / "d", progress=False)
    assert str(info.value) == (
        "strategy: expected a natsray.Strategy subclass (or set strategy.name), got an instance of "
        "labstrat.flaky:Flaky: pass the class"
    )


def test_a_failing_strategy_run_from_python_says_how_to_resume_in_the_form_the_run_needs(
    package: Path, tmp_path: Path
) -> None:
    """As the CLI says it: 'natsray resume DIR' for a run the shell can continue; for one scoring with a
    Python object (which the shell refuses), natsray.load_run('DIR').resume(evaluator=...)."""
    raised = f"strategy labstrat.flaky:Flaky: tell raised KeyError: 'missing' (flaky.py:{LINE})"
    with pytest.raises(natsray.StrategyError) as info:
        natsray.run(config(fail_in="tell"), out=tmp_path / "cls", progress=False)
    assert (
        str(info.value) == f"{raised}; after fixing it, 'natsray resume {tmp_path / 'cls'}' continues the run"
    )
    assert isinstance(info.value.__cause__, KeyError)
    data = {**config(fail_in="tell"), "evaluator": {"cheap": True}}
    with pytest.raises(natsray.StrategyError) as info:
        natsray.run(data, evaluator=lambda arch, context: {"score": 1.0}, out=tmp_path / "fn", progress=False)
    resume = f"natsray.load_run({str(tmp_path / 'fn')!r}).resume(evaluator=...)"
    assert str(info.value) == f"{raised}; after fixing it, {resume} continues the run"


def test_a_run_stopped_by_sigterm_has_a_summary_saying_interrupted(package: Path, tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        natsray.run(config(sigterm_at=5), out=tmp_path / "run", progress=False)
    run = natsray.load_run(tmp_path / "run")
    assert not run.finished and run.summary["stop_reason"] == "interrupted"
    assert run.resume(progress=False).summary["stop_reason"] == "budget: evaluations"


def test_a_plugin_sweep_resumes_from_any_directory_and_never_counts_finished_runs_as_failed(
    tmp_path: Path,
) -> None:
    """In subprocesses: the project directory is on no import path but the one ``working_dir: .`` gives."""
    project = tmp_path / "project"
    (project / "labstrat").mkdir(parents=True)
    (project / "labstrat" / "__init__.py").write_text("")
    (project / "labstrat" / "flaky.py").write_text(textwrap.dedent(STRATEGY))
    data = {**config(), "ray": {"runtime_env": {"working_dir": "."}}}
    names = {"random": "random", "flaky": "labstrat.flaky:Flaky"}
    data["sweep"] = {"seeds": [0, 1], "grid": {"s": {k: {"strategy.name": v} for k, v in names.items()}}}
    write(project / "sweep.yaml", data)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-c", "import sys; from natsray.cli import main; sys.exit(main())", *args]
        return subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
        )

    out = project / "out"
    assert (
        cli("run", "sweep.yaml", "--out", "out", "--parallel", "1", "--no-progress", cwd=project).returncode
        == 0
    )
    plan = yaml.safe_load((out / "sweep.yaml").read_text())
    assert plan["cwd"] == str(project)

    plan["seeds"] = [0, 1, 2]  # one more seed per grid point; the old plan form: no cwd
    del plan["cwd"]
    (out / "sweep.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
    done = cli("resume", str(out), "--parallel", "1", "--no-progress", cwd=elsewhere)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("natsray:")]
    hint = (
        "no module named 'labstrat'; looked for in "
        f"{elsewhere} (ray.runtime_env) and the installed packages: run natsray from the directory holding "
        "'labstrat', or set ray.runtime_env.working_dir (or PYTHONPATH) to the directory holding 'labstrat'"
    )
    assert errors == [  # the finished runs skipped, each grid point's new run said once
        "natsray: grid point s=random: 1 unfinished run(s) not run: sweep.yaml: evaluator.type: "
        f"'labstrat.flaky:Convs': {hint}",
        "natsray: grid point s=flaky: 1 unfinished run(s) not run: sweep.yaml: strategy.name: "
        f"'labstrat.flaky:Flaky': {hint}",
        f"natsray: 2 of 6 runs failed (listed above and in {out / 'sweep-runs.jsonl'}); "
        f"after fixing the cause, 'natsray resume {out}' runs them",
    ], done.stderr

    plan["cwd"] = str(project)  # as natsray writes it now
    (out / "sweep.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
    done = cli("resume", str(out), "--parallel", "1", "--no-progress", cwd=elsewhere)
    assert done.returncode == 0, done.stderr[-2000:]
    outcomes = [json.loads(line) for line in (out / "sweep-runs.jsonl").read_text().splitlines()]
    done_runs = ["/".join(Path(line["run_dir"]).parts[-2:]) for line in outcomes if line["status"] == "done"]
    assert sorted(done_runs) == sorted(f"s={p}/seed-{s}" for p in ("random", "flaky") for s in (0, 1, 2))


def test_validate_of_a_sweep_says_the_engine_of_its_runs(
    package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "x.yaml", config())
    assert main(["validate", str(path), "--seeds", "0-1", "--parallel", "1"]) == 0
    assert capsys.readouterr().out == (
        f"OK: {path}: sweep of 2 runs (1 grid point(s) x 2 seed(s)), "
        "each run's engine async in-process; runs one at a time in the natsray process (no Ray)\n"
    )
    assert main(["validate", str(path), "--seeds", "0-1", "--parallel", "2"]) == 0
    assert capsys.readouterr().out.endswith("; runs on Ray\n")  # a plugin's evaluator: never forked
