"""An evaluator CLASS's faults, reached as a user reaches a plugin (a package in a temp directory, named
by import path), in-process: a bad objective value (not a number, NaN, missing) makes that candidate's
evaluation FAILED with one line, in every local engine loop, and the run goes on and resumes; an
``__init__`` / ``setup`` that raises is one line naming the class and method, exit code 1, and its
traceback under ``NATSRAY_DEBUG=1``. (On Ray actors: test_plugins.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from user_package import user_package

from natsray import EvaluatorSetupError
from natsray.cli import main
from natsray.config import config_from_dict
from natsray.engine.checkpoint import read_journal
from natsray.engine.runner import run_experiment
from natsray.search_space import Arch

CODES = (1234, 7777, 15000)
"""The cells the fixture strategy proposes, in turn: the second gets the bad value."""

EVALS = '''
"""A user's evaluator that returns a bad value for one cell, and one that cannot be built."""

import math
from dataclasses import dataclass

import numpy as np

from natsray import Arch, BaseEvaluator, Candidate, Score, Strategy

BAD = {"text": "high", "nan": math.nan, "none": None, "inf": math.inf}


@dataclass(frozen=True)
class ConvsConfig:
    type: str = "faultpkg.evals:Convs"
    objective: tuple = ("convs",)
    bad: str = "text"  # what cell bad_code gets: text | nan | none | inf | missing
    bad_code: int = 7777
    cell_only: bool = True  # per_cell(): scored once per cell, repeats answered from memory


class Convs(BaseEvaluator):
    Config = ConvsConfig
    cheap = True

    def per_cell(self):
        return self.config.cell_only

    def score(self, candidate: Candidate) -> Score:
        convs = float(sum(op == "nor_conv_3x3" for op in candidate.arch.ops))
        metrics = {"test_accuracy": math.nan}  # a NaN metric is allowed: the benchmark lacks a value
        if candidate.arch.code != self.config.bad_code:
            return Score({"convs": convs}, metrics, cost_s=1.0)
        if self.config.bad == "missing":
            return Score({"params": 1.0}, metrics, cost_s=1.0)
        if self.config.bad == "numpy":  # scalars of numpy (or torch): numbers
            return Score({"convs": np.float32(convs)}, {"size": np.int64(3)}, cost_s=1.0)
        if self.config.bad == "array":  # a metric that is no number
            return Score({"convs": convs}, {"size": np.array([1.0, 2.0])}, cost_s=1.0)
        return Score({"convs": BAD[self.config.bad]}, metrics, cost_s=1.0)


class InitRaises(Convs):
    def __init__(self, config, shared):
        super().__init__(config, shared)
        self.key = {}["licence"]


class SetupRaises(Convs):
    def setup(self):
        raise RuntimeError("GPU not found")


@dataclass(frozen=True)
class CycleConfig:
    name: str = "faultpkg.evals:Cycle"
    codes: tuple = (1234, 7777, 15000)


class Cycle(Strategy):
    """Proposes its cells in turn, forever (with dedup: none, a cell comes back)."""

    Config = CycleConfig

    def ask(self):
        codes = self.config.codes
        return self._propose(Arch.from_code(codes[self.next_id % len(codes)]))

    def tell(self, candidate, fitness):
        pass

    def _state(self):
        return {}

    def _load_state(self, state):
        pass
