"""The outcome of a run (``summary.json``), kept up to date as results arrive.

:class:`RunStats` is updated once per journal record (O(1), plus the set of distinct cells
for multi-objective runs), so a checkpoint never re-reads the journal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from natsray.strategies.selection import dominates

__all__ = ["RunStats", "RunSummary", "pareto_front", "summarize"]


@dataclass(frozen=True)
class RunSummary:
    """What ``summary.json`` holds.

    Attributes:
        best_arch: NATS string of the best cell (max fitness; lexicographic over objectives
            for multi-objective runs; among evaluations with a candidate ``budget``, those at
            the highest budget come first), None when nothing succeeded.
        best_fitness: Its fitness tuple (minimised objectives negated).
        best_objectives: Its raw objective values.
        best_metrics: Its report metrics.
        best_candidate_id: Its candidate id.
        evaluations: Evaluations finished (cache hits excluded, failures included).
        failed: Evaluations that failed.
        cached: Proposals of an already evaluated cell (class) answered from the run's cache
            (no journal line, no evaluation cost); 0 for natsray's strategies with dedup on,
            which propose novel cells only.
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
        batch_size: Candidates per evaluator call the run used (``engine.batch_size`` or its
            default); None where not recorded.
        window: Most candidates asked but not yet told (``engine.max_in_flight`` or its default).
        sessions: ``[start, end]`` (Unix seconds) of each time the run ran: its start and every
            resume, ``end`` as of its last checkpoint. The time between one's end (or its last
            evaluation's finish, when later) and the next's start is when the run was stopped, left
            out of the wall clock the plots and reports draw
            (:func:`natsray.experiment.run_data.active_seconds`); None where not recorded (runs of
            natsray before 2026-12-04).
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
    batch_size: int | None = None
    window: int | None = None
    sessions: tuple[tuple[float, float], ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (tuples become lists)."""
        data = {field.name: getattr(self, field.name) for field in fields(self)}
        for key in ("best_objectives", "best_metrics"):
            if data[key] is not None:
                data[key] = dict(data[key])
        for key in ("best_fitness", "objectives"):
            if data[key] is not None:
                data[key] = list(data[key])
        if data["sessions"] is not None:
            data["sessions"] = [list(session) for session in data["sessions"]]
        if data["pareto_front"] is not None:
            data["pareto_front"] = [
                {k: dict(v) if isinstance(v, Mapping) else v for k, v in point.items()}
                for point in data["pareto_front"]
            ]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSummary:
        """Inverse of :meth:`to_dict`."""
        values = dict(data)
        for key in ("best_fitness", "objectives", "pareto_front"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        if values.get("sessions") is not None:
            values["sessions"] = tuple(tuple(session) for session in values["sessions"])
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


class RunStats:
    """Running totals of a run's journal records, for :class:`RunSummary`.

    Args:
        num_objectives: Objectives per fitness tuple; with more than one the distinct cells
            are kept for the Pareto front.
    """

    def __init__(self, num_objectives: int) -> None:
        self.evaluations = 0
        self.failed = 0
        self.total_cost = 0.0
        self.best: Mapping[str, Any] | None = None
        self._best_fitness: tuple[float, ...] | None = None
        self._multi = num_objectives > 1
        self._cells: dict[str, Mapping[str, Any]] = {}

    def add(self, record: Mapping[str, Any]) -> None:
        """Count one evaluation record (a journal line)."""
        fitness = record.get("fitness")
        fitness = None if fitness is None else tuple(fitness)
        budget = record.get("budget")
        ok = record["status"] == "ok"
        if self.count(record["arch"], ok, float(record.get("cost_s") or 0.0), fitness, budget):
            self.keep(record["arch"], fitness, record, budget)  # type: ignore[arg-type]

    def count(
        self, arch: str, ok: bool, cost_s: float, fitness: tuple[float, ...] | None, budget: int | None = None
    ) -> bool:
        """Count one evaluation; True when its record must be handed over with :meth:`keep`.

        ``budget`` is the candidate's fidelity (None: none given): a better fitness at a lower
        budget never replaces the best at a higher one.
        """
        self.evaluations += 1
        if not ok:
            self.failed += 1
        self.total_cost += cost_s
        if fitness is None:
            return False
        rank = fitness if budget is None else (budget, *fitness)
        return (self._best_fitness is None or rank > self._best_fitness) or (
            self._multi and arch not in self._cells
        )

    def keep(
        self, arch: str, fitness: tuple[float, ...], record: Mapping[str, Any], budget: int | None = None
    ) -> None:
        """Keep the record of an evaluation :meth:`count` asked for (the best, or a new cell)."""
        rank = fitness if budget is None else (budget, *fitness)
        if self._best_fitness is None or rank > self._best_fitness:
            self._best_fitness = rank
            self.best = record
        if self._multi and arch not in self._cells:
            self._cells[arch] = record

    def summary(
        self,
        objectives: Sequence[str],
        *,
        cached: int,
        wall_seconds: float,
        simulated_seconds: float,
        stop_reason: str | None,
        ray_calls: int,
        mode: str,
    ) -> RunSummary:
        """The summary of the records counted so far."""
        best = self.best
        front = None
        if self._multi:
            points = [(record, tuple(record["fitness"])) for record in self._cells.values()]
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
            evaluations=self.evaluations,
            failed=self.failed,
            cached=cached,
            wall_seconds=wall_seconds,
            simulated_seconds=simulated_seconds,
            total_cost_seconds=self.total_cost,
            stop_reason=stop_reason,
            objectives=tuple(objectives),
            pareto_front=front,
            ray_calls=ray_calls,
            mode=mode,
        )


def summarize(
    records: Sequence[Mapping[str, Any]],
    objectives: Sequence[str],
    *,
    wall_seconds: float,
    simulated_seconds: float,
    stop_reason: str | None,
    ray_calls: int,
    mode: str,
    cached: int = 0,
) -> RunSummary:
    """Build the summary from journal records (see :mod:`natsray.engine.runner` for their fields).

    Lines of journals written before cache answers stopped being journaled (``cached: true``)
    are counted as ``cached``, not as evaluations.
    """
    stats = RunStats(len(objectives))
    for record in records:
        if record.get("cached"):
            cached += 1
        else:
            stats.add(record)
    return stats.summary(
        objectives,
        cached=cached,
        wall_seconds=wall_seconds,
        simulated_seconds=simulated_seconds,
        stop_reason=stop_reason,
        ray_calls=ray_calls,
        mode=mode,
    )
