"""The Ray-free heart of the driver: strategy ask/tell, de-duplication, budgets, journal.

:class:`Scheduler` owns every decision that shapes the search trajectory, so the same
decisions are taken whether results come from Ray actors, the driver process, the
simulated clock or a journal being replayed on resume:

* after every delivered result it *releases* what may be told (everything in ``async``
  mode, the lowest outstanding ids in ``ordered`` mode) and *refills* the window, asking
  until ``window`` candidates are outstanding, the strategy returns None, or a stop
  condition holds. Given the order of delivered results the sequence of strategy calls is
  therefore fixed, which makes a resume exact: restore the checkpoint, deliver the journal
  tail again, and the same candidates are asked again with the same ids and seeds.
* a candidate whose cell was already evaluated (or is being evaluated) is answered from
  the run's cache and never costs an evaluation.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from natsray.engine.checkpoint import Journal
from natsray.experiment.config import BudgetConfig
from natsray.records import Candidate, Objective, Result, Status, fitness_of
from natsray.search_space import Arch
from natsray.strategies import Strategy

__all__ = ["MAX_CACHE_STREAK", "Scheduler"]

MAX_CACHE_STREAK = 10_000
"""Consecutive asks answered from the cache after which the space counts as exhausted."""


class Scheduler:
    """Asks, de-duplicates, budgets and tells; the runner only moves candidates and results.

    Args:
        strategy: The search strategy.
        objectives: What fitness is computed from.
        journal: The run's journal; results are appended as they are delivered.
        mode: ``async``/``simulated`` (tell in delivery order) or ``ordered`` (tell in id order).
        window: Most candidates outstanding (asked, not yet told).
        dedup: ``none``, ``arch`` or ``canonical``.
        budget: The run's limits.
        max_retries: Re-submissions of a candidate whose worker died before it fails.
        elapsed: Wall seconds used so far (for ``budget.wall_seconds``).
        sim_used: Simulated seconds used so far; None counts the told results' cost.
        stamp: Time fields added to the journal line of a cache-answered candidate.
    """

    def __init__(
        self,
        strategy: Strategy,
        objectives: Sequence[Objective],
        journal: Journal,
        *,
        mode: str,
        window: int,
        dedup: str,
        budget: BudgetConfig,
        max_retries: int,
        elapsed: Callable[[], float],
        sim_used: Callable[[], float] | None = None,
        stamp: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        self.strategy = strategy
        self.objectives = tuple(objectives)
        self.journal = journal
        self.ordered = mode == "ordered"
        self.window = window
        self.dedup = dedup
        self.budget = budget
        self.max_retries = max_retries
        self.elapsed = elapsed
        self.sim_used = sim_used or (lambda: self.told_cost)
        self.stamp = stamp or dict
        self.outstanding: dict[int, Candidate] = {}
        self.queue: deque[int] = deque()
        self.attempts: dict[int, int] = {}
        self.leader: dict[int, int] = {}
        self.ready: dict[int, Result] = {}
        self.cache: dict[Any, Result] = {}
        self.running: dict[Any, int] = {}
        self.journaled = {int(record["candidate_id"]) for record in journal.records}
        self._evaluated = {
            int(record["candidate_id"]): record for record in journal.records if not record.get("cached")
        }
        self.evaluations = 0
        self.finished = 0
        self.told = 0
        self.told_cost = 0.0
        self.cache_streak = 0
        self.best: tuple[float, ...] | None = None
        self.stop_reason: str | None = None
        self.replaying = False
        self._unwritten: list[dict[str, Any]] = []
        self._checked_objectives = False

    # ----------------------------------------------------------------- state
    @property
    def done(self) -> bool:
        """True when the run has stopped and nothing is outstanding."""
        return self.stop_reason is not None and not self.outstanding

    def state_dict(self) -> dict[str, Any]:
        """Engine state for ``checkpoint.json`` (the cache is rebuilt from the journal)."""
        return {
            "outstanding": [
                {"candidate": c.to_dict(), "attempts": self.attempts.get(i, 0), "leader": self.leader.get(i)}
                for i, c in self.outstanding.items()
            ],
            "evaluations": self.evaluations,
            "told": self.told,
            "told_cost": self.told_cost,
            "cache_streak": self.cache_streak,
            "stop_reason": self.stop_reason,
        }

    def load_state(self, state: Mapping[str, Any], covered: int) -> None:
        """Restore :meth:`state_dict`, given that the first ``covered`` journal lines were delivered."""
        self.evaluations = int(state["evaluations"])
        self.told = int(state["told"])
        self.told_cost = float(state["told_cost"])
        self.cache_streak = int(state["cache_streak"])
        self.stop_reason = state["stop_reason"]
        results: dict[int, Result] = {}
        for record in self.journal.records[:covered]:
            if not record.get("cached"):
                self.finished += 1
                result = Result.from_dict(record)
                results[result.candidate_id] = result
                self._track_best(record["fitness"])
                key = self._key(Arch.from_str(record["arch"]))
                if key is not None:
                    self.cache.setdefault(key, result)
        for entry in state["outstanding"]:
            candidate = Candidate.from_dict(entry["candidate"])
            self.outstanding[candidate.id] = candidate
            self.attempts[candidate.id] = int(entry["attempts"])
            leader = entry["leader"]
            if leader is not None:
                self.leader[candidate.id] = int(leader)
                if leader in results:
                    self.ready[candidate.id] = self._copy(results[leader], candidate.id)
            elif candidate.id in results:
                self.ready[candidate.id] = results[candidate.id]
            else:
                self.queue.append(candidate.id)
                key = self._key(candidate.arch)
                if key is not None:
                    self.running[key] = candidate.id

    # ----------------------------------------------------------------- asking
    def _key(self, arch: Arch) -> Any:
        if self.dedup == "arch":
            return arch.code
        if self.dedup == "canonical":
            return arch.canonical().code
        return None

    def _should_stop(self) -> str | None:
        budget = self.budget
        if budget.evaluations is not None and self.evaluations >= budget.evaluations:
            return "budget: evaluations"
        if budget.simulated_seconds is not None and self.sim_used() >= budget.simulated_seconds:
            return "budget: simulated_seconds"
        if budget.wall_seconds is not None and not self.replaying and self.elapsed() >= budget.wall_seconds:
            return "budget: wall_seconds"
        if self.strategy.finished:
            return "strategy finished"
        if self.cache_streak >= MAX_CACHE_STREAK:
            return "space exhausted"
        return None

    def refill(self) -> None:
        """Fill the window, then tell one releasable result and fill again, until none is left.

        Telling ONE result before asking again keeps the call sequence that of a plain
        sequential loop however many results arrived together (the ordered-mode guarantee).
        """
        self._fill()
        while self._release_one():
            self._fill()
        self._flush()

    def _fill(self) -> None:
        while self.stop_reason is None and len(self.outstanding) < self.window:
            self.stop_reason = self._should_stop()
            if self.stop_reason is not None:
                return
            candidate = self.strategy.ask()
            if candidate is None:
                if not self.outstanding:
                    self.stop_reason = "strategy finished" if self.strategy.finished else "strategy stalled"
                return
            self._register(candidate)

    def _register(self, candidate: Candidate) -> None:
        self.outstanding[candidate.id] = candidate
        key = self._key(candidate.arch)
        if key is not None and key in self.cache:
            self.cache_streak += 1
            self.leader[candidate.id] = self.cache[key].candidate_id
            self.ready[candidate.id] = self._copy(self.cache[key], candidate.id)
        elif key is not None and key in self.running:
            self.cache_streak += 1
            self.leader[candidate.id] = self.running[key]
        else:
            self.cache_streak = 0
            self.evaluations += 1
            self.queue.append(candidate.id)
            if key is not None:
                self.running[key] = candidate.id

    @staticmethod
    def _copy(result: Result, candidate_id: int) -> Result:
        return Result(candidate_id, result.status, result.objectives, result.metrics, error=result.error)

    # ----------------------------------------------------------------- dispatch
    def take(self, n: int) -> list[Candidate]:
        """Up to ``n`` queued candidates to evaluate, lowest ids first."""
        batch = []
        while self.queue and len(batch) < n:
            batch.append(self.outstanding[self.queue.popleft()])
        return batch

    def requeue(self, batch: Sequence[Candidate], reason: str, *, charge: bool = True) -> None:
        """Candidates whose worker died: queue them again (same id and seed) or fail them.

        Args:
            batch: The candidates.
            reason: One line on how the worker died.
            charge: Count the death against them (False for calls that were only queued
                behind the one running when the worker died).
        """
        failures = []
        for candidate in reversed(batch):
            attempts = self.attempts[candidate.id] = self.attempts.get(candidate.id, 0) + int(charge)
            if attempts > self.max_retries:
                failures.append(Result.failed(candidate.id, f"worker died {attempts} times: {reason}"))
            else:
                self.queue.appendleft(candidate.id)
        failures.reverse()
        if failures:
            self.complete(failures)

    def journaled_result(self, candidate_id: int) -> Result | None:
        """The journal's result of an evaluated (not cached) candidate, if it has one."""
        record = self._evaluated.get(candidate_id)
        return None if record is None else Result.from_dict(record)

    # ----------------------------------------------------------------- results
    def complete(
        self, results: Sequence[Result], extras: Mapping[int, Mapping[str, Any]] | None = None
    ) -> None:
        """Deliver evaluated results: journal them, then tell/refill after each one.

        Raises:
            ValueError: when a result is for a candidate that is not outstanding, or the
                evaluator does not produce a configured objective.
        """
        extras = extras or {}
        for result in results:
            if result.candidate_id not in self.outstanding:
                raise ValueError(
                    f"result for candidate {result.candidate_id}, which is not outstanding "
                    f"(journal {self.journal.path} does not match this run's checkpoint/config)"
                )
            self._check_objectives(result)
            if result.candidate_id not in self.journaled:
                candidate = self.outstanding[result.candidate_id]
                self._unwritten.append(self._record(candidate, result, extras.get(result.candidate_id)))
        self._flush()
        for result in results:
            self.finished += 1
            if self.replaying and result.candidate_id in self.queue:
                self.queue.remove(result.candidate_id)  # restored as queued, but it did finish
            self.ready[result.candidate_id] = result
            candidate = self.outstanding[result.candidate_id]
            key = self._key(candidate.arch)
            if key is not None:
                self.running.pop(key, None)
                self.cache.setdefault(key, result)
            for follower, leader in self.leader.items():
                if leader == result.candidate_id and follower in self.outstanding:
                    self.ready.setdefault(follower, self._copy(result, follower))
            self.refill()

    def _check_objectives(self, result: Result) -> None:
        if self._checked_objectives or result.status is not Status.OK:
            return
        missing = [o.name for o in self.objectives if o.name not in result.objectives]
        if missing:
            raise ValueError(
                f"objectives: {', '.join(missing)} not produced by the evaluator "
                f"(it returns: {', '.join(result.objectives) or 'nothing'})"
            )
        self._checked_objectives = True

    def _release_one(self) -> bool:
        """Tell the next releasable result (lowest id in ordered mode, oldest otherwise)."""
        if not self.ready:
            return False
        candidate_id = next(iter(self.outstanding)) if self.ordered else next(iter(self.ready))
        if candidate_id not in self.ready:
            return False
        self._tell(candidate_id, self.ready.pop(candidate_id))
        return True

    def _tell(self, candidate_id: int, result: Result) -> None:
        candidate = self.outstanding.pop(candidate_id)
        fitness = fitness_of(result, self.objectives)
        self.strategy.tell(candidate, fitness)
        self._track_best(fitness)
        self.told += 1
        self.told_cost += result.cost_s
        if candidate_id in self.leader and candidate_id not in self.journaled:
            self._unwritten.append(self._record(candidate, result, self.stamp()))
        self.leader.pop(candidate_id, None)
        self.attempts.pop(candidate_id, None)

    def _track_best(self, fitness: Sequence[float] | None) -> None:
        if fitness is not None and (self.best is None or tuple(fitness) > self.best):
            self.best = tuple(fitness)

    def _record(
        self, candidate: Candidate, result: Result, extra: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """The journal line of one finished (or cache-answered) candidate."""
        self.journaled.add(candidate.id)
        fitness = fitness_of(result, self.objectives)
        record: dict[str, Any] = {
            "candidate_id": candidate.id,
            "arch": candidate.arch.to_str(),
            "canonical": candidate.arch.canonical().to_str(),
        }
        if result.metrics.get("nats_index") is not None:
            record["nats_index"] = result.metrics["nats_index"]
        record.update(
            status=result.status.value,
            objectives=dict(result.objectives),
            fitness=None if fitness is None else list(fitness),
            metrics=dict(result.metrics),
            cost_s=result.cost_s,
            wall_s=result.wall_s,
            error=result.error,
            worker=result.worker,
            parents=list(candidate.parents),
            seed=candidate.seed,
            attempts=self.attempts.get(candidate.id, 0),
            cached=candidate.id in self.leader,
        )
        if candidate.id in self.leader:
            record["cached_from"] = self.leader[candidate.id]
        record.update(extra or {})
        return record

    def _flush(self) -> None:
        if self._unwritten:
            self.journal.append(self._unwritten)
            self._unwritten = []
