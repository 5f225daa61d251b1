"""Simulated-parallel search: W asynchronous workers on an event clock, no Ray.

Each evaluation runs in the driver (cheap evaluators only) and occupies a simulated worker
for its ``cost_s`` (the benchmark's training time). Results are told in simulated
COMPLETION order (ties broken by candidate id), and a freed worker immediately receives
the next candidate, submitted at the current simulated time.

Budget: ``budget.simulated_seconds`` limits the simulated wall clock — a new evaluation
is started only while the clock is below it, and evaluations already running finish.
With one worker the clock is the sum of costs, so this is NATS-Bench's REA protocol
(``while total_time_cost < time_budget``: the evaluation that crosses the budget counts).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Mapping
from typing import Any

from natsray.engine.scheduler import Scheduler
from natsray.evaluators import BaseEvaluator
from natsray.records import Result

__all__ = ["SimulatedPool", "run_simulated"]


class SimulatedPool:
    """The event clock of ``workers`` simulated workers.

    Attributes:
        clock: Current simulated time (the finish time of the last completion).
        running: Candidate id -> simulated submit time of each running evaluation.
        restored: Submit times of evaluations running at a checkpoint, to re-submit on resume.
    """

    def __init__(self, workers: int, state: Mapping[str, Any] | None = None) -> None:
        if workers < 1:
            raise ValueError(f"engine.simulated_workers: must be >= 1, got {workers}")
        self.workers = workers
        self.clock = float(state["clock"]) if state else 0.0
        self.running: dict[int, float] = {}
        self.restored = {int(k): float(v) for k, v in (state or {}).get("running", {}).items()}
        self._events: list[tuple[float, int, Result]] = []

    @property
    def free(self) -> int:
        """Workers with nothing to do."""
        return self.workers - len(self.running)

    def submit(self, result: Result, submitted: float | None = None) -> None:
        """Start an evaluation whose outcome is already known; it completes at submit + cost."""
        start = self.clock if submitted is None else submitted
        self.running[result.candidate_id] = start
        heapq.heappush(self._events, (start + max(result.cost_s, 0.0), result.candidate_id, result))

    def pop(self) -> tuple[float, float, Result]:
        """Advance the clock to the next completion: ``(submitted, finished, result)``."""
        finish, candidate_id, result = heapq.heappop(self._events)
        self.clock = max(self.clock, finish)
        return self.running.pop(candidate_id), finish, result

    def state_dict(self) -> dict[str, Any]:
        """JSON-able clock state (running evaluations are re-created on resume)."""
        return {"clock": self.clock, "running": {str(k): v for k, v in self.running.items()}}


def run_simulated(
    scheduler: Scheduler, evaluator: BaseEvaluator, pool: SimulatedPool, on_event: Callable[[], None]
) -> None:
    """Drive ``scheduler`` until done, evaluating in-process on the simulated clock.

    Results already in the journal (a resumed run) are taken from it instead of being
    evaluated again; candidates running at the checkpoint keep their submit times.
    """
    if pool.workers == 1 and not pool.restored and scheduler.serial:
        _run_serial(scheduler, evaluator, pool, on_event)
        return
    take, complete, evaluate, restored = scheduler.take, scheduler.complete, evaluator.evaluate, pool.restored
    while True:
        batch = take(pool.free)
        if batch:
            if scheduler.has_tail:  # a resumed run: results journaled after its checkpoint are not redone
                known = {c.id: scheduler.journaled_result(c.id) for c in batch}
                fresh = evaluate([c for c in batch if known[c.id] is None])
            else:
                known, fresh = None, evaluate(batch)
            if known is None and len(fresh) == 1 and fresh[0].candidate_id == batch[0].id:
                pool.submit(fresh[0], restored.pop(batch[0].id, None) if restored else None)
            else:
                results = {r.candidate_id: r for r in fresh}
                results |= {i: r for i, r in (known or {}).items() if r is not None}
                for candidate in batch:
                    pool.submit(results[candidate.id], restored.pop(candidate.id, None))
        if not pool.running:
            if scheduler.done:
                return
            scheduler.refill()
            if not scheduler.queue:
                scheduler.stop_reason = scheduler.stop_reason or "strategy stalled"
                return
            continue
        submitted, finished, result = pool.pop()
        candidate_id = result.candidate_id
        extra = {"sim_submit": submitted, "sim_finish": finished, "finish_time": time.time()}
        complete((result,), {candidate_id: extra})
        on_event()


def _run_serial(
    scheduler: Scheduler, evaluator: BaseEvaluator, pool: SimulatedPool, on_event: Callable[[], None]
) -> None:
    """:func:`run_simulated` with one simulated worker and a :attr:`~Scheduler.serial` scheduler (the
    NATS-Bench protocol): each evaluation starts when the one before it finished, so the event heap
    would always hold one event and is skipped. The same candidates, journal lines, clock and
    checkpoints as the general loop (tested side by side), with less work per evaluation.
    """
    deliver, evaluate, now = scheduler.deliver, evaluator.evaluate, time.time
    queue, outstanding = scheduler.queue, scheduler.outstanding  # take(1), inlined: nothing is alone
    while True:
        if not queue:
            if scheduler.done:
                return
            scheduler.refill()
            if not queue:
                scheduler.stop_reason = scheduler.stop_reason or "strategy stalled"
                return
            continue
        candidate = outstanding[queue.popleft()]
        candidate_id = candidate.id
        results = evaluate([candidate])
        if len(results) == 1 and results[0].candidate_id == candidate_id:
            result = results[0]
        else:  # as the general loop takes it (a KeyError when the evaluator left it out)
            result = {r.candidate_id: r for r in results}[candidate_id]
        submitted = pool.clock
        finished = submitted + max(result.cost_s, 0.0)
        pool.clock = max(submitted, finished)  # as pop() moves it (a NaN cost leaves it)
        deliver(result, {"sim_submit": submitted, "sim_finish": finished, "finish_time": now()})
        on_event()
