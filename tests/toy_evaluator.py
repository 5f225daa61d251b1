"""Test doubles for the engine: a cheap deterministic evaluator and a fixed-list strategy.

Importing this module registers ``evaluator.type: toy`` and ``strategy.name: fixed``.
Ray workers import it by module name, so the tests put this folder on their PYTHONPATH.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from natsray import evaluators, strategies
from natsray.config import (
    BudgetConfig,
    EngineConfig,
    ExperimentConfig,
    OutputConfig,
    RayConfig,
    ResourcesConfig,
    SearchSpaceConfig,
)
from natsray.engine.checkpoint import JOURNAL_FILE, read_journal
from natsray.evaluators import BaseEvaluator, EvaluatorError, Score
from natsray.records import Candidate
from natsray.search_space import Arch
from natsray.strategies import Strategy
from natsray.strategies.regularized_evolution import RegularizedEvolutionConfig

__all__ = [
    "TESTS_DIR",
    "FixedList",
    "FixedListConfig",
    "ToyConfig",
    "ToyEvaluator",
    "assert_kill_and_resume_is_exact",
    "local_ray_session",
    "make_config",
    "toy_cost",
]

TESTS_DIR = str(Path(__file__).resolve().parent)

evaluators.EVALUATOR_TYPES["toy"] = "toy_evaluator:ToyEvaluator"
strategies.STRATEGIES["fixed"] = "toy_evaluator:FixedList"


def _convs(arch: Arch) -> int:
    return sum(op.startswith("nor_conv") for op in arch.ops)


def toy_cost(arch: Arch) -> float:
    """The toy's simulated training seconds: 1 + number of conv edges."""
    return 1.0 + _convs(arch)


@dataclass(frozen=True)
class ToyConfig:
    """``evaluator`` section of the toy.

    Attributes:
        crash_on: Candidate id whose evaluation kills the worker process (``os._exit``).
        marker: With ``crash_on``: crash only while this file does not exist (then create it),
            i.e. once; without it, crash every time.
        poison_every: Cells whose code is a multiple of it kill the worker process (``os._exit``)
            every time they are evaluated, as an out-of-memory kill would (97: 162 of 15,625 cells).
        fail_setup: Raise an :class:`EvaluatorError` in ``setup`` (a missing archive).
        sleep_s: Real seconds per evaluation.
        shared_size: Length of a read-only array produced once by ``prepare_shared``.
        fail: Raise ``RuntimeError(fail)`` for cells whose code is a multiple of ``fail_every``
            (default: every cell), while the file ``fail_until`` (if given) does not exist: a user's
            bug, fixed by creating the file.
    """

    type: str = "toy"
    objective: tuple[str, ...] = ("score",)
    crash_on: int | None = None
    marker: str | None = None
    poison_every: int | None = None
    fail_setup: bool = False
    sleep_s: float = 0.0
    shared_size: int = 0
    fail: str | None = None
    fail_every: int = 1
    fail_until: str | None = None


class ToyEvaluator(BaseEvaluator):
    """score = conv edges + a small hash of the code; params = conv edges; cost = 1 + conv edges.

    A candidate with a ``budget`` b scores ``score + b / 1000`` (a higher fidelity reads higher),
    costs ``b`` times as much and reports ``budget`` = b among its metrics.
    """

    calls: ClassVar[list[tuple[int, int | None]]] = []
    """``(arch code, budget)`` of every candidate scored in this process, in order."""

    Config = ToyConfig
    cheap: ClassVar[bool] = True

    prepared: ClassVar[int] = 0
    """How often ``prepare_shared`` ran in this process."""

    @classmethod
    def prepare_shared(cls, config: ToyConfig) -> Any:
        cls.prepared += 1
        return {"big": np.arange(config.shared_size, dtype=np.float64)} if config.shared_size else None

    def setup(self) -> None:
        if self.config.fail_setup:
            raise EvaluatorError("evaluator.archive: /nonexistent/archive does not exist")

    def score(self, candidate: Candidate) -> Score:
        config = self.config
        if config.crash_on == candidate.id:
            marker = Path(config.marker) if config.marker else None
            if marker is None or not marker.exists():
                if marker is not None:
                    marker.touch()
                os._exit(1)
        if config.poison_every and candidate.arch.code % config.poison_every == 0:
            os._exit(1)
        if config.sleep_s:
            time.sleep(config.sleep_s)
        failing = config.fail and candidate.arch.code % config.fail_every == 0
        if failing and (config.fail_until is None or not Path(config.fail_until).exists()):
            raise RuntimeError(config.fail)
        arch = candidate.arch
        ToyEvaluator.calls.append((arch.code, candidate.budget))
        noise = (arch.code * 7919 % 1000) / 10_000
        metrics: dict[str, Any] = {"nats_index": arch.code, "seed": candidate.seed}
        if self.shared is not None:
            big = self.shared["big"]
            metrics.update(shared_sum=float(big.sum()), shared_writeable=bool(big.flags.writeable))
        score, cost = _convs(arch) + noise, toy_cost(arch)
        if candidate.budget is not None:
            score, cost = score + candidate.budget / 1000, cost * candidate.budget
            metrics["budget"] = candidate.budget
        return Score({"score": score, "params": float(_convs(arch))}, metrics, cost)


