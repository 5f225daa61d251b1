"""The evaluator interface: built once per actor, scores batches of candidates.

Evaluators know nothing of Ray. The runner builds one per actor with
``cls(config, shared)``, calls :meth:`BaseEvaluator.setup` once, then
:meth:`BaseEvaluator.evaluate` on batches. Heavy read-only inputs (a metric table, a
dataset) are produced once on the driver by :meth:`BaseEvaluator.prepare_shared` and
handed to every actor through Ray's object store.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from natsray.errors import EvaluatorError, EvaluatorSetupError, component_name, failure_line
from natsray.records import Candidate, Result, Status

__all__ = [
    "BaseEvaluator",
    "EvaluatorError",
    "EvaluatorSetupError",
    "Score",
    "build_evaluator",
    "evaluator_name",
    "failure_line",
]

_PROBE_CODES = (1234, 7777, 15000)
"""Cells (codes) :meth:`BaseEvaluator.preflight` evaluates: three ordinary cells of the space."""


@dataclass(frozen=True, slots=True)
class Score:
    """What one evaluation produced, before it is wrapped in a :class:`Result`."""

    objectives: Mapping[str, float]
    metrics: Mapping[str, float | None]
    cost_s: float


class BaseEvaluator(ABC):
    """Base class of all evaluators.

    Subclasses set ``Config`` (a frozen dataclass parsed from the ``evaluator`` YAML
    section), ``cheap`` (True when one evaluation costs microseconds to milliseconds, so
    the runner batches many per Ray call), and implement :meth:`score`. A subclass whose
    score depends on the cell alone (not on the candidate's seed) returns True from
    :meth:`per_cell`; :meth:`evaluate` then scores each cell once and answers repeats from
    memory (at most one :class:`Score` per cell of the space and budget).

    A candidate's :attr:`~natsray.records.Candidate.budget` (None: the configured fidelity) is
    the subclass's to interpret in :meth:`score` (hp for the benchmark, epochs for training).
    """

    Config: ClassVar[type]
    cheap: ClassVar[bool] = False

    def __init__(self, config: Any, shared: Any = None) -> None:
        self.config = config
        self.shared = shared
        self.worker = f"{os.uname().nodename}:{os.getpid()}"
        self._scores: dict[Any, Score | str] = {}  # per_cell: code, or (code, budget) -> score

    def per_cell(self) -> bool:
        """True when :meth:`score` depends only on ``candidate.arch`` (default: False)."""
        return False

    @classmethod
    def is_cheap(cls, config: Any) -> bool:
        """Whether evaluations under ``config`` are cheap (default: the class's ``cheap``).

        A class whose cost depends on its config (the function evaluator's ``cheap`` option)
        answers here; the runner batches and checks the engine mode by it."""
        return cls.cheap

    @classmethod
    def for_run(cls, config: Any, run_dir: Path) -> Any:
        """``config`` with defaults that live in the run directory filled in (default: unchanged)."""
        return config

    @classmethod
    def prepare_shared(cls, config: Any) -> Any:
        """Load large read-only inputs once on the driver (default: nothing)."""
        return None

    @classmethod
    def preflight(cls, config: Any, shared: Any, budgets: Sequence[int] = ()) -> list[str]:
        """Check in the driver, before Ray starts, what the run's actors would refuse; return warnings.

        Called by ``natsray validate`` and ``natsray run`` after :meth:`prepare_shared` (``shared`` is
        its result). The default, for a cheap evaluator (:meth:`is_cheap`): :meth:`setup`, then,
        with ``budgets`` (a multi-fidelity strategy's rungs), a few probe cells (:meth:`probe_codes`)
        are evaluated at every budget; a budget at which every probe fails while another budget
        serves some of them is refused (a cell missing from a partial archive fails at every budget:
        no verdict). Other evaluators: nothing (an override may check more, e.g. files their actors open).

        Returns:
            One-line warnings to print before the run (e.g. part of the space not served).

        Raises:
            EvaluatorError: ``strategy.budgets: rung B: <the error every probe got there>``.
            EvaluatorSetupError: the evaluator's ``__init__`` or ``setup`` raised (:func:`build_evaluator`).
        """
        if not cls.is_cheap(config):
            return []
        from natsray.search_space import Arch

        evaluator = build_evaluator(cls, config, shared)
        if not budgets:
            return []
        probes = [
            Candidate(i, Arch.from_code(code)) for i, code in enumerate(cls.probe_codes(config, shared))
        ]
        rungs = {
            budget: evaluator.evaluate([p._replace(budget=budget) for p in probes]) for budget in budgets
        }
        served = [budget for budget, results in rungs.items() if any(result.ok for result in results)]
        for budget, results in rungs.items():
            if served and results and budget not in served:
                error = (results[0].error or "failed").removeprefix("EvaluatorError: ")
                raise EvaluatorError(f"strategy.budgets: rung {budget}: {error}")
        return []

    @classmethod
    def probe_codes(cls, config: Any, shared: Any) -> Sequence[int]:
        """Cells (codes) :meth:`preflight` evaluates: cells this config serves (default: three
        ordinary cells of the space)."""
        return _PROBE_CODES

    @classmethod
    def prepare_sweep_shared(cls, config: Any, runs: int) -> Any:
        """The shared inputs when ``runs`` runs (a sweep's) use ``config``: prepared once, handed to
        each run's evaluator as ``shared``. Default: :meth:`prepare_shared`. An evaluator whose
        single run reads lazily (the ``benchmark`` evaluator opens its archive per run) may prepare
        more here; each run's results must stay those of the run alone."""
        return cls.prepare_shared(config)

    def setup(self) -> None:  # noqa: B027 - optional hook
        """Open heavy state once per actor (archive, dataset, model cache)."""

    @abstractmethod
    def score(self, candidate: Candidate) -> Score:
        """Evaluate one candidate; raise to mark it failed."""

    def evaluate(self, batch: Sequence[Candidate]) -> list[Result]:
        """Score a batch; a candidate that raises becomes a ``FAILED`` result, never a crash."""
        if self.per_cell():
            return self._evaluate_per_cell(batch)
        results = []
        for candidate in batch:
            start = time.perf_counter()
            try:
                score = self.score(candidate)
            except Exception as exc:
                results.append(
                    Result.failed(
                        candidate.id,
                        failure_line(exc),
                        wall_s=time.perf_counter() - start,
                        worker=self.worker,
                    )
                )
                continue
            results.append(
                Result(
                    candidate_id=candidate.id,
                    status=Status.OK,
                    objectives=dict(score.objectives),
                    metrics=dict(score.metrics),
                    cost_s=float(score.cost_s),
                    wall_s=time.perf_counter() - start,
                    worker=self.worker,
                )
            )
        return results

    def _evaluate_per_cell(self, batch: Sequence[Candidate]) -> list[Result]:
        """:meth:`evaluate` with one :meth:`score` call per cell (by code); results share its dicts.

        ``wall_s`` of each result is the batch's wall time divided by its size.
        """
        scores, worker, ok = self._scores, self.worker, Status.OK
        start = time.perf_counter()
        if len(batch) == 1:  # one simulated worker's call (the NATS protocol): no lists to zip
            candidate = batch[0]
            budget = candidate.budget
            code = candidate.arch.code if budget is None else (candidate.arch.code, budget)
            score = scores.get(code)
            if score is None:
                score = self._score_cell(candidate, code)
            wall = time.perf_counter() - start
            if type(score) is Score:
                return [
                    Result(
                        candidate.id, ok, score.objectives, score.metrics, score.cost_s, wall, None, worker
                    )
                ]
            return [Result.failed(candidate.id, score, wall_s=wall, worker=worker)]  # type: ignore[arg-type]
        answers = []
        for candidate in batch:
            budget = candidate.budget
            code = candidate.arch.code if budget is None else (candidate.arch.code, budget)
            score = scores.get(code)
            answers.append(self._score_cell(candidate, code) if score is None else score)
        wall = (time.perf_counter() - start) / max(len(batch), 1)
        return [
            Result(c.id, ok, s.objectives, s.metrics, s.cost_s, wall, None, worker)
            if type(s) is Score
            else Result.failed(c.id, s, wall_s=wall, worker=worker)  # type: ignore[arg-type]
            for c, s in zip(batch, answers, strict=True)
        ]

    def _score_cell(self, candidate: Candidate, code: Any) -> Score | str:
        """:meth:`score` of a cell not scored yet, kept under ``code``: a :class:`Score` of plain dicts,
        or the one-line error it raised."""
        try:
            score = self.score(candidate)
            answer: Score | str = Score(dict(score.objectives), dict(score.metrics), float(score.cost_s))
        except Exception as exc:
            answer = failure_line(exc)
        self._scores[code] = answer
        return answer


def evaluator_name(cls: type) -> str:
    """``module:Class``: how messages name an evaluator class (as ``evaluator.type`` can)."""
    return component_name(cls)


def build_evaluator(cls: type[BaseEvaluator], config: Any, shared: Any = None) -> BaseEvaluator:
    """``cls(config, shared)``, then its :meth:`~BaseEvaluator.setup`: an evaluator ready to score.

    Raises:
        EvaluatorError: raised by either (bad input: a missing file, a bad value), passed on.
        EvaluatorSetupError: anything else either raised (the user's code failing):
            ``evaluator mylab.evals:Broken: __init__ raised KeyError: 'licence' (evals.py:46)``,
            from the exception.
    """
    method = "__init__"
    try:
        evaluator = cls(config, shared)
        method = "setup"
        evaluator.setup()
    except EvaluatorError:
        raise
    except Exception as exc:
        raise setup_error(cls, method, exc) from exc
    return evaluator


def setup_error(cls: type, method: str, exc: BaseException) -> EvaluatorSetupError:
    """The :class:`EvaluatorSetupError` of ``cls.method`` having raised ``exc``."""
    return EvaluatorSetupError(f"evaluator {evaluator_name(cls)}: {method} raised {failure_line(exc)}")