'''


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``faultpkg.evals`` in a temp dir on ``sys.path`` (as a user's project directory)."""
    with user_package(tmp_path_factory.mktemp("project"), "faultpkg", {"evals": EVALS}) as root:
        yield root


def line_of(text: str) -> str:
    """``evals.py:N``: where ``text`` is in the module EVALS."""
    return f"evals.py:{next(i for i, line in enumerate(EVALS.splitlines(), 1) if text in line)}"


def experiment(engine: dict[str, Any], evaluations: int = 9, **evaluator: Any) -> dict[str, Any]:
    return {
        "seed": 0,
        "strategy": {"name": "faultpkg.evals:Cycle"},
        "search_space": {"dedup": "none"},
        "evaluator": {"type": "faultpkg.evals:Convs", **evaluator},
        "budget": {"evaluations": evaluations},
        "engine": engine,
        "output": {"progress": False, "plots": False},
    }


SIMULATED_SERIAL = {"mode": "simulated", "simulated_workers": 1}  # the one-worker loop (Scheduler.deliver)
SIMULATED = {"mode": "simulated", "simulated_workers": 2}  # the general event loop
IN_PROCESS = {"in_process": True}

CONVS = "EvaluatorError: faultpkg.evals:Convs"
ERRORS = {
    "text": f"{CONVS} returned objective 'convs' = 'high' (str), expected a number",
    "none": f"{CONVS} returned objective 'convs' = None (NoneType), expected a number",
    "nan": f"{CONVS} returned objective 'convs' = nan, expected a number, not NaN",
    "missing": f"{CONVS} did not return objective 'convs' (it returned: params)",
}


@pytest.mark.parametrize("engine", [SIMULATED_SERIAL, SIMULATED, IN_PROCESS], ids=["serial", "sim2", "local"])
@pytest.mark.parametrize("bad", sorted(ERRORS))
@pytest.mark.parametrize("cell_only", [True, False], ids=["per_cell", "per_candidate"])
def test_a_bad_objective_value_fails_its_evaluations_and_the_run_goes_on(
    package: Path, tmp_path: Path, engine: dict[str, Any], bad: str, cell_only: bool
) -> None:
    config = config_from_dict(experiment(engine, bad=bad, cell_only=cell_only))
    summary = run_experiment(config, tmp_path / "run")
    records = sorted(read_journal(tmp_path / "run" / "evaluations.jsonl"), key=lambda r: r["candidate_id"])
    # the bad cell comes back every third candidate: each time FAILED (a per-cell cache keeps no bad OK)
    assert [r["status"] for r in records] == ["ok", "failed", "ok"] * 3
    assert {r["error"] for r in records[1::3]} == {ERRORS[bad]}
    assert all(r["fitness"] is None and r["objectives"] == {} for r in records[1::3])
    assert all(r["cost_s"] == 1.0 for r in records)  # its cost was spent all the same
    ok = records[0::3] + records[2::3]
    assert all(r["fitness"] == [r["objectives"]["convs"]] for r in ok)
    assert all(r["metrics"]["test_accuracy"] != r["metrics"]["test_accuracy"] for r in ok)  # NaN metric: OK
    assert (summary.evaluations, summary.failed) == (9, 3)
    best = max(CODES[0], CODES[2], key=lambda c: sum(op == "nor_conv_3x3" for op in Arch.from_code(c).ops))
    assert summary.best_arch == Arch.from_code(best).to_str()


def test_an_infinite_objective_value_is_a_value(package: Path, tmp_path: Path) -> None:
    """``inf`` / ``-inf`` are ordered (the ``proxy`` evaluator's naswot is -inf for some cells): OK."""
    summary = run_experiment(config_from_dict(experiment(SIMULATED_SERIAL, bad="inf")), tmp_path / "run")
    records = read_journal(tmp_path / "run" / "evaluations.jsonl")
    assert [r["status"] for r in records] == ["ok"] * 9
    assert [r["fitness"] for r in records[1::3]] == [[float("inf")]] * 3
    assert summary.best_arch == Arch.from_code(CODES[1]).to_str()


def test_numpy_scalars_are_numbers_and_an_array_metric_is_not(package: Path, tmp_path: Path) -> None:
    run_experiment(config_from_dict(experiment(IN_PROCESS, 3, bad="numpy")), tmp_path / "numpy")
    record = read_journal(tmp_path / "numpy" / "evaluations.jsonl")[1]
    assert (record["status"], record["objectives"], record["metrics"]) == ("ok", {"convs": 0.0}, {"size": 3})
    assert record["fitness"] == [0.0] and type(record["metrics"]["size"]) is int
    run_experiment(config_from_dict(experiment(IN_PROCESS, 3, bad="array")), tmp_path / "array")
    records = read_journal(tmp_path / "array" / "evaluations.jsonl")
    assert [r["status"] for r in records] == ["ok", "failed", "ok"]
    assert (
        records[1]["error"]
        == f"{CONVS} returned metric 'size' = array([1., 2.]) (ndarray), expected a number"
    )


def test_a_run_with_a_bad_value_resumes(package: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``natsray run`` finishes, ``natsray resume --set budget.evaluations=...`` continues it: the journal
    is the one straight run's (the failed evaluation read back from it)."""
    for name, evaluations in (("short", 5), ("long", 9)):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(experiment(SIMULATED_SERIAL, evaluations)))
        assert main(["run", str(tmp_path / f"{name}.yaml"), "--out", str(tmp_path / name)]) == 0
    assert main(["resume", str(tmp_path / "short"), "--set", "budget.evaluations=9"]) == 0
    capsys.readouterr()

    def journal(name: str) -> list[tuple[Any, ...]]:
        records = read_journal(tmp_path / name / "evaluations.jsonl")
        return [(r["candidate_id"], r["arch"], r["status"], r["fitness"], r.get("error")) for r in records]

    assert journal("short") == journal("long")
    assert [status for _, _, status, _, _ in journal("short")] == ["ok", "failed", "ok"] * 3


SETUP_ERRORS = {
    "InitRaises": f"evaluator faultpkg.evals:InitRaises: __init__ raised KeyError: 'licence' "
    f"({line_of('licence')})",
    "SetupRaises": f"evaluator faultpkg.evals:SetupRaises: setup raised RuntimeError: GPU not found "
    f"({line_of('GPU not')})",
}


@pytest.mark.parametrize("cls", sorted(SETUP_ERRORS))
def test_an_evaluator_that_cannot_be_built_is_one_line_naming_class_and_method(
    package: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, cls: str
) -> None:
    data = experiment(IN_PROCESS, type=f"faultpkg.evals:{cls}")
    with pytest.raises(EvaluatorSetupError) as raised:  # the engine's own set-up (no CLI pre-flight)
        run_experiment(config_from_dict(data), tmp_path / "api")
    assert str(raised.value) == SETUP_ERRORS[cls]
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.delenv("NATSRAY_DEBUG", raising=False)
    assert (
        main(["run", str(path), "--out", str(tmp_path / "cli")]) == 1
    )  # the user's code failed: not bad input
    err = capsys.readouterr().err
    assert err == (
        f"natsray: failed: EvaluatorSetupError: {SETUP_ERRORS[cls]} (NATSRAY_DEBUG=1 shows the traceback)\n"
    )
    monkeypatch.setenv("NATSRAY_DEBUG", "1")
    with pytest.raises(EvaluatorSetupError) as raised:
        main(["run", str(path), "--out", str(tmp_path / "debug")])
    cause = raised.value.__cause__  # the user's exception, with its traceback (printed under it)
    assert type(cause).__name__ == ("KeyError" if cls == "InitRaises" else "RuntimeError")
    frames = [frame.filename for frame in __import__("traceback").extract_tb(cause.__traceback__)]
    assert frames[-1] == str(package / "faultpkg" / "evals.py")