@dataclass(frozen=True)
class FixedListConfig:
    """``strategy`` section of :class:`FixedList`: the arch codes to propose, in order."""

    name: str = "fixed"
    codes: tuple[int, ...] = ()
    repeat: bool = False


class FixedList(Strategy):
    """Proposes ``codes`` in order (forever when ``repeat``); records what it was told."""

    Config = FixedListConfig
    max_objectives: ClassVar[int] = 4

    def __init__(self, config: FixedListConfig, *, num_objectives: int = 1, seed: int = 0) -> None:
        super().__init__(config, num_objectives=num_objectives, seed=seed)
        self.told: list[int] = []

    def ask(self) -> Candidate | None:
        codes = self.config.codes
        if self.next_id >= len(codes) and not self.config.repeat:
            return None
        return self._propose(Arch.from_code(codes[self.next_id % len(codes)]))

    def tell(self, candidate: Candidate, fitness: Any) -> None:
        self.told.append(candidate.id)

    @property
    def finished(self) -> bool:
        return not self.config.repeat and self.next_id >= len(self.config.codes)

    def _state(self) -> dict[str, Any]:
        return {"told": self.told}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.told = list(state["told"])


@contextlib.contextmanager
def local_ray_session() -> Iterator[str]:
    """A fresh local Ray (2 CPUs, this folder importable by workers) for one test module; its address."""
    import ray

    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        runtime_env={"env_vars": {"PYTHONPATH": TESTS_DIR}},
    )
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def make_config(
    *,
    strategy: Any = None,
    evaluator: ToyConfig | None = None,
    budget: BudgetConfig | None = None,
    engine: EngineConfig | None = None,
    actors: int = 1,
    seed: int = 3,
    dedup: str = "arch",
    checkpoint_every: int = 5,
    address: str | None = None,
    objectives: tuple = (),
) -> ExperimentConfig:
    """A small experiment on the toy evaluator (REA P=10, S=3 by default)."""
    return ExperimentConfig(
        strategy=strategy or RegularizedEvolutionConfig(population=10, sample_size=3),
        evaluator=evaluator or ToyConfig(),
        budget=budget or BudgetConfig(evaluations=60),
        seed=seed,
        search_space=SearchSpaceConfig(dedup=dedup),
        objectives=objectives,
        resources=ResourcesConfig(actors=actors, cpus_per_actor=0.5, num_cpus=2),
        engine=engine or EngineConfig(),
        ray=RayConfig(address=address, runtime_env={"env_vars": {"PYTHONPATH": TESTS_DIR}}),
        output=OutputConfig(checkpoint_every=checkpoint_every, checkpoint_seconds=3600, progress=False),
    )


def trajectory(run_dir: str | Path) -> list[tuple]:
    """The journal as comparable tuples, sorted by candidate id (ids must be unique).

    Tuples: ``(candidate id, arch, fitness, parents, seed, budget)``.
    """
    return trajectory_of(read_journal(Path(run_dir) / JOURNAL_FILE))


def trajectory_of(records: Sequence[Mapping[str, Any]]) -> list[tuple]:
    """:func:`trajectory` of journal records (e.g. a sweep's stored run's)."""
    ids = [record["candidate_id"] for record in records]
    assert len(ids) == len(set(ids)), "a candidate was journaled twice"
    return sorted(
        (r["candidate_id"], r["arch"], r["fitness"], tuple(r["parents"]), r["seed"], r.get("budget"))
        for r in records
    )


def assert_kill_and_resume_is_exact(config: ExperimentConfig, root: Path, lines: int) -> None:
    """Run ``config`` whole, and again SIGKILLed at ``lines`` journal lines and resumed: equal."""
    from natsray.engine.runner import run_experiment

    run_experiment(config, root / "whole")
    run_killed(config, root / "killed", lines=lines)
    run_experiment(config, root / "killed", resume=True)
    assert trajectory(root / "killed") == trajectory(root / "whole")


def run_killed(config: ExperimentConfig, run_dir: Path, lines: int, *, timeout: float = 60.0) -> int:
    """Run ``config`` in a driver subprocess and SIGKILL it once the journal has ``lines`` lines.

    Returns:
        The journal length seen when the kill was sent.
    """
    pickled = run_dir.parent / f"{run_dir.name}.config.pkl"
    pickled.write_bytes(pickle.dumps(config))
    code = (
        "import pickle, sys; import toy_evaluator; from natsray.engine.runner import run_experiment; "
        f"run_experiment(pickle.loads(open({str(pickled)!r}, 'rb').read()), {str(run_dir)!r})"
    )
    env = dict(os.environ, PYTHONPATH=TESTS_DIR)
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    journal = run_dir / JOURNAL_FILE
    deadline = time.monotonic() + timeout
    seen = 0
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            seen = journal.read_bytes().count(b"\n") if journal.exists() else 0
            if seen >= lines:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
    finally:
        proc.kill()
        returncode = proc.wait()
    assert seen >= lines and returncode == -signal.SIGKILL, f"driver rc {returncode} after {seen} lines"
    return seen
