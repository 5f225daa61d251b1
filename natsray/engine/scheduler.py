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
* de-duplication happens where proposals are made: with ``dedup: arch | canonical`` the
  strategy gets the run's :class:`~natsray.search_space.seen.SeenCells` and proposes novel
  cells only. A strategy that proposes a cell (class) anyway — a third-party strategy that
  ignores the seen-set — is answered from the run's cache: told the earlier result, counted
  in ``cached``, never journaled, never charged as an evaluation. After
  :data:`MAX_CACHE_STREAK` such answers in a row the run stops: "space exhausted" when the
  seen-set covers the space, else "strategy repeated cached cells (10,000 in a row)".
* a candidate with a :attr:`~natsray.records.Candidate.budget` (a multi-fidelity strategy's)
  is cached under (cell key, budget): the same cell at another budget is evaluated again.
* fail-fast (``engine.fail_fast`` = N): when the first N evaluations of this start or resume all
  failed with the same one-line error (compared without the cell it names:
  :func:`~natsray.records.failure_kind`), the run *halts*: nothing more is asked or dispatched
  (queued candidates stay outstanding, for the checkpoint and a resume), evaluations in flight are
  delivered as usual, and the runner raises :class:`~natsray.errors.FailFastError` once none is
  left. One failure that differs, or one success, among the first N ends the watch for good.

Per evaluation the work is a few dict operations and one journal entry (its line is encoded by
:class:`~natsray.engine.journal_record.RecordEncoder` and written per delivered batch; a deferred
journal keeps the entry as it is); nothing scans the run's history.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from natsray.config import BudgetConfig
from natsray.engine.checkpoint import Journal
from natsray.engine.journal_record import Entry, RecordEncoder
from natsray.engine.summary import RunStats
from natsray.errors import raise_strategy_error
from natsray.records import Candidate, Objective, Result, Status, failure_kind, fitness_of
from natsray.search_space import Arch
from natsray.search_space.seen import SeenCells
from natsray.strategies import Strategy

__all__ = ["FAIL_FAST_STOP", "MAX_CACHE_STREAK", "Scheduler"]

MAX_CACHE_STREAK = 10_000
"""Consecutive proposals answered from the cache after which the run stops ("space exhausted" when
every cell (class) has been seen, else "strategy repeated cached cells (10,000 in a row)")."""
FAIL_FAST_STOP = "fail-fast"
"""How the stop reason of a run halted by ``engine.fail_fast`` starts (cleared on resume)."""


class Scheduler:
    """Asks, de-duplicates, budgets and tells; the runner only moves candidates and results.

    Args:
        strategy: The search strategy (its seen-set is attached here when de-duplicating).
        objectives: What fitness is computed from.
        journal: The run's journal; results are appended as they are delivered.
        mode: ``async``/``simulated`` (tell in delivery order) or ``ordered`` (tell in id order).
        window: Most candidates outstanding (asked, not yet told).
        dedup: ``none``, ``arch`` or ``canonical``.
        budget: The run's limits.
        max_retries: Re-submissions of a candidate whose worker died before it fails.
        elapsed: Wall seconds used so far (for ``budget.wall_seconds``).
        sim_used: Simulated seconds used so far; None counts the told results' cost.
        source: The evaluator (``module:Class``, or a scoring function's name), as the one-line error
            of an evaluation whose objective is missing or not a number names it.
        fail_fast: Halt when the first this many fresh evaluations (journaled here, not replayed) all
            failed with the same error; 0: never.
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
        source: str = "the evaluator",
        fail_fast: int = 0,
    ) -> None:
        self.strategy = strategy
        self.objectives = tuple(objectives)
        self.journal = journal
        self.ordered = mode == "ordered"
        self.window = window
        self.dedup = dedup
        self.seen = SeenCells(dedup) if dedup != "none" else None
        strategy.attach_seen(self.seen)
        self.budget = budget
        self.max_retries = max_retries
        self.elapsed = elapsed
        self.sim_used = sim_used or (lambda: self.told_cost)
        self.outstanding: dict[int, Candidate] = {}
        self.queue: deque[int] = deque()
        self.attempts: dict[int, int] = {}
        self.alone: set[int] = set()
        """Candidates evaluated one per call: their worker died running them in a call with others."""
        self.leader: dict[int, int] = {}  # cache-answered candidate -> the candidate it copies
        self._followers: dict[int, list[int]] = {}  # running candidate -> candidates waiting on it
        self.ready: dict[int, tuple[Result, tuple[float, ...] | None]] = {}  # told next: (result, fitness)
        # dedup key (cell key, or (cell key, budget) for a candidate with a budget) -> first result
        self._cache: dict[Any, tuple[Result, tuple[float, ...] | None]] = {}
        self._running: dict[Any, int] = {}  # dedup key -> candidate being evaluated
        self._tail: dict[int, dict[str, Any]] = {}  # journal lines past the checkpoint (resume)
        self.stats = RunStats(len(self.objectives))
        self.evaluations = 0
        self.told = 0
        self.told_cost = 0.0
        self.cached = 0
        self.cache_streak = 0
        self.best: tuple[float, ...] | None = None
        self.stop_reason: str | None = None
        self.replaying = False
        self.encoder = RecordEncoder(self.objectives, source)
        self._unwritten: list[Entry] = []
        self.fail_fast = fail_fast
        self._watch = fail_fast  # fresh evaluations still to watch (0: the watch is over)
        self._first_error: str | None = None
        self.halted: str | None = None
        """The error the first ``fail_fast`` evaluations all failed with, once they did: nothing more is
        asked or dispatched."""
        self.observer: Callable[[Candidate, Result], None] | None = None
        """Called with each newly journaled evaluation, after its line is written (e.g. top-k weights)."""

    # ----------------------------------------------------------------- state
    @property
    def done(self) -> bool:
        """True when the run has stopped and nothing is outstanding."""
        return self.stop_reason is not None and not self.outstanding

    @property
    def finished(self) -> int:
        """Evaluations delivered (journal lines), failures included."""
        return self.stats.evaluations

    def state_dict(self) -> dict[str, Any]:
        """Engine state for ``checkpoint.json`` (the cache and seen-set are rebuilt from the journal)."""
        return {
            "outstanding": [
                {
                    "candidate": c.to_dict(),
                    "attempts": self.attempts.get(i, 0),
                    "leader": self.leader.get(i),
                    **({"alone": True} if i in self.alone else {}),
                }
                for i, c in self.outstanding.items()
            ],
            "evaluations": self.evaluations,
            "told": self.told,
            "told_cost": self.told_cost,
            "cached": self.cached,
            "cache_streak": self.cache_streak,
            "stop_reason": self.stop_reason,
        }

    def load_state(self, state: Mapping[str, Any], covered: int) -> None:
        """Restore :meth:`state_dict`, given that the first ``covered`` journal lines were delivered.

        Lines past ``covered`` (written after the checkpoint) are kept as the tail that the
        runner delivers again (:meth:`tail`), so they are not journaled twice.
        """
        self.evaluations = int(state["evaluations"])
        self.told = int(state["told"])
        self.told_cost = float(state["told_cost"])
        self.cached = int(state.get("cached", 0))
        self.cache_streak = int(state["cache_streak"])
        self.stop_reason = state["stop_reason"]
        finished: dict[int, Result] = {}
        outstanding_ids = {int(entry["candidate"]["id"]) for entry in state["outstanding"]}
        for number, record in enumerate(self.journal.records()):  # one pass over the journal
            if record.get("cached"):  # a line of a journal written by natsray <= 0.1
                continue
            if number >= covered:
                self._tail[int(record["candidate_id"])] = record
                continue
            try:
                arch = Arch.from_str(record["arch"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{self.journal.path}: line {number + 1}: {exc}") from None
            self._note(record)
            result_id = int(record["candidate_id"])
            if self.seen is not None:
                self.seen.add(arch)  # (a promotion's cell was seen at its lower budget already)
                result = Result.from_dict(record)
                key = self._key(arch, record.get("budget"))
                self._cache.setdefault(key, (result, fitness_of(result, self.objectives)))
            if result_id in outstanding_ids:
                finished[result_id] = Result.from_dict(record)
        for entry in state["outstanding"]:
            candidate = Candidate.from_dict(entry["candidate"])
            self.outstanding[candidate.id] = candidate
            if int(entry["attempts"]):
                self.attempts[candidate.id] = int(entry["attempts"])
            if entry.get("alone"):
                self.alone.add(candidate.id)
            if self.seen is not None:
                self.seen.add(candidate.arch)
            leader = entry["leader"]
            if leader is not None:
                self.leader[candidate.id] = int(leader)
                key = self._key(candidate.arch, candidate.budget) if self.seen is not None else None
                if key is not None and key in self._cache:
                    cached, fitness = self._cache[key]
                    self.ready[candidate.id] = (self._copy(cached, candidate.id), fitness)
                else:
                    self._followers.setdefault(int(leader), []).append(candidate.id)
            elif candidate.id in finished:
                result = finished[candidate.id]
                self.ready[candidate.id] = (result, fitness_of(result, self.objectives))
            else:
                self.queue.append(candidate.id)
                if self.seen is not None:
                    self._running[self._key(candidate.arch, candidate.budget)] = candidate.id
        if self.seen is not None:
            self.seen.update(self.strategy.pending_cells())

    def adopt_journal(self) -> None:
        """Resume without a checkpoint: every journal line is tail, to deliver again."""
        for record in self.journal.records():
            if not record.get("cached"):
                self._tail[int(record["candidate_id"])] = record

    def tail(self) -> list[Result]:
        """Results journaled after the checkpoint, in journal order (to deliver again on resume)."""
        return [Result.from_dict(record) for record in self._tail.values()]

    @property
    def has_tail(self) -> bool:
        """True while journal lines written after the checkpoint wait to be delivered again."""
        return bool(self._tail)

    def journaled_result(self, candidate_id: int) -> Result | None:
        """The journal tail's result of a candidate, if it has one (simulated-mode resume)."""
        record = self._tail.get(candidate_id)
        return None if record is None else Result.from_dict(record)

    # ----------------------------------------------------------------- asking
    def _should_stop(self) -> str | None:
        budget = self.budget
        if budget.evaluations is not None and self.evaluations >= budget.evaluations:
            return "budget: evaluations"
        if budget.simulated_seconds is not None and self.sim_used() >= budget.simulated_seconds:
            return "budget: simulated_seconds"
        if budget.wall_seconds is not None and not self.replaying and self.elapsed() >= budget.wall_seconds:
            return "budget: wall_seconds"
        if self.strategy.finished:
            return self._finished_reason()
        if self.cache_streak >= MAX_CACHE_STREAK:
            if self.seen is not None and self.seen.exhausted:
                return "space exhausted"
            return f"strategy repeated cached cells ({MAX_CACHE_STREAK:,} in a row)"
        return None

    def _finished_reason(self) -> str:
        if self.seen is not None and self.seen.exhausted:
            return "space exhausted"
        return "strategy finished"

    def refill(self) -> None:
        """Fill the window, then tell one releasable result and fill again, until none is left.

        Telling ONE result before asking again keeps the call sequence that of a plain
        sequential loop however many results arrived together (the ordered-mode guarantee).
        """
        self._fill()
        while self.ready and self._release_one():
            self._fill()

    def _fill(self) -> None:
        outstanding = self.outstanding
        while self.stop_reason is None and len(outstanding) < self.window:
            self.stop_reason = self._should_stop()
            if self.stop_reason is not None:
                return
            try:
                candidate = self.strategy.ask()
            except Exception as exc:
                raise_strategy_error(type(self.strategy), "ask", exc)
            if candidate is None:
                if not outstanding:
                    self.stop_reason = (
                        self._finished_reason() if self.strategy.finished else "strategy stalled"
                    )
                return
            self._register(candidate)

    def _register(self, candidate: Candidate) -> None:
        self.outstanding[candidate.id] = candidate
        if self.seen is not None:
            budget = candidate.budget
            key = self.seen.key(candidate.arch) if budget is None else self._key(candidate.arch, budget)
            cached = self._cache.get(key)
            if cached is not None:
                self.cache_streak += 1
                self.leader[candidate.id] = cached[0].candidate_id
                self.ready[candidate.id] = (self._copy(cached[0], candidate.id), cached[1])
                return
            running = self._running.get(key)
            if running is not None:
                self.cache_streak += 1
                self.leader[candidate.id] = running
                self._followers.setdefault(running, []).append(candidate.id)
                return
            self._running[key] = candidate.id
        self.cache_streak = 0
        self.evaluations += 1
        self.queue.append(candidate.id)

    def _key(self, arch: Arch, budget: int | None) -> Any:
        """The cache key of a cell at a budget (the seen-set's key alone without one)."""
        key = self.seen.key(arch)  # type: ignore[union-attr]
        return key if budget is None else (key, int(budget))

    @staticmethod
    def _copy(result: Result, candidate_id: int) -> Result:
        return Result(candidate_id, result.status, result.objectives, result.metrics, error=result.error)

    # ----------------------------------------------------------------- dispatch
    def take(self, n: int) -> list[Candidate]:
        """Up to ``n`` queued candidates to evaluate, lowest ids first.

        A candidate marked to be evaluated alone (see :meth:`requeue`) comes in a batch of its own.
        """
        queue, outstanding, alone = self.queue, self.outstanding, self.alone
        if not alone:
            return [outstanding[queue.popleft()] for _ in range(min(n, len(queue)))]
        if queue and queue[0] in alone:
            return [outstanding[queue.popleft()]]
        batch = []
        while queue and len(batch) < n and queue[0] not in alone:
            batch.append(outstanding[queue.popleft()])
        return batch

    def requeue(
        self, batch: Sequence[Candidate], reason: str, *, running: bool = True, isolated: bool = False
    ) -> None:
        """Candidates whose worker died: queue them again (same id and seed) or fail them.

        Only a candidate that kills a worker by itself is charged. A call that runs one candidate
        with nothing queued behind it on its worker (``isolated``) is charged an attempt when its
        worker dies (after ``max_retries`` attempts it fails). The death of any other call charges
        none and marks its candidates to be evaluated alone from then on (:meth:`take`; the runner
        gives each an idle worker with nothing queued behind it): a worker that dies right after
        finishing one call may lose that call's reply, so a call not isolated is never sure to be
        the one that killed it. A candidate that kills its worker (a crash, an OOM kill) is so
        found by deaths of its own, and the others of its call are evaluated as usual.

        Args:
            batch: The candidates of one call.
            reason: One line on how the worker died.
            running: The call was running when the worker died (False for calls that were only
                queued behind it: requeued as they were, uncharged).
            isolated: The call ran alone on its worker (one candidate, nothing queued behind it).
        """
        charge = running and isolated and len(batch) == 1
        if running and not charge:
            self.alone.update(candidate.id for candidate in batch)
        failures = []
        for candidate in reversed(batch):
            attempts = self.attempts[candidate.id] = self.attempts.get(candidate.id, 0) + int(charge)
            if attempts > self.max_retries:
                failures.append(Result.failed(candidate.id, f"worker died {attempts} times: {reason}"))
            elif self.halted is None:  # a halted run leaves it outstanding, to run on resume
                self.queue.appendleft(candidate.id)
        failures.reverse()
        if failures:
            self.complete(failures)

    # ----------------------------------------------------------------- results
    def complete(
        self, results: Sequence[Result], extras: Mapping[int, Mapping[str, Any]] | None = None
    ) -> None:
        """Deliver evaluated results: journal them (one write), then tell/refill after each one.

        Args:
            results: Evaluated results of outstanding candidates.
            extras: Per candidate id, time fields for its journal line.

        Raises:
            ValueError: when a result is for a candidate that is not outstanding.
        """
        outstanding, tail, attempts = self.outstanding, self._tail, self.attempts
        fitnesses = []
        delivered = []  # the results as journaled (one with a bad objective value failed)
        observed: list[tuple[Candidate, Result]] = []
        for result in results:
            candidate = outstanding.get(result.candidate_id)
            if candidate is None:
                raise self._not_outstanding(result)
            if tail and result.candidate_id in tail:  # replayed on resume: journaled already
                record = tail.pop(result.candidate_id)
                self._note(record)
                delivered.append(result if record["status"] == "ok" else Result.from_dict(record))
                fitnesses.append(None if record.get("fitness") is None else tuple(record["fitness"]))
                continue
            extra = extras.get(result.candidate_id) if extras else None
            charged = attempts.get(candidate.id, 0) if attempts else 0
            result, fitness = self._record(candidate, result, extra, charged)
            delivered.append(result)
            fitnesses.append(fitness)
            if self.observer is not None:
                observed.append((candidate, result))
        if self._unwritten:
            self.journal.add(self._unwritten, self.encoder)
            self._unwritten = []
        for candidate, result in observed:
            self.observer(candidate, result)  # type: ignore[misc]
        seen, ready = self.seen, self.ready
        for result, fitness in zip(delivered, fitnesses, strict=True):
            candidate_id = result.candidate_id
            if self.replaying and self.queue and candidate_id in self.queue:
                self.queue.remove(candidate_id)  # restored as queued, but it did finish
            ready[candidate_id] = (result, fitness)
            if seen is not None:
                candidate = outstanding[candidate_id]
                budget = candidate.budget
                key = seen.key(candidate.arch) if budget is None else self._key(candidate.arch, budget)
                self._running.pop(key, None)
                self._cache.setdefault(key, (result, fitness))
            if self._followers:
                for follower in self._followers.pop(candidate_id, ()):
                    if follower in outstanding:
                        ready.setdefault(follower, (self._copy(result, follower), fitness))
            self.refill()

    @property
    def serial(self) -> bool:
        """True when results may be delivered with :meth:`deliver`: one candidate outstanding at a time
        (``window`` 1), no de-duplication, no observer, nothing replayed, retried or waiting to be told."""
        return (
            self.window == 1
            and self.seen is None
            and self.observer is None
            and not (self._tail or self.replaying or self.attempts or self.alone or self.ready or self.leader)
        )

    def deliver(self, result: Result, extra: Mapping[str, Any] | None = None) -> None:
        """``complete([result], {id: extra})`` for a scheduler that is :attr:`serial`, with less work:
        the same journal entry, statistics, tell and refill (one worker on the simulated clock calls
        it once per evaluation).

        Raises:
            ValueError: as :meth:`complete`.
        """
        candidate = self.outstanding.get(result.candidate_id)
        if candidate is None:
            raise self._not_outstanding(result)
        result, fitness = self._record(candidate, result, extra, 0)
        self.journal.add(self._unwritten, self.encoder)
        self._unwritten = []
        del self.outstanding[candidate.id]
        try:
            self.strategy.tell(candidate, fitness)
        except Exception as exc:
            raise_strategy_error(type(self.strategy), "tell", exc)
        self.told += 1
        self.told_cost += result.cost_s
        self._fill()

    def _record(
        self, candidate: Candidate, result: Result, extra: Mapping[str, Any] | None, charged: int
    ) -> tuple[Result, tuple[float, ...] | None]:
        """Add a fresh result's journal entry to the unwritten ones and count it: ``(the result as
        journaled, its fitness)`` (``FAILED`` when an objective is missing or not a number)."""
        arch = candidate.arch.to_str()
        encoder = self.encoder
        result, fitness = encoder.checked(result)
        self._unwritten.append((candidate, arch, result, fitness, extra, charged))
        if self._watch:
            self._watch_failure(result)
        budget = candidate.budget
        if self.stats.count(arch, result.status is Status.OK, result.cost_s, fitness, budget):
            record = encoder.record(candidate, result, fitness, extra, charged)
            self.stats.keep(arch, fitness, record, budget)  # type: ignore[arg-type]
            if self.best is None or fitness > self.best:  # type: ignore[operator]
                self.best = fitness
        return result, fitness

    def _not_outstanding(self, result: Result) -> ValueError:
        return ValueError(
            f"result for candidate {result.candidate_id}, which is not outstanding "
            f"(journal {self.journal.path} does not match this run's checkpoint/config)"
        )

    def _note(self, record: Mapping[str, Any]) -> None:
        self.stats.add(record)
        fitness = record.get("fitness")
        if fitness is not None and (self.best is None or tuple(fitness) > self.best):
            self.best = tuple(fitness)

    def _watch_failure(self, result: Result) -> None:
        """Fail-fast: one of the first ``fail_fast`` fresh evaluations, as journaled. A success or another
        error ends the watch; the ``fail_fast``-th failure with the same error halts the run."""
        error = (result.error or "failed") if result.status is Status.FAILED else None
        kind = None if error is None else failure_kind(error)  # alike when only the cell named differs
        if kind is None or (self._first_error is not None and kind != self._first_error):
            self._watch = 0
            return
        self._first_error = kind
        self._watch -= 1
        if not self._watch:
            self.halted = error
            self.stop_reason = f"{FAIL_FAST_STOP}: the first {self.fail_fast} evaluations failed alike"
            self.queue.clear()  # asked, not run: they stay outstanding (checkpointed, run on resume)

    def _release_one(self) -> bool:
        """Tell the next releasable result (lowest id in ordered mode, oldest otherwise)."""
        candidate_id = next(iter(self.outstanding)) if self.ordered else next(iter(self.ready))
        entry = self.ready.pop(candidate_id, None)
        if entry is None:
            return False
        result, fitness = entry
        try:
            self.strategy.tell(self.outstanding.pop(candidate_id), fitness)
        except Exception as exc:
            raise_strategy_error(type(self.strategy), "tell", exc)
        self.told += 1
        self.told_cost += result.cost_s
        if self.leader.pop(candidate_id, None) is not None:
            self.cached += 1
        if self.attempts:
            self.attempts.pop(candidate_id, None)
            self.alone.discard(candidate_id)
        return True
