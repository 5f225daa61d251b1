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
from typing import Any, ClassVar

from natsray.records import Candidate, Result, Status

__all__ = ["BaseEvaluator", "EvaluatorError", "Score"]


class EvaluatorError(ValueError):
    """Bad evaluator configuration or input (missing archive, malformed dataset, unknown metric).

    Its message is one line naming the field, path or value and what was expected.
    """


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
    the runner batches many per Ray call), and implement :meth:`score`.
    """

    Config: ClassVar[type]
    cheap: ClassVar[bool] = False

    def __init__(self, config: Any, shared: Any = None) -> None:
        self.config = config
        self.shared = shared
        self.worker = f"{os.uname().nodename}:{os.getpid()}"

    @classmethod
    def prepare_shared(cls, config: Any) -> Any:
        """Load large read-only inputs once on the driver (default: nothing)."""
        return None

    def setup(self) -> None:  # noqa: B027 - optional hook
        """Open heavy state once per actor (archive, dataset, model cache)."""

    @abstractmethod
    def score(self, candidate: Candidate) -> Score:
        """Evaluate one candidate; raise to mark it failed."""

    def evaluate(self, batch: Sequence[Candidate]) -> list[Result]:
        """Score a batch; a candidate that raises becomes a ``FAILED`` result, never a crash."""
        results = []
        for candidate in batch:
            start = time.perf_counter()
            try:
                score = self.score(candidate)
            except Exception as exc:
                message = f"{type(exc).__name__}: {exc}".splitlines()[0]
                results.append(
                    Result.failed(
                        candidate.id, message, wall_s=time.perf_counter() - start, worker=self.worker
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
