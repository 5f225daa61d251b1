"""The outcome of a run (``summary.json``), computed from its journal records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from natsray.strategies.selection import dominates

__all__ = ["RunSummary", "pareto_front", "summarize"]


@dataclass(frozen=True)
class RunSummary:
    """What ``summary.json`` holds.

    Attributes:
        best_arch: NATS string of the best cell (max fitness; lexicographic over objectives
            for multi-objective runs), None when nothing succeeded.
        best_fitness: Its fitness tuple (minimised objectives negated).
        best_objectives: Its raw objective values.
        best_metrics: Its report metrics.
        best_candidate_id: Its candidate id.
        evaluations: Evaluations finished (cache hits excluded, failures included).
        failed: Evaluations that failed.
        cached: Asks answered from the de-duplication cache.
        wall_seconds: Real seconds the run took (summed over resumes).
        simulated_seconds: Simulated wall clock (max finish time) in ``simulated`` mode; the
            sum of costs in the other modes (the clock of one worker).
        total_cost_seconds: Sum of the evaluations' ``cost_s``.
        stop_reason: Why the run stopped (``budget: evaluations``, ``strategy finished``, ...).
        objectives: The objectives, as ``name:max`` / ``name:min``.
        pareto_front: For multi-objective runs, the non-dominated evaluated cells
            (``candidate_id``, ``arch``, ``objectives``); None for one objective.
        ray_calls: Remote evaluation calls made (0 without Ray).
        mode: The engine mode.
    """

    best_arch: str | None
    best_fitness: tuple[float, ...] | None
    best_objectives: Mapping[str, float] | None
    best_metrics: Mapping[str, Any] | None
    best_candidate_id: int | None
    evaluations: int
    failed: int
    cached: int
    wall_seconds: float
    simulated_seconds: float
    total_cost_seconds: float
    stop_reason: str | None
    objectives: tuple[str, ...]
    pareto_front: tuple[Mapping[str, Any], ...] | None
    ray_calls: int
    mode: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (tuples become lists)."""
        data = asdict(self)
        for key in ("best_fitness", "objectives", "pareto_front"):
            if data[key] is not None:
                data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSummary:
        """Inverse of :meth:`to_dict`."""
        values = dict(data)
        for key in ("best_fitness", "objectives", "pareto_front"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values)


def pareto_front(points: Sequence[tuple[Any, Sequence[float]]]) -> list[tuple[Any, Sequence[float]]]:
    """The non-dominated ``(item, fitness)`` pairs (fitness maximised), in input order.

    Only a lexicographically larger point can dominate, so scanning in descending order
    against the front found so far is enough (and fast: the front is small).
    """
    order = sorted(range(len(points)), key=lambda i: tuple(points[i][1]), reverse=True)
    front: list[int] = []
    for i in order:
        if not any(dominates(points[j][1], points[i][1]) for j in front):
            front.append(i)
    return [points[i] for i in sorted(front)]


def summarize(
    records: Sequence[Mapping[str, Any]],
    objectives: Sequence[str],
    *,
    wall_seconds: float,
    simulated_seconds: float,
    stop_reason: str | None,
    ray_calls: int,
    mode: str,
) -> RunSummary:
    """Build the summary from journal records (see :mod:`natsray.engine.runner` for their fields)."""
    evaluated = [record for record in records if not record.get("cached")]
    scored = [record for record in evaluated if record.get("fitness") is not None]
    best = max(scored, key=lambda record: tuple(record["fitness"]), default=None)
    front = None
    if len(objectives) > 1:
        unique: dict[str, Mapping[str, Any]] = {}
        for record in scored:
            unique.setdefault(record["arch"], record)
        points = [(record, tuple(record["fitness"])) for record in unique.values()]
        front = tuple(
            {"candidate_id": r["candidate_id"], "arch": r["arch"], "objectives": dict(r["objectives"])}
            for r, _ in pareto_front(points)
        )
    return RunSummary(
        best_arch=best["arch"] if best else None,
        best_fitness=tuple(best["fitness"]) if best else None,
        best_objectives=dict(best["objectives"]) if best else None,
        best_metrics=dict(best["metrics"]) if best else None,
        best_candidate_id=best["candidate_id"] if best else None,
        evaluations=len(evaluated),
        failed=sum(1 for record in evaluated if record["status"] != "ok"),
        cached=len(records) - len(evaluated),
        wall_seconds=wall_seconds,
        simulated_seconds=simulated_seconds,
        total_cost_seconds=sum(float(record.get("cost_s") or 0.0) for record in evaluated),
        stop_reason=stop_reason,
        objectives=tuple(objectives),
        pareto_front=front,
        ray_calls=ray_calls,
        mode=mode,
    )
