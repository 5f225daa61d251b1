"""The engine: runs one experiment on Ray actors (or in-process / on a simulated clock).

With :mod:`natsray.engine.cluster` (which connects), the only module importing ray.
:func:`run_experiment` builds the strategy, the
:class:`~natsray.engine.scheduler.Scheduler` (which takes every search decision) and either

* a pool of evaluator actors driven by an asynchronous ``ray.wait`` loop (modes ``async`` /
  ``ordered``): each actor builds its evaluator once from a config and an ObjectRef to the
  shared read-only inputs (put once, while the actors start), candidates travel in batches
  (a cell pickles as its code), an actor that dies is replaced and its candidates re-queued
  with the same id and seed (those of a batch that died are evaluated one per call, so only a
  candidate that kills a worker alone is charged);
* the driver process (``engine.in_process``), or
* :func:`natsray.engine.simulation.run_simulated` (mode ``simulated``).

Everything finished is journaled (``evaluations.jsonl``), the search state is snapshotted
to ``checkpoint.json`` and the outcome to ``summary.json``. See ``docs/engine.md``.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from natsray.callbacks import Callback, CallbackList
from natsray.config import ExperimentConfig, check_engine
from natsray.engine.checkpoint import (
    CHECKPOINT_FILE,
    JOURNAL_FILE,
    SUMMARY_FILE,
    Journal,
    RunLock,
    atomic_write_json,
    make_output_dir,
    read_json,
)
from natsray.engine.cluster import (
    ConsistentInterrupt,
    actor_runtime_env,
    connect_ray,
    consistent_interrupt,
    sigterm_interrupts,
    stop_local_ray,
    take_sigterm,
    wait_for_ray_stop,
)
from natsray.engine.progress import Progress
from natsray.engine.scheduler import FAIL_FAST_STOP, Scheduler
from natsray.engine.simulation import SimulatedPool, run_simulated
from natsray.engine.summary import RunSummary
from natsray.engine.weights import TopKWeights
from natsray.engine.wire import ScoreDecoder, ScoreEncoder, pack_candidates, unpack_candidates
from natsray.errors import FailFastConfigError, FailFastError, raise_strategy_error
from natsray.evaluators import BaseEvaluator, EvaluatorError, evaluator_class
from natsray.evaluators.base import EvaluatorSetupError, build_evaluator, evaluator_name
from natsray.evaluators.function import resume_command, resumes_from_python
from natsray.records import Candidate, Objective, Result, config_mismatch
from natsray.strategies import build_strategy

__all__ = ["DEFAULT_BATCH", "RunSummary", "run_experiment"]

DEFAULT_BATCH = 256
"""Candidates per Ray call for cheap evaluators when ``engine.batch_size`` is not set. A Ray call
costs the driver, the actor and Ray's own processes together about 1-2 ms of CPU on a 2-core
machine; at 256 look-ups per call that is a few µs per evaluation (``benchmarks/throughput.py``)."""
IN_PROCESS_BATCH = 64
"""Candidates per evaluator call in the in-process loop (its window) when ``engine.batch_size`` is
not set: there is no call to amortise, so the window stays small."""
WINDOW_SHARE = 20
"""With an evaluation budget, the default window is at most ``budget.evaluations // 20`` (but at
least 2 per actor): a short run is not bred from its initial population alone."""

_CHECKPOINT_VERSION = 1


def run_experiment(
    config: ExperimentConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    address: str | None = None,
    progress: bool | None = None,
    shared: Any = None,
    callbacks: Sequence[Callback] = (),
    finalize: Callable[[Path], None] | None = None,
    durable: bool = True,
    journal: Journal | None = None,
    evaluator: BaseEvaluator | None = None,
) -> RunSummary:
    """Run (or resume) an experiment, writing the journal, checkpoints and summary to ``run_dir``.

    Args:
        config: The experiment.
        run_dir: Where the run's files go (created if needed).
        resume: Continue the run found in ``run_dir`` instead of refusing to overwrite it.
        address: Ray cluster to join; default ``config.ray.address``, then ``RAY_ADDRESS``,
            else a local Ray is started (and stopped at the end). A Ray already initialised
            in this process is reused and left running.
        progress: Show a progress bar on stderr; default ``config.output.progress``.
        shared: The evaluator's read-only inputs as its ``prepare_shared`` returns them, already
            prepared (a sweep takes them from Ray's object store, one copy per node; the CLI from
            its pre-flight, :func:`natsray.engine.preflight.preflight`); None prepares them here.
        callbacks: :class:`~natsray.callbacks.Callback` objects, called on this (the driver)
            process after those of ``config.callbacks`` (which are built here). Their exceptions
            are logged, never raised (``docs/callbacks.md``). On resume they receive only the
            results journaled from then on.
        finalize: Called with ``run_dir`` once the run has finished and ``summary.json`` is
            written, before the callbacks' ``on_run_end`` (the front doors pass
            :func:`natsray.experiment.report.finalize_run`, so callbacks find the CSV, best cell
            and plots).
        durable: ``fsync`` the journal, checkpoints and final summary and flush the journal per
            delivered batch (guards against a machine crash; a killed process loses nothing
            either way). A sweep passes False for its millisecond runs: the journal is flushed at
            checkpoints and at the end (:class:`~natsray.engine.checkpoint.Journal`), and a run
            killed meanwhile resumes from its last checkpoint.
        journal: The run's journal, made by the caller; default ``run_dir/evaluations.jsonl``
            (with ``durable``). A deferred one (:class:`~natsray.engine.checkpoint.Journal`, a
            sweep's run) keeps the run in memory: no file, not even ``run_dir``, is written
            unless the run reaches a periodic checkpoint (``output.checkpoint_every`` /
            ``checkpoint_seconds``) or is interrupted, when the journal is materialised and the
            run continues on disk as any other; a run that finishes first leaves its evaluations
            in ``journal.entries()`` (their lines: ``journal.text()``) and writes nothing.
        evaluator: For in-process / simulated runs, an evaluator already set up for
            ``config.evaluator`` (a sweep's task reuses one across its runs of one evaluator
            config, so that a ``per_cell`` evaluator's scores carry over); None builds one.

    Returns:
        The run's summary (also written to ``run_dir/summary.json``).

    Raises:
        ValueError: one line, for a bad config, a run directory that already holds a run
            (without ``resume``), an evaluator that cannot be set up, or a callback of
            ``config.callbacks`` that cannot be built.
    """
    run_dir = Path(run_dir)
    hooks = CallbackList([spec.build() for spec in config.callbacks] + list(callbacks))
    evaluator_cls = evaluator_class(config.evaluator.type)
    config = replace(config, evaluator=evaluator_cls.for_run(config.evaluator, run_dir))
    objectives = _objectives(config)
    check_engine(config.engine, evaluator_cls, config.evaluator)
    journal_path = run_dir / JOURNAL_FILE
    if not resume and (journal_path.exists() or (run_dir / CHECKPOINT_FILE).exists()):
        raise ValueError(
            f"{run_dir}: already holds a run ({JOURNAL_FILE}); resume it or use another output.dir"
        )
    locks: list[RunLock] = []  # one writer per journal, even with an orphaned worker still running
    if journal is not None and journal.deferred:
        journal.on_materialize(lambda: locks.append(RunLock(run_dir)))
    else:
        make_output_dir(run_dir)
        locks.append(RunLock(run_dir))
        journal = journal or Journal(journal_path, durable=durable)
    try:
        return _run_locked(
            config,
            run_dir,
            resume,
            address,
            progress,
            shared,
            evaluator_cls,
            objectives,
            hooks,
            finalize,
            journal,
            evaluator,
        )
    finally:
        wait_for_ray_stop()  # a local Ray this run started, stopping while its files were written
        for lock in locks:
            lock.release()


def _run_locked(
    config: ExperimentConfig,
    run_dir: Path,
    resume: bool,
    address: str | None,
    progress: bool | None,
    shared: Any,
    evaluator_cls: type[BaseEvaluator],
    objectives: tuple[Objective, ...],
    hooks: CallbackList,
    finalize: Callable[[Path], None] | None,
    journal: Journal,
    evaluator: BaseEvaluator | None = None,
) -> RunSummary:
    checkpoint = read_json(run_dir / CHECKPOINT_FILE) if resume else None
    if checkpoint is not None and checkpoint.get("version") != _CHECKPOINT_VERSION:
        raise ValueError(f"{run_dir / CHECKPOINT_FILE}: unsupported version {checkpoint.get('version')!r}")
    session = _Session(config, run_dir, journal, objectives, evaluator_cls, checkpoint, progress)
    session.shared = shared
    if hooks:
        session.attach(hooks)
        hooks.run_start(run_dir, config)
    session.evaluator = evaluator
    try:
        with sigterm_interrupts():  # this run's own (a sweep's, when it runs in one): SIGTERM is Ctrl-C
            if session.simulated:
                _run_local(session, evaluator_cls, simulated=True)
            elif config.engine.in_process:
                _run_local(session, evaluator_cls, simulated=False)
            else:
                _run_ray(session, evaluator_cls, address)
            if session.scheduler.halted is not None:  # engine.fail_fast: nothing is in flight now
                session.checkpoint(finished=False)
                session.journal.close()
                raise _fail_fast_error(session)
    except KeyboardInterrupt as exc:
        if consistent_interrupt(exc):
            session.checkpoint(finished=False, interrupted=True)
        else:
            # Raised wherever the driver was (e.g. halfway through a strategy's ask or a result's
            # bookkeeping): the state in memory may be half-updated, so it is not checkpointed. The
            # journal's complete lines are kept; resume restores the last checkpoint and replays them.
            session.journal.close()
        hooks.run_error(run_dir, exc)
        raise
    except Exception as exc:
        hooks.run_error(run_dir, exc)
        raise
    finally:
        session.progress.close()
    summary = session.checkpoint(finished=True)
    journal.close()
    if finalize is not None and not journal.deferred:  # a deferred run has no directory to finalise
        try:
            finalize(run_dir)
        except BaseException as exc:
            hooks.run_error(run_dir, exc)
            raise
    if hooks:
        hooks.run_end(run_dir, summary.to_dict())
    return summary


def _fail_fast_error(session: _Session) -> FailFastError:
    """The one-line error of a run halted by ``engine.fail_fast``: a config mismatch (an objective the
    evaluator does not return: :class:`FailFastConfigError`, bad input) or any other failure."""
    scheduler = session.scheduler
    error, count, run_dir = scheduler.halted or "failed", scheduler.fail_fast, session.run_dir
    first = f"the first {count} evaluations all failed with"
    stopped = f"the run stopped (engine.fail_fast: {count}; 0 turns it off) and is checkpointed"
    # a run scoring with a Python object continues (or starts again) from Python only
    resume = resume_command(session.config.evaluator, run_dir)
    again = (
        "overwrite=True"
        if resumes_from_python(session.config.evaluator)
        else "--overwrite (overwrite=True from Python)"
    )
    key = config_mismatch(error)
    if key == "evaluator.extra_csv":  # a partial CSV: measure the rest, or search the cells it has
        path = getattr(session.config.evaluator, "extra_csv", None)
        message = (
            f"{key}: {first}: {error.removeprefix('EvaluatorError: ')}; {stopped}: {path} lacks the cells "
            "proposed first (the pre-flight warning says how many it has): give it every cell "
            f"(`natsray measure-latency --out {path}` measures the rest) and continue with {resume}, or "
            f"start again with {again} and engine.fail_fast: 0 to search the cells it has (the others fail)"
        )
        return FailFastConfigError(message, error=error, count=count, run_dir=str(run_dir))
    if key is not None:
        message = (
            f"{key}: {first}: {error.removeprefix('EvaluatorError: ')}; {stopped}: fix {key} and start "
            f"again with {again}, or make the evaluator return it and continue with {resume}"
        )
        return FailFastConfigError(message, error=error, count=count, run_dir=str(run_dir))
    message = (
        f"{first} {error}; {stopped}: fix the cause, then continue with {resume} "
        f"(its failed evaluations are kept) or start again with {again}"
    )
    return FailFastError(message, error=error, count=count, run_dir=str(run_dir))


def _objectives(config: ExperimentConfig) -> tuple[Objective, ...]:
    if config.objectives:
        return tuple(config.objectives)
    specs = getattr(config.evaluator, "objective", None)
    if not specs:
        raise ValueError(f"evaluator.objective: evaluator {config.evaluator.type!r} names no objective")
    return tuple(Objective.parse(spec) for spec in ([specs] if isinstance(specs, str) else specs))


def _batch_and_window(config: ExperimentConfig, workers: int, cheap: bool) -> tuple[int, int]:
    """``(candidates per evaluator call, most candidates outstanding)`` from ``engine`` and the defaults.

    Defaults: a cheap evaluator gets :data:`IN_PROCESS_BATCH` in the driver (in-process, simulated)
    and :data:`DEFAULT_BATCH` per Ray call, training 1; the window is the batch in-process,
    ``simulated_workers`` in simulated mode and ``2 * actors * batch`` on Ray (two calls queued
    per actor), capped at 1 / :data:`WINDOW_SHARE` of an evaluation budget (a Ray call's batch
    shrinks to match).
    """
    engine = config.engine
    local = engine.in_process or engine.mode == "simulated"
    batch = engine.batch_size or ((IN_PROCESS_BATCH if local else DEFAULT_BATCH) if cheap else 1)
    if engine.max_in_flight is not None:
        return batch, engine.max_in_flight
    if engine.mode == "simulated":
        return batch, workers
    calls = 1 if engine.in_process else 2 * workers
    window = calls * batch
    evaluations = config.budget.evaluations
    if evaluations is not None and window > max(2 * workers, evaluations // WINDOW_SHARE):
        window = max(2 * workers, evaluations // WINDOW_SHARE)
        if engine.batch_size is None:
            batch = max(1, -(-window // calls))
    return batch, window


class _Session:
    """What every engine loop shares: scheduler, timing, checkpoints, summary, progress."""

    def __init__(
        self,
        config: ExperimentConfig,
        run_dir: Path,
        journal: Journal,
        objectives: tuple[Objective, ...],
        evaluator_cls: type[BaseEvaluator],
        checkpoint: dict[str, Any] | None,
        progress: bool | None,
    ) -> None:
        self.config = config
        self.shared: Any = None
        self.evaluator: BaseEvaluator | None = None
        self.run_dir = run_dir
        self.journal = journal
        self.objectives = objectives
        engine = config.engine
        self.simulated = engine.mode == "simulated"
        self.cheap = evaluator_cls.is_cheap(config.evaluator)
        workers = engine.simulated_workers if self.simulated else config.resources.actors
        self.batch_size, window = _batch_and_window(config, workers, self.cheap)
        self.start = time.perf_counter()
        self.base_wall = float(checkpoint["wall_seconds"]) if checkpoint else 0.0
        # [start, end] of this start and the earlier ones (Unix seconds): the gaps between them, when
        # the run was stopped, are left out of the wall clock its plots draw (none before 2026-12-04)
        now = time.time()
        earlier = (checkpoint or {}).get("sessions") or []
        self.sessions: list[list[float]] = [[float(a), float(b)] for a, b in earlier] + [[now, now]]
        self.ray_calls = int(checkpoint["ray_calls"]) if checkpoint else 0
        self.actors_alive: int | None = None
        self.pool = (
            SimulatedPool(workers, checkpoint.get("simulation") if checkpoint else None)
            if self.simulated
            else None
        )
        self.strategy = build_strategy(config.strategy, num_objectives=len(objectives), seed=config.seed)
        self.scheduler = Scheduler(
            self.strategy,
            objectives,
            journal,
            mode=engine.mode,
            window=window,
            dedup=config.search_space.dedup,
            budget=config.budget,
            max_retries=engine.max_retries,
            elapsed=self.elapsed,
            sim_used=(lambda: self.pool.clock) if self.pool else None,
            source=evaluator_name(evaluator_cls),
            fail_fast=engine.fail_fast,
        )
        self.top_k = self._top_k_weights(config)
        self._restore(checkpoint)
        self.last_told = self.scheduler.told
        self.last_time = time.perf_counter()
        show = config.output.progress if progress is None else progress
        self.progress = Progress(show, config.budget.evaluations, self.scheduler.finished)

    def _top_k_weights(self, config: ExperimentConfig) -> TopKWeights | None:
        """The driver's run-wide ``save_top_k`` keeper, ranked from the journal so far."""
        evaluator = config.evaluator
        k = getattr(evaluator, "save_top_k", 0)
        if not k or not getattr(evaluator, "weights_dir", None):
            return None
        meta = {name: getattr(evaluator, name, None) for name in ("dataset", "C", "N")}
        keeper = TopKWeights(evaluator.weights_dir, k, self.objectives[0], meta)
        keeper.rebuild(self.journal.records())

        def offer(candidate: Candidate, result: Result) -> None:
            record = {"candidate_id": candidate.id, "arch": candidate.arch.to_str()}
            keeper.offer({**record, "status": result.status.value, "objectives": result.objectives})

        self.scheduler.observer = offer
        return keeper

    def _restore(self, checkpoint: dict[str, Any] | None) -> None:
        """Checkpoint + journal tail -> the state the interrupted run was in."""
        scheduler = self.scheduler
        covered = 0
        scheduler.replaying = True
        if checkpoint is None:
            scheduler.adopt_journal()
            scheduler.refill()
        else:
            covered = int(checkpoint["journal_lines"])
            if covered > len(self.journal):
                raise ValueError(
                    f"{self.run_dir / CHECKPOINT_FILE}: covers {covered} journal lines but "
                    f"{self.journal.path} has {len(self.journal)}"
                )
            try:
                self.strategy.load_state_dict(checkpoint["strategy"])
            except Exception as exc:
                raise_strategy_error(type(self.strategy), "state", exc)
            scheduler.load_state(checkpoint["engine"], covered)
            if scheduler.stop_reason and scheduler.stop_reason.startswith(("budget", FAIL_FAST_STOP)):
                scheduler.stop_reason = None  # a larger budget, or a resume after a fail-fast stop
        if not self.simulated:
            for result in scheduler.tail():
                scheduler.complete([result])
        scheduler.replaying = False
        if not scheduler.outstanding and scheduler.stop_reason is None:
            scheduler.refill()

    def attach(self, hooks: CallbackList) -> None:
        """Deliver each newly journaled evaluation to ``hooks`` (after the top-k keeper, if any),
        numbered by its journal line (the journal's lines so far were restored or replayed)."""
        keeper = self.scheduler.observer
        journal = self.journal
        first = len(journal)
        delivered = 0

        def observe(candidate: Candidate, result: Result) -> None:
            nonlocal delivered
            if keeper is not None:
                keeper(candidate, result)
            hooks.result(result, first + delivered, candidate)
            delivered += 1

        self.scheduler.observer = observe

    def elapsed(self) -> float:
        """Wall seconds of the run, summed over resumes."""
        return self.base_wall + time.perf_counter() - self.start

    def event(self) -> None:
        """After delivering results: update progress, checkpoint when due; a SIGTERM waiting stops the
        run here (checkpointed on the way out: this is a consistent point)."""
        if take_sigterm():
            raise ConsistentInterrupt
        scheduler = self.scheduler
        best = scheduler.best[0] if scheduler.best else None
        self.progress.update(scheduler.finished, best, self.actors_alive)
        output = self.config.output
        if (
            scheduler.told - self.last_told >= output.checkpoint_every
            or time.perf_counter() - self.last_time >= output.checkpoint_seconds
        ):
            self.checkpoint(finished=False)

    def checkpoint(self, *, finished: bool, interrupted: bool = False) -> RunSummary:
        """Snapshot the search state and write the summary, atomically (its ``stop_reason``
        ``interrupted`` when ``interrupted``: the run stopped here and can be resumed).

        A deferred journal that finished is left in memory, its final checkpoint state in
        ``journal.checkpoint`` (nothing is written: the caller takes both); one that has not
        finished is materialised first (the run continues on disk).
        """
        scheduler = self.scheduler
        deferred = self.journal.deferred
        if deferred and not finished:
            self.journal.materialize()
            deferred = False
        self.journal.sync()  # the lines the checkpoint counts are on disk before it is
        self.sessions[-1][1] = time.time()
        state = {
            "version": _CHECKPOINT_VERSION,
            "journal_lines": len(self.journal),
            "finished": finished,
            "wall_seconds": self.elapsed(),
            "ray_calls": self.ray_calls,
            "strategy": self._strategy_state(),
            "engine": scheduler.state_dict(),
            "simulation": self.pool.state_dict() if self.pool else None,
            "sessions": [list(session) for session in self.sessions],
        }
        if deferred:
            self.journal.checkpoint = state
            return self._summary(state["wall_seconds"])
        durable = self.journal.durable
        atomic_write_json(self.run_dir / CHECKPOINT_FILE, state, indent=None, durable=durable)
        if self.top_k is not None:
            self.top_k.write_index()
        summary = self._summary(state["wall_seconds"])
        if interrupted:
            summary = replace(summary, stop_reason="interrupted")
        # the summary is derived from the journal and rewritten at the end: durable only then
        atomic_write_json(self.run_dir / SUMMARY_FILE, summary.to_dict(), durable=finished and durable)
        self.last_told = scheduler.told
        self.last_time = time.perf_counter()
        return summary

    def _strategy_state(self) -> dict[str, Any]:
        try:
            return self.strategy.state_dict()
        except Exception as exc:
            raise_strategy_error(type(self.strategy), "state", exc)

    def _summary(self, wall_seconds: float) -> RunSummary:
        scheduler = self.scheduler
        summary = scheduler.stats.summary(
            [str(o) for o in self.objectives],
            cached=scheduler.cached,
            wall_seconds=wall_seconds,
            simulated_seconds=self.pool.clock if self.pool else scheduler.told_cost,
            stop_reason=scheduler.stop_reason,
            ray_calls=self.ray_calls,
            mode=self.config.engine.mode,
        )
        sessions = tuple((start, end) for start, end in self.sessions)
        return replace(summary, batch_size=self.batch_size, window=scheduler.window, sessions=sessions)


def _run_local(session: _Session, evaluator_cls: type[BaseEvaluator], *, simulated: bool) -> None:
    """Evaluate in the driver process: on the simulated clock, or batch by batch."""
    evaluator = session.evaluator
    if evaluator is None:
        evaluator_config = session.config.evaluator
        shared = session.shared
        if shared is None:
            shared = evaluator_cls.prepare_shared(evaluator_config)
        evaluator = build_evaluator(evaluator_cls, evaluator_config, shared)
    scheduler = session.scheduler
    if simulated:
        run_simulated(scheduler, evaluator, session.pool, session.event)
        return
    batch_size = session.batch_size
    while not scheduler.done:
        batch = scheduler.take(batch_size)
        if not batch:
            scheduler.stop_reason = scheduler.stop_reason or "strategy stalled"
            break
        results = evaluator.evaluate(batch)
        finished = {"finish_time": time.time()}
        scheduler.complete(results, dict.fromkeys([r.candidate_id for r in results], finished))
        session.event()


def _timing(results: Sequence[Result], submitted: float, started: float) -> dict[int, dict[str, float]]:
    """Journal time fields of a batch evaluated sequentially from ``started``."""
    timing = {}
    start = started
    for result in results:
        timing[result.candidate_id] = {
            "submit_time": submitted,
            "start_time": start,
            "finish_time": start + result.wall_s,
        }
        start += result.wall_s
    return timing


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {_one_line(exc)}"


# --------------------------------------------------------------------------- Ray


class _RemoteTraceback(Exception):
    """The traceback of an exception raised on a Ray actor, as text (shown as the cause of the
    driver's error, as ``concurrent.futures`` shows a worker process's)."""

    def __str__(self) -> str:
        return f'\n"""\n{self.args[0]}\n"""'


class _EvaluatorActor:
    """Ray actor body: builds its evaluator once; import and setup errors are reported, not raised.

    The evaluator class and its config travel pickled (``payload``) and are unpickled here, so a
    class (or a config value) whose module the actor cannot import becomes one line naming the
    module, instead of Ray's traceback of a failed actor creation. The actor is started before
    the shared inputs exist: starting it (a worker process importing torch and the evaluator's
    module) overlaps the driver's ``prepare_shared`` + ``ray.put``; :meth:`setup` then gets them.
    """

    def __init__(self, target: str, payload: bytes) -> None:
        self.error: str | None = None
        try:
            self.evaluator_cls, self.config = pickle.loads(payload)
        except ModuleNotFoundError as exc:
            self.error = (
                f"evaluator.type: {target}: no module named {exc.name!r} on the Ray actor's node "
                f"({os.uname().nodename}): ship it with ray.runtime_env (working_dir or py_modules) or "
                "install it on every node"
            )
            return
        except Exception as exc:
            self.error = f"evaluator.type: {target}: cannot be loaded on the Ray actor: {_describe(exc)}"
            return

    def setup(self, shared: Any) -> str | tuple[str, str] | None:
        """Build and set up the evaluator on ``shared``: None when it is ready, else its one-line error,
        or, when the evaluator's own ``__init__`` / ``setup`` raised (:func:`build_evaluator`), the
        line and the traceback (text) of what it raised."""
        if self.error is not None:
            return self.error  # the class could not be loaded
        try:
            self.evaluator = build_evaluator(self.evaluator_cls, self.config, shared)
            self.encoder = ScoreEncoder(self.evaluator.per_cell())
        except EvaluatorSetupError as exc:
            self.error = str(exc)
            return self.error, "".join(traceback.format_exception(exc.__cause__)).rstrip()
        except Exception as exc:
            self.error = _one_line(exc) if isinstance(exc, ValueError) else _describe(exc)
        return self.error

    def evaluate(self, packed: bytes) -> tuple[float, bytes]:
        """``(start wall time, results)`` of one batch; candidates and results packed (:mod:`.wire`)."""
        start = time.time()
        return start, self.encoder.pack(self.evaluator.evaluate(unpack_candidates(packed)))


class _ActorPool:
    """The evaluator actors, replaced one by one when they die."""

    def __init__(
        self,
        session: _Session,
        evaluator_cls: type[BaseEvaluator],
        runtime_env: dict[str, Any] | None = None,
    ) -> None:
        """Start the actors (without waiting for them): :meth:`start` sets them up."""
        import ray

        resources = session.config.resources
        options: dict[str, Any] = {"runtime_env": runtime_env} if runtime_env else {}
        self._remote = ray.remote(_EvaluatorActor).options(
            num_cpus=resources.cpus_per_actor, num_gpus=resources.gpus_per_actor, max_restarts=0, **options
        )
        target = f"{evaluator_cls.__module__}:{evaluator_cls.__qualname__}"
        payload = ray.cloudpickle.dumps((evaluator_cls, session.config.evaluator))
        self._args = (target, payload)
        self._shared: Any = None
        self._start_timeout = session.config.ray.actor_start_timeout_s
        self.actors = [self._remote.remote(*self._args) for _ in range(resources.actors)]
        self.generation = [0] * len(self.actors)
        self.decoders = {(index, 0): ScoreDecoder() for index in range(len(self.actors))}
        """Per (actor index, generation): the decoder of that actor incarnation's results."""
        self.busy = [0] * len(self.actors)
        self.exclusive: set[int] = set()
        """Actors running one candidate with nothing queued behind it (``isolated`` for
        :meth:`Scheduler.requeue`): a suspect's call, or any one-candidate call of an actor that
        takes one call at a time."""

    def start(self, shared_ref: Any) -> None:
        """Set every actor up on the shared inputs (an ObjectRef) and wait until all are ready."""
        self._shared = shared_ref
        self._check(self.actors)

    def _check(self, actors: list[Any]) -> None:
        import ray

        try:
            errors = ray.get(
                [actor.setup.remote(self._shared) for actor in actors], timeout=self._start_timeout
            )
        except ray.exceptions.GetTimeoutError:
            raise EvaluatorError(
                f"evaluator actors not started after {self._start_timeout:g} s (ray.actor_start_timeout_s): "
                "the cluster's free CPUs/GPUs may be taken by other work"
            ) from None
        except ray.exceptions.RayError as exc:
            raise EvaluatorError(f"evaluator actor failed to start: {_one_line(exc)}") from None
        for error in errors:
            if isinstance(error, tuple):  # the evaluator's own code raised: its traceback is the cause
                line, trace = error
                raise EvaluatorSetupError(line) from _RemoteTraceback(trace)
            if error is not None:
                raise EvaluatorError(error)

    def replace(self, index: int) -> None:
        """Kill (if needed) and rebuild actor ``index``."""
        import ray

        with contextlib.suppress(Exception):  # already dead: nothing to clean up
            ray.kill(self.actors[index])
        self.actors[index] = self._remote.remote(*self._args)
        self.generation[index] += 1
        self.decoders[index, self.generation[index]] = ScoreDecoder()
        self.busy[index] = 0
        self.exclusive.discard(index)
        self._check([self.actors[index]])

    def shutdown(self) -> None:
        """Kill the actors and drop every Ray object held here (their handles, the shared inputs' ref)."""
        import ray

        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
        self._shared = None


def _run_ray(session: _Session, evaluator_cls: type[BaseEvaluator], address: str | None) -> None:
    """The asynchronous ``ray.wait`` loop over ``{ref: (actor, generation, batch, submit time)}``."""
    import ray

    owner = connect_ray(session.config, address)  # inside the run's sigterm_interrupts: SIGTERM stays ours
    pool = None
    finished = False
    try:
        # Ray started by someone else (a notebook, a sweep) runs without the config's runtime_env: the
        # actors are given it, so they import the user's code from where the driver does
        runtime_env = None if owner else actor_runtime_env(session.config.ray.runtime_env, session.run_dir)
        pool = _ActorPool(session, evaluator_cls, runtime_env)  # actors start while the driver prepares
        shared = session.shared  # given: already prepared (e.g. by the CLI's pre-flight)
        if shared is None:
            shared = evaluator_cls.prepare_shared(session.config.evaluator)
        pool.start(ray.put(shared))
        session.actors_alive = len(pool.actors)
        _loop(session, pool)
        finished = True
    finally:
        if pool is not None:
            pool.shutdown()
        if owner:  # a finished run's Ray stops while its checkpoint, CSV and plots are written
            stop_local_ray(background=finished)  # no Ray object is held by now (pool.shutdown)


def _loop(session: _Session, pool: _ActorPool) -> None:
    import ray

    scheduler = session.scheduler
    calls_per_actor = 2 if session.cheap else 1
    inflight: dict[Any, tuple[int, int, list[Candidate], float, int]] = {}
    while not scheduler.done:
        for index in range(len(pool.actors)):
            while pool.busy[index] < calls_per_actor and scheduler.queue:
                # A suspect (a candidate whose call died with its worker) runs alone on an idle actor
                # with nothing queued behind it, so its own death is told apart from another's.
                suspect = scheduler.queue[0] in scheduler.alone
                if suspect and pool.busy[index]:
                    break
                free_slots = sum(calls_per_actor - busy for busy in pool.busy)
                size = min(session.batch_size, -(-len(scheduler.queue) // max(free_slots, 1)))
                batch = scheduler.take(size)
                ref = pool.actors[index].evaluate.remote(pack_candidates(batch))
                inflight[ref] = (index, pool.generation[index], batch, time.time(), session.ray_calls)
                pool.busy[index] += calls_per_actor if suspect else 1
                if len(batch) == 1 and (suspect or calls_per_actor == 1):
                    pool.exclusive.add(index)  # nothing runs before or after it on this actor
                session.ray_calls += 1
        if not inflight:
            scheduler.stop_reason = scheduler.stop_reason or "strategy stalled"
            break
        refs = list(inflight)
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)  # all that are back, no blocking
        if not ready:
            ready, _ = ray.wait(refs, num_returns=1, timeout=1.0)
        ready.sort(key=lambda ref: inflight[ref][4])  # an actor's calls in the order it ran them
        for ref in ready:
            if ref in inflight:  # a dead actor's other calls were already taken back
                _collect(session, pool, inflight, ref)
        session.event()


def _collect(session: _Session, pool: _ActorPool, inflight: dict[Any, Any], ref: Any) -> None:
    """Deliver one finished Ray call, or recover from its actor's death."""
    import ray

    entry = inflight.pop(ref)
    index, generation = entry[:2]
    try:
        outcome = ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        outcome = exc
    except ray.exceptions.RayError as exc:
        _recover(session, pool, inflight, entry, exc)
        return
    if pool.generation[index] == generation:
        pool.busy[index] = 0 if index in pool.exclusive else pool.busy[index] - 1
        pool.exclusive.discard(index)
    _deliver(session, pool, entry, outcome)


def _recover(
    session: _Session, pool: _ActorPool, inflight: dict[Any, Any], entry: tuple, exc: Exception
) -> None:
    """An actor died: deliver its calls that finished before the death, replace it, and re-queue the
    candidates of the calls that died (the oldest of them was running; the others only queued)."""
    import ray

    index, generation, batch, _, seq = entry
    siblings = sorted((inflight[r][4], r) for r in inflight if inflight[r][:2] == (index, generation))
    if siblings:  # a dead actor's calls all end at once: wait (bounded) for every one's outcome
        ray.wait([r for _, r in siblings], num_returns=len(siblings), timeout=10.0)
    dead = [(seq, batch)]
    for sibling_seq, sibling in siblings:
        sibling_entry = inflight.pop(sibling)
        try:
            outcome = ray.get(sibling, timeout=0)
        except ray.exceptions.RayTaskError as error:
            outcome = error
        except ray.exceptions.RayError:  # died with the actor (or not back within the bound)
            dead.append((sibling_seq, sibling_entry[2]))
            continue
        _deliver(session, pool, sibling_entry, outcome)  # it finished before the actor died
    isolated = len(dead) == 1 and pool.generation[index] == generation and index in pool.exclusive
    if pool.generation[index] == generation:
        pool.replace(index)
    dead.sort(key=lambda call: call[0])
    for position, (_, candidates) in reversed(list(enumerate(dead))):  # oldest ends up first
        session.scheduler.requeue(
            candidates, _one_line(exc), running=position == 0, isolated=isolated and position == 0
        )


def _deliver(session: _Session, pool: _ActorPool, entry: tuple, outcome: Any) -> None:
    """Hand a call's results (or its evaluator's exception, failing its candidates) to the scheduler."""
    import ray

    index, generation, batch, submitted, _ = entry
    if isinstance(outcome, ray.exceptions.RayTaskError):
        error = f"evaluator raised {type(outcome.cause).__name__}: {_one_line(outcome.cause)}"
        session.scheduler.complete([Result.failed(c.id, error) for c in batch])
        return
    started, packed = outcome
    results = pool.decoders[index, generation].unpack(packed)
    if session.cheap:  # one set of times per batch: the look-ups of a batch take microseconds
        times = {"submit_time": submitted, "start_time": started, "finish_time": time.time()}
        session.scheduler.complete(results, dict.fromkeys([r.candidate_id for r in results], times))
    else:
        session.scheduler.complete(results, _timing(results, submitted, started))
