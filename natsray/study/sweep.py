"""Running a sweep: every (grid point, seed) run in parallel, resumable, fault-tolerant.

Runs whose loop needs no actors of its own (``engine.mode: simulated`` or
``engine.in_process``, i.e. cheap look-up evaluators) run in chunks. On one Linux machine, with
natsray's own look-up evaluators, the chunks go to workers forked from this process
(:mod:`natsray.study.forks`), which inherit the prepared inputs and evaluators; with
``parallel=1`` (or one CPU) they run here, one after another. Elsewhere (a cluster, Ray already
running, an evaluator plugin, macOS or Windows) each chunk is a Ray task with
``num_cpus = resources.cpus_per_actor``; Ray runs as many at once as the cluster has room for
(``parallel`` caps it). The evaluator's read-only inputs (the compact table) are prepared once
on the driver per distinct evaluator config and ``ray.put`` once; each task receives them from
the object store (one copy per node, zero-copy numpy). Runs whose
evaluator needs actors (training, proxies, ``async`` / ``ordered`` modes) are run one after
another by the driver, each with its own actor pool, in the same Ray session.

Each run writes its directory exactly as ``natsray run`` would (journal, checkpoint,
summary, CSV, plots). Its state decides what a (re)started sweep does with it: finished and
finalised -> skipped; finished but not finalised -> only finalised; started -> resumed from
its own journal and checkpoint; else started. A task whose worker dies is retried by Ray
(``max_retries``) and resumes likewise; a run that raises is reported with its one-line
error and the others go on. Each outcome is appended to ``OUT/sweep-runs.jsonl``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from natsray.callbacks import Callback, CallbackList
from natsray.config import ExperimentConfig, dump_config
from natsray.engine.checkpoint import (
    CHECKPOINT_FILE,
    JOURNAL_FILE,
    Journal,
    RunLock,
    drop_torn_line,
    make_output_dir,
    read_json,
)
from natsray.engine.cluster import sigterm_interrupts
from natsray.study.forks import fork_available, run_forked, usable_cpus
from natsray.study.grid import PlannedRun
from natsray.study.store import StoreWriter, stored_runs, write_run_dir

__all__ = ["RunOutcome", "SweepOutcome", "check_parallel", "execute_run", "run_state", "run_sweep"]

STATUS_FILE = "sweep-runs.jsonl"
TASK_RETRIES = 3
"""Ray retries of a run task whose worker process or node died."""
CHUNK_RUNS = 32
"""Most runs per Ray task: a task costs Ray a few milliseconds, as much as a NATS-protocol run."""


@dataclass(frozen=True)
class RunOutcome:
    """What became of one run: ``status`` is ``done`` (this sweep ran it), ``skipped`` (already
    finished), or ``failed`` with its one-line ``error``; ``node`` is the Ray node that ran it."""

    run_dir: str
    status: str
    error: str | None = None
    node: str | None = None
    evaluations: int | None = None


@dataclass(frozen=True)
class SweepOutcome:
    """All runs' outcomes, in plan order."""

    runs: tuple[RunOutcome, ...]

    @property
    def failed(self) -> list[RunOutcome]:
        return [run for run in self.runs if run.status == "failed"]


PLOT_FILES = ("best_so_far.png", "fitness.png")
"""The plots every finished run with evaluations draws (unless ``output.plots`` is false)."""


def run_state(run_dir: Path) -> str:
    """``finalized``, ``finished`` (loop done, CSV/plots missing), ``started`` or ``new``."""
    checkpoint = read_json(run_dir / CHECKPOINT_FILE) if (run_dir / CHECKPOINT_FILE).exists() else None
    if checkpoint is not None and checkpoint.get("finished"):
        done = (run_dir / "evaluations.csv").exists() and not _plots_missing(run_dir)
        return "finalized" if done else "finished"
    if checkpoint is not None or (run_dir / JOURNAL_FILE).exists():
        return "started"
    return "new"


def _plots_missing(run_dir: Path) -> bool:
    """Whether a finished run lacks a plot it draws: :data:`PLOT_FILES` when it has evaluations and
    its ``config.yaml`` leaves ``output.plots`` on (a run finished before this check, stopped as it
    drew them, has its CSV but not its plots)."""
    if all((run_dir / name).exists() for name in PLOT_FILES):
        return False
    import yaml

    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
        summary = read_json(run_dir / "summary.json") or {}
    except (OSError, ValueError, yaml.YAMLError):
        return False  # nothing to tell by: as before
    plots = (config.get("output") or {}).get("plots", True) if isinstance(config, dict) else True
    return bool(plots) and bool(summary.get("evaluations"))


def _local(config: ExperimentConfig) -> bool:
    """True when the run's loop runs in one process (no actors of its own)."""
    return config.engine.mode == "simulated" or bool(config.engine.in_process)


def _one_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    return text if isinstance(exc, ValueError) and text else f"{type(exc).__name__}: {text}"


def _materialize(config: ExperimentConfig, run_dir: Path) -> None:
    """Give a deferred run its directory and ``config.yaml`` (it reached a checkpoint)."""
    make_output_dir(run_dir)
    if not (run_dir / "config.yaml").exists():
        dump_config(config, run_dir / "config.yaml")


def execute_run(
    config: ExperimentConfig,
    run_dir: Path,
    shared: Any = None,
    address: str | None = None,
    store: StoreWriter | None = None,
    name: str | None = None,
    evaluator: Any = None,
) -> int:
    """Run, resume or finalise one run as ``natsray run`` / ``resume`` would; its evaluations.

    With ``store`` (and ``name``), a new run whose loop runs in this process is kept in memory
    and committed to the sweep's store when it finishes (:mod:`natsray.study.store`); if it
    reaches a periodic checkpoint first it gets its run directory and finishes there.
    """
    from natsray.engine.runner import run_experiment
    from natsray.experiment.report import finalize_run

    state = run_state(run_dir)
    if state == "new" and store is not None and name is not None and _local(config):
        journal = Journal(
            run_dir / JOURNAL_FILE, durable=False, deferred=lambda: _materialize(config, run_dir)
        )
        summary = run_experiment(
            replace(config, callbacks=()),
            run_dir,
            progress=False,
            shared=shared,
            durable=False,
            journal=journal,
            evaluator=evaluator,
        )
        if journal.deferred:
            store.commit(name, _evaluations_table(journal), summary.to_dict(), journal.checkpoint)
            return summary.evaluations
        finalize_run(run_dir)
        return summary.evaluations
    if state != "finalized":
        if state != "finished":
            _materialize(config, run_dir)
            run_experiment(  # the sweep's callbacks are called by run_sweep, on the driver
                replace(config, callbacks=()),
                run_dir,
                resume=state == "started",
                address=address,
                progress=False,
                shared=shared,
                durable=False,
            )
        finalize_run(run_dir)
    summary = read_json(run_dir / "summary.json") or {}
    return int(summary.get("evaluations", 0))


def _evaluations_table(journal: Journal) -> Any:
    """A deferred journal's evaluations as a flat table, built from its columns (no JSON involved)."""
    from natsray.engine.journal_record import evaluation_columns
    from natsray.experiment.journal_table import table_from_columns, table_from_lines

    entries = journal.entries()
    if entries is None:  # lines written as text
        return table_from_lines(journal.text().encode(), journal.path)
    return table_from_columns(evaluation_columns(entries))


_WORKER_EVALUATORS: dict[str, Any] = {}
"""A Ray worker's evaluators kept between the tasks of one sweep (by sweep token and evaluator
config): a cheap evaluator's per-cell scores then carry over from one task to the next."""
_KEPT_EVALUATORS = 4
_WORKER_STORES: dict[str, StoreWriter] = {}
"""A Ray worker's store writer for the sweep (by token) whose tasks it runs: one set of store files
per worker and sweep, not per task (a new set after a failed write)."""


def _chunk_task(
    items: list[tuple[ExperimentConfig, str, str]], out: str, shared: Any, token: str = ""
) -> list[dict[str, Any]]:
    """Ray task body: several runs, one after another; an exception becomes ``{"error": one line}``.

    ``token`` is unique per :func:`run_sweep` call: the evaluator that this sweep's earlier tasks
    set up in this worker process for the same evaluator config (so the same ``shared``) is reused.
    No ``items``: a warm-up (:func:`_warm_up`), answered with an empty list.
    """
    if not items:  # a warm-up: the same task (scheduling class) as the runs', so its worker stays leased
        _warm_up()
        return []
    import ray

    node = ray.get_runtime_context().get_node_id()
    if not token:
        return _execute_all(items, Path(out), shared, node)
    store = _WORKER_STORES.get(token)
    if store is None:  # a new sweep: the files of an earlier one are complete (flushed per run)
        for old in _WORKER_STORES.values():
            old.close()
        _WORKER_STORES.clear()
        store = _WORKER_STORES[token] = StoreWriter(out)
    key = f"{token}/{items[0][0].evaluator!r}" if items else ""
    return _execute_all(items, Path(out), shared, node, kept=(_WORKER_EVALUATORS, key), store=store)


def _warm_up() -> None:
    """An empty chunk task's body: :func:`_import_run_modules`. A worker's first task waits ~0.5 s to
    be leased and then imports the engine; sent ahead, this overlaps both with the driver's
    preparation. As the same remote function (with the same options) as the runs', the warm-up and
    the runs share one scheduling class: Ray hands the warmed worker the first chunk without a new
    lease (with a separate function the first chunk started 0.06 s later, median of 6 alternated
    300-run sweeps on 2 cores, 2026-12-04)."""
    _import_run_modules()
    time.sleep(0.05)  # hold the slot a moment, so each warm-up lands on a different worker


def _import_run_modules() -> None:
    """Import what a run needs and build the interned cells and their strings (a run's first use
    otherwise pays for them)."""
    import natsray.engine.runner
    import natsray.engine.simulation
    import natsray.experiment.journal_table
    import natsray.experiment.report  # noqa: F401
    from natsray.search_space import Arch

    Arch.from_code(0).to_str()


def _reusable_evaluator(config: ExperimentConfig, shared: Any) -> Any:
    """One evaluator for all runs of a task (their evaluator configs are equal), set up once: a cheap
    (look-up) evaluator whose run needs no run-directory defaults; None otherwise."""
    from natsray.evaluators import evaluator_class
    from natsray.evaluators.base import build_evaluator

    evaluator_cls = evaluator_class(config.evaluator.type)
    if not (evaluator_cls.cheap and _local(config)):
        return None
    if evaluator_cls.for_run(config.evaluator, Path(config.output.dir)) != config.evaluator:
        return None
    return build_evaluator(evaluator_cls, config.evaluator, shared)


def _execute_all(
    items: Sequence[tuple[ExperimentConfig, str, str]],
    out: Path,
    shared: Any,
    node: str | None,
    report: Callable[[int, dict[str, Any]], None] | None = None,
    stop: Callable[[], bool] | None = None,
    kept: tuple[dict[str, Any], str] | None = None,
    store: StoreWriter | None = None,
) -> list[dict[str, Any]]:
    """Run ``items`` (of one evaluator config) one after another with one store writer (``store``,
    left open, or a new one), until ``stop()`` says so after a run; a cheap evaluator is set up once,
    or taken from / left in ``kept`` (a dict of evaluators and the key of this config and ``shared``
    in it)."""
    own = store is None
    store = StoreWriter(out) if store is None else store
    results = []
    evaluator = kept[0].get(kept[1]) if kept is not None else None
    restore = _fewer_collections()
    try:
        for position, (config, run_dir, name) in enumerate(items):
            try:
                if evaluator is None:
                    evaluator = _reusable_evaluator(config, shared)
                    if evaluator is not None and kept is not None:
                        evaluators, key = kept
                        while len(evaluators) >= _KEPT_EVALUATORS:
                            evaluators.pop(next(iter(evaluators)))
                        evaluators[key] = evaluator
                evaluations = execute_run(
                    config, Path(run_dir), shared, store=store, name=name, evaluator=evaluator
                )
                result = {"evaluations": evaluations, "node": node}
            except Exception as exc:
                result = {"error": _one_line(exc), "node": node}
            results.append(result)
            if report is not None:
                report(position, result)
            if stop is not None and stop():
                break
    finally:
        restore()
        if own:
            store.close()
    return results


_YOUNG_OBJECTS = 10_000
"""The cyclic collector's first threshold while a sweep's runs run (CPython's default: 700)."""


def _fewer_collections() -> Callable[[], None]:
    """Make the cyclic garbage collector run less often while a task runs its runs; returns the undo.

    A look-up run allocates a few tuples and dicts per evaluation and keeps most of them until it is
    stored, so CPython's collector (young generation: 700 new objects) spent about 15% of a NATS
    sweep re-examining them, and its full collections re-examined the evaluator's tables. Here the
    young generation holds :data:`_YOUNG_OBJECTS` objects, and the objects alive before the runs are
    frozen (``gc.freeze``: left out of collections) unless the process froze some itself. Garbage in
    reference cycles is still collected, a little later.
    """
    import gc

    threshold = gc.get_threshold()
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    gc.set_threshold(max(threshold[0], _YOUNG_OBJECTS), *threshold[1:])

    def undo() -> None:
        gc.set_threshold(*threshold)
        if freeze:
            gc.unfreeze()

    return undo


class _Bar:
    """Runs done / total on stderr (tqdm), with the failure count."""

    def __init__(self, enabled: bool, total: int, initial: int) -> None:
        self.failed = 0
        self._bar: Any = None
        if not enabled:  # no tqdm import (~9 ms before the runs start)
            return
        from tqdm import tqdm

        from natsray.bars import bar_options

        self._bar = tqdm(total=total, initial=initial, unit="run", **bar_options(sys.stderr))
        self._bar.set_postfix({"failed": 0}, refresh=False)

    def step(self, failed: bool) -> None:
        if failed:
            self.failed += 1
        if self._bar is None:
            return
        if failed:  # the postfix changes only then (setting it costs ~60 µs, as much as a short run)
            self._bar.set_postfix({"failed": self.failed}, refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


_KEYS: dict[int, tuple[Any, str]] = {}
""":func:`_shared_key`'s memo: ``id(evaluator config) -> (that config, its key)``; holding the config keeps
its id from being reused while it is in here."""


def _shared_key(run: PlannedRun) -> str:
    """The run's evaluator config as text: runs with equal keys share their inputs and evaluator. Computed
    once per config object (a dataclass ``repr``, ~15 µs, was asked for several times per run)."""
    assert run.config is not None
    evaluator = run.config.evaluator
    known = _KEYS.get(id(evaluator))
    if known is not None and known[0] is evaluator:
        return known[1]
    if len(_KEYS) >= 20_000:
        _KEYS.clear()
    key = _KEYS[id(evaluator)] = (evaluator, repr(evaluator))
    return key[1]


def _prepare_shared(runs: Sequence[PlannedRun]) -> dict[str, Any]:
    """Each distinct evaluator config's read-only inputs, prepared once (for many runs: see
    :meth:`~natsray.evaluators.base.BaseEvaluator.prepare_sweep_shared`)."""
    from natsray.evaluators import evaluator_class

    counts = Counter(_shared_key(run) for run in runs)
    prepared: dict[str, Any] = {}
    for run in runs:
        key = _shared_key(run)
        if key not in prepared:
            assert run.config is not None
            evaluator = run.config.evaluator
            prepared[key] = evaluator_class(evaluator.type).prepare_sweep_shared(evaluator, counts[key])
    return prepared


def check_parallel(parallel: int | None) -> None:
    """Refuse a ``parallel`` that is not None or a positive integer (``-1`` would wait forever, ``0``
    would mean "no limit").

    Raises:
        ValueError: one line naming ``parallel`` and the value.
    """
    if parallel is not None and (isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1):
        raise ValueError(f"parallel: expected a positive integer, got {parallel!r}")


def run_sweep(
    runs: Sequence[PlannedRun],
    out: Path,
    *,
    parallel: int | None = None,
    address: str | None = None,
    progress: bool | None = None,
    on_outcome: Callable[[RunOutcome], None] | None = None,
    callbacks: Sequence[Callback] = (),
    on_cores_free: Callable[[], None] | None = None,
) -> SweepOutcome:
    """Execute (or continue) the planned runs of a sweep.

    Args:
        runs: The plan (:func:`natsray.study.grid.plan_runs`).
        out: The sweep directory (``sweep-runs.jsonl`` goes there).
        parallel: At most this many run tasks at once (default: as many as Ray has CPUs for).
        address: Ray cluster to join (default: the config's ``ray.address`` / ``RAY_ADDRESS`` / a local Ray).
        progress: Show the runs-done bar on stderr (default: the planned config's ``output.progress``).
        on_outcome: Called with each outcome as it comes (for printing).
        callbacks: Called on this (the driver) process after those of the plan's ``callbacks``
            config key (built once): ``on_sweep_start``, ``on_run_end`` for each run that is done or
            found finished (skipped) as its outcome comes, ``on_sweep_end``. The runs themselves run
            without callbacks.
        on_cores_free: Called once, when the runs leave a core of this machine free: before them,
            unless forked workers take every core (then after them). A report's plot process
            (:meth:`~natsray.study.plot_process.PlotProcess.preload`) imports matplotlib then.

    Returns:
        Every run's outcome in plan order. A run that fails does not stop the others.

    Raises:
        ValueError: ``parallel`` is not a positive integer.
        RunInUseError: another process is running this sweep (it holds ``out/.lock``).
    """
    check_parallel(parallel)
    outcomes: dict[int, RunOutcome] = {}
    todo: list[int] = []
    stored = stored_runs(out)
    present = {entry.name for entry in os.scandir(out)} if out.is_dir() else set()
    for i, run in enumerate(runs):
        if run.name in stored:
            state = "finalized"
        elif Path(run.name).parts[0] not in present:  # no run directory (a new sweep's runs): no stat each
            state = "new"
        else:
            state = run_state(run.run_dir)
        if state == "finalized" or (  # whatever its config now (plots missing: drawn when it is valid)
            state == "finished" and run.config is None and (run.run_dir / "evaluations.csv").exists()
        ):
            outcomes[i] = RunOutcome(str(run.run_dir), "skipped")
        elif run.config is None:
            outcomes[i] = RunOutcome(str(run.run_dir), "failed", run.error)
        else:
            todo.append(i)
    make_output_dir(out)
    lock = RunLock(out, timeout=0)  # one process per sweep directory; released however this ends
    bar: _Bar | None = None
    status: IO[str] | None = None

    def record(i: int, outcome: RunOutcome) -> None:
        assert status is not None and bar is not None
        outcomes[i] = outcome
        status.write(json.dumps({**outcome.__dict__, "time": time.time()}) + "\n")
        status.flush()
        bar.step(outcome.status == "failed")
        if on_outcome is not None:
            on_outcome(outcome)
        if outcome.status == "done":
            run_end(i)

    def run_end(i: int) -> None:
        run_dir = runs[i].run_dir
        if hooks:
            if not run_dir.is_dir():  # a run in the store: callbacks get its directory (written now)
                write_run_dir(out, run_dir, runs[i].config)
            hooks.run_end(run_dir, read_json(run_dir / "summary.json") or {}, report=False)

    try:
        hooks = CallbackList([*_callbacks(runs), *callbacks])
        hooks.sweep_start(out, len(runs))
        if progress is None:
            first = next((run.config for run in runs if run.config is not None), None)
            progress = first is None or bool(first.output.progress)
        bar = _Bar(progress, len(runs), len(runs) - len(todo))
        drop_torn_line(out / STATUS_FILE)  # a sweep killed mid-line: its outcome is recorded again
        unrecorded = _unrecorded([i for i in outcomes if outcomes[i].status == "skipped"], runs, out)
        status = open(out / STATUS_FILE, "a", encoding="utf-8")  # noqa: SIM115 - closed in finally
        for i in unrecorded:  # finished, but the sweep that ran it was stopped before it heard so
            summary = stored[runs[i].name].summary if runs[i].name in stored else {}
            done = RunOutcome(str(runs[i].run_dir), "done", evaluations=summary.get("evaluations"))
            status.write(json.dumps({**done.__dict__, "time": time.time()}) + "\n")
        for i in [i for i in outcomes if outcomes[i].status == "failed"]:
            if on_outcome is not None:
                on_outcome(outcomes[i])
        for i in [i for i in outcomes if outcomes[i].status == "skipped"]:
            run_end(i)
        # SIGTERM (scancel, timeout) stops the sweep as Ctrl-C does, whether its runs run here or on Ray:
        # a run in this process is checkpointed after its current batch, one on Ray resumes from its own
        with sigterm_interrupts():
            way, slots = execution(runs, todo, parallel, address) if todo else ("", 0)
            if on_cores_free is not None and not slots:
                on_cores_free()
            if way == "driver":
                _run_in_driver(runs, todo, out, record)
            elif way == "forked":
                _run_forked(runs, todo, out, slots, record)
                if on_cores_free is not None:  # not after an interrupt: the plot process is not needed
                    on_cores_free()
            elif way == "driver-then-ray":
                cores = runs[todo[0]].config.resources.num_cpus  # type: ignore[union-attr]
                shared = _prepare_shared([runs[i] for i in todo])  # for the runs on Ray too
                until = _ray_pays_off(len(todo), cores)
                rest = _run_in_driver(runs, todo, out, record, until=until, shared=shared)
                if rest:
                    _run_on_ray(runs, rest, out, parallel, address, record, shared=shared)
            elif way == "ray":
                _run_on_ray(runs, todo, out, parallel, address, record)
    finally:
        if bar is not None:
            bar.close()
        try:
            if status is not None:
                status.close()
        except OSError:  # a full disk: outcomes not written are recorded again by resume (_unrecorded)
            pass
        finally:
            lock.release()
    result = SweepOutcome(tuple(outcomes[i] for i in range(len(runs))))
    hooks.sweep_end(out, result.runs)
    return result


def _unrecorded(finished: list[int], runs: Sequence[PlannedRun], out: Path) -> list[int]:
    """Those of the ``finished`` runs with no ``done`` line in ``out/sweep-runs.jsonl``: a run a Ray task
    stored before the sweep was interrupted, whose outcome the driver never received.

    A line's ``run_dir`` is the sweep directory as its writer was given it joined with the run's path
    inside it (:attr:`PlannedRun.name`): relative to the directory the writer ran in, which the line
    does not record, when that was relative (``natsray run --out REL``; ``natsray resume REL`` before
    2026-12-03), or an absolute path that no longer holds the sweep once its directory is moved. So a
    line is matched to its run by its last parts, the run's path inside the sweep directory (each line
    is about one of this sweep's runs), never resolved against this process's working directory.
    """
    if not finished:
        return []
    depths = {len(Path(runs[i].name).parts) for i in finished}
    path = out / STATUS_FILE
    recorded = set()
    for line in path.read_text(encoding="utf-8").splitlines() if path.is_file() else ():
        try:
            outcome = json.loads(line)
            if outcome["status"] == "done":
                parts = Path(outcome["run_dir"]).parts
                recorded.update(parts[-depth:] for depth in depths)
        except (ValueError, KeyError, TypeError):
            continue
    return [i for i in finished if Path(runs[i].name).parts not in recorded]


def _callbacks(runs: Sequence[PlannedRun]) -> list[Callback]:
    """The sweep's callbacks: those of its first planned config's ``callbacks`` key."""
    config = next((run.config for run in runs if run.config is not None), None)
    return [spec.build() for spec in config.callbacks] if config is not None else []


def _no_ray_needed(runs: Sequence[PlannedRun], todo: list[int], address: str | None) -> bool:
    """True when the runs may run in this process: all in-process / simulated, no cluster named and no
    Ray already running in this process."""
    first = runs[todo[0]].config
    assert first is not None
    named = address or first.ray.address or os.environ.get("RAY_ADDRESS")
    ray = sys.modules.get("ray")  # not imported: not initialised either (importing it costs ~1 s)
    running = ray is not None and ray.is_initialized()
    return not named and not running and all(_local(runs[i].config) for i in todo)  # type: ignore[arg-type]


def _in_driver(
    runs: Sequence[PlannedRun], todo: list[int], parallel: int | None, address: str | None
) -> bool:
    """True when the runs need no Ray: one at a time (``--parallel 1`` or ``resources.num_cpus: 1``)
    and :func:`_no_ray_needed`."""
    first = runs[todo[0]].config
    assert first is not None
    one = parallel == 1 or first.resources.num_cpus == 1 or usable_cpus() == 1
    return one and _no_ray_needed(runs, todo, address)


def _fork_slots(
    runs: Sequence[PlannedRun], todo: list[int], parallel: int | None, address: str | None
) -> int:
    """How many forked workers run the runs (:mod:`natsray.study.forks`); 0: not forked. Forked when
    :func:`_no_ray_needed`, fork is available (Linux), every run's evaluator is one of natsray's own
    look-up evaluators (``table``, ``benchmark``: no threads or CUDA of a plugin's in the way) and
    more than one core is asked for (``parallel``, else ``resources.num_cpus``, else
    :func:`usable_cpus`) and more than one run is left."""
    from natsray.evaluators import evaluator_class

    if parallel == 1 or not fork_available() or not _no_ray_needed(runs, todo, address):
        return 0
    for i in todo:
        evaluator_cls = evaluator_class(runs[i].config.evaluator.type)  # type: ignore[union-attr]
        if not (evaluator_cls.cheap and evaluator_cls.__module__.startswith("natsray.")):
            return 0
    first = runs[todo[0]].config
    assert first is not None
    slots = min(parallel or first.resources.num_cpus or usable_cpus(), len(todo))
    return slots if slots > 1 else 0  # one run (or one core): in this process


def execution(
    runs: Sequence[PlannedRun], todo: list[int], parallel: int | None, address: str | None
) -> tuple[str, int]:
    """Where :func:`run_sweep` runs the runs ``todo`` (non-empty): ``("driver", 0)`` one at a time in
    this process (:func:`_in_driver`), ``("forked", N)`` on N forked workers (:func:`_fork_slots`),
    ``("driver-then-ray", 0)`` in this process until a local Ray would pay off
    (:func:`_may_start_ray_later`), else ``("ray", 0)``."""
    if _in_driver(runs, todo, parallel, address):
        return "driver", 0
    slots = _fork_slots(runs, todo, parallel, address)
    if slots:
        return "forked", slots
    if _may_start_ray_later(runs, todo, parallel, address):
        return "driver-then-ray", 0
    return "ray", 0


def describe_execution(
    runs: Sequence[PlannedRun], todo: list[int], parallel: int | None, address: str | None
) -> str:
    """:func:`execution` in words (``natsray validate`` of a sweep)."""
    way, slots = execution(runs, todo, parallel, address)
    if way == "driver":
        return "runs one at a time in the natsray process (no Ray)"
    if way == "forked":
        return f"runs on {slots} worker processes forked from the natsray process (no Ray)"
    if way == "driver-then-ray":
        return "runs start in the natsray process; a local Ray takes the rest once that pays for its start-up"
    return "runs on Ray"


def _run_forked(
    runs: Sequence[PlannedRun],
    todo: list[int],
    out: Path,
    slots: int,
    record: Callable[[int, RunOutcome], None],
) -> None:
    """Run the runs on ``slots`` workers forked from this process once it has prepared the evaluators'
    inputs, imported the engine and set up one evaluator per evaluator config: all inherited."""
    from natsray.engine.cluster import ConsistentInterrupt, take_sigterm

    shared = _prepare_shared([runs[i] for i in todo])
    _import_run_modules()
    kept: dict[str, Any] = {}
    for key in dict.fromkeys(_shared_key(runs[i]) for i in todo):
        first = next(i for i in todo if _shared_key(runs[i]) == key)
        evaluator = _reusable_evaluator(runs[first].config, shared[key])  # type: ignore[arg-type]
        if evaluator is not None:
            kept[key] = evaluator
    stores: list[StoreWriter] = []  # a worker's own, opened in it on its first chunk

    def work(
        chunk: list[int], report: Callable[[int, dict[str, Any]], None], gone: Callable[[], bool]
    ) -> None:
        if not stores:  # this worker's first chunk
            stores.append(StoreWriter(out))
            here = f"{os.uname().nodename}:{os.getpid()}"
            for evaluator in kept.values():  # built in the parent: the journal's worker is this process
                evaluator.worker = here
        key = _shared_key(runs[chunk[0]])
        items = [(runs[i].config, str(runs[i].run_dir), runs[i].name) for i in chunk]
        _execute_all(
            items,  # type: ignore[arg-type]
            out,
            shared[key],
            None,
            lambda position, result: report(chunk[position], result),
            gone,
            kept=(kept, key),
            store=stores[0],
        )

    def interrupted() -> None:
        if take_sigterm():
            raise ConsistentInterrupt

    def recover(held: list[int]) -> dict[int, dict[str, Any]]:
        """Of a dead worker's unreported runs, those in the store (finished, whose results it had not
        sent yet): recorded from there, not run again (all run again if the store cannot be read)."""
        try:
            stored = stored_runs(out)
        except (OSError, ValueError):
            return {}
        return {
            i: {"evaluations": stored[runs[i].name].summary.get("evaluations"), "node": None}
            for i in held
            if runs[i].name in stored
        }

    run_forked(
        _Queue(runs, todo, slots, affinity=True),
        work,
        slots,
        lambda i, result: _record_result(runs, i, result, record),
        TASK_RETRIES,
        check_interrupt=interrupted,
        recover=recover,
    )


RAY_START_S = 8.0
"""What starting a local Ray is assumed to cost (seconds): 6-11 s measured on the 2-core development
machine, a few seconds on larger ones. A sweep left to choose (no ``parallel``, no cluster) runs its
cheap runs in the driver while the rest of them would take less than this on the cores Ray would add."""


def _may_start_ray_later(
    runs: Sequence[PlannedRun], todo: list[int], parallel: int | None, address: str | None
) -> bool:
    """True when the sweep may begin in the driver and start a local Ray only if its runs are long
    enough to pay for it: parallelism left to natsray and :func:`_no_ray_needed`."""
    return parallel is None and _no_ray_needed(runs, todo, address)


def _ray_pays_off(total: int, cpus: int | None = None) -> Callable[[int, float], bool]:
    """The driver's stopping rule for ``total`` runs: after ``done`` runs in ``seconds`` (the first
    run, which pays the imports, not counted), stop when the others would take longer on one core
    than :data:`RAY_START_S` plus their share on the ``N`` cores a local Ray would get
    (``resources.num_cpus``, default all): ``(1 - 1/N) * rest > RAY_START_S``."""
    cores = max(cpus or usable_cpus(), 1)
    start: list[float] = []

    def stop(done: int, seconds: float) -> bool:
        if done == 1:
            start.append(seconds)
            return False
        if done < 3 or cores == 1:
            return False
        per_run = (seconds - start[0]) / (done - 1)
        return (total - done) * per_run * (1 - 1 / cores) > RAY_START_S

    return stop


def _run_in_driver(
    runs: Sequence[PlannedRun],
    todo: list[int],
    out: Path,
    record: Callable[[int, RunOutcome], None],
    until: Callable[[int, float], bool] | None = None,
    shared: dict[str, Any] | None = None,
) -> list[int]:
    """Run the runs in this process, one after another (no Ray to start), with the evaluators'
    inputs ``shared`` (by :func:`_shared_key`; prepared here when None).

    ``until(runs done, seconds)`` is asked after each run; when it says so, the runs not started
    are returned (to run on Ray) instead.
    """
    shared = _prepare_shared([runs[i] for i in todo]) if shared is None else shared
    began = time.perf_counter()
    done: list[int] = []

    def report(i: int, result: dict[str, Any]) -> None:
        _record_result(runs, i, result, record)
        done.append(i)

    def stop() -> bool:
        return until is not None and until(len(done), time.perf_counter() - began)

    store = StoreWriter(out)
    try:
        for key in dict.fromkeys(_shared_key(runs[i]) for i in todo):
            group = [i for i in todo if _shared_key(runs[i]) == key]
            items = [(runs[i].config, str(runs[i].run_dir), runs[i].name) for i in group]
            _execute_all(  # type: ignore[arg-type]
                items,
                out,
                shared[key],
                None,
                lambda position, result, g=group: report(g[position], result),
                stop,
                store=store,
            )
            if stop():
                break
    finally:
        store.close()
    finished = set(done)
    return [i for i in todo if i not in finished]


def _record_result(
    runs: Sequence[PlannedRun], i: int, result: dict[str, Any], record: Callable[[int, RunOutcome], None]
) -> None:
    run_dir = str(runs[i].run_dir)
    if "error" in result:
        record(i, RunOutcome(run_dir, "failed", result["error"], result["node"]))
    else:
        record(i, RunOutcome(run_dir, "done", None, result["node"], result["evaluations"]))


def _run_on_ray(
    runs: Sequence[PlannedRun],
    todo: list[int],
    out: Path,
    parallel: int | None,
    address: str | None,
    record: Callable[[int, RunOutcome], None],
    shared: dict[str, Any] | None = None,
) -> None:
    import ray

    from natsray.engine.cluster import local_ray_started_here
    from natsray.engine.runner import connect_ray

    first = runs[todo[0]].config
    assert first is not None
    # inside run_sweep's sigterm_interrupts: SIGTERM stays natsray's
    started = connect_ray(first, address, out)
    try:
        tasks = [i for i in todo if _local(runs[i].config)]  # type: ignore[arg-type]
        if tasks:
            warm_up = local_ray_started_here()
            _task_loop(runs, tasks, out, parallel, record, shared=shared, warm_up=warm_up)
        for i in [i for i in todo if i not in set(tasks)]:  # actor-based runs: one at a time
            run = runs[i]
            try:
                evaluations = execute_run(run.config, run.run_dir, address=address)  # type: ignore[arg-type]
            except Exception as exc:
                record(i, RunOutcome(str(run.run_dir), "failed", _one_line(exc)))
            else:
                node = ray.get_runtime_context().get_node_id()
                record(i, RunOutcome(str(run.run_dir), "done", node=node, evaluations=evaluations))
    finally:
        if started:
            ray.shutdown()


class _Queue:
    """The runs not yet handed out, as chunks of runs with one evaluator config (one ``_shared_key``).

    Guided sizes: a chunk is a third of the runs left per slot (at most :data:`CHUNK_RUNS`, at
    least one), so chunks are large while many runs are left and single runs at the end, and
    all slots finish close together.

    Which runs: by default (Ray, where any worker may get any chunk) the configs one after another in
    plan order. With ``affinity`` (forked workers), ``take(previous)`` keeps a worker whose previous
    chunk was ``previous`` on that chunk's config while it has runs left, and sends a new worker
    (``previous`` None) or one whose config ran out to the config with the most runs left. A look-up
    evaluator warms up in each process: it scores a cell the first time it is asked for it (then
    memoised), and the table evaluator computes its per-cell mean columns on the first call. In the
    300-run NATS-protocol sweep that took 0.17-0.21 s of 1.6-2.2 s of runs in one process on the
    development machine. Two forked workers scored 34,131 cells where one process scores 26,878 when
    both took chunks of every config, and 29,298 kept to their configs.
    """

    def __init__(
        self, runs: Sequence[PlannedRun], tasks: list[int], slots: int, *, affinity: bool = False
    ) -> None:
        self._runs, self._slots, self._affinity = runs, max(slots, 1), affinity
        self._by_key: dict[str, deque[int]] = {}  # in plan order, keys in order of first appearance
        for i in tasks:
            self._by_key.setdefault(_shared_key(runs[i]), deque()).append(i)
        self._left = len(tasks)

    def __bool__(self) -> bool:
        return self._left > 0

    def take(self, previous: list[int] | None = None) -> list[int]:
        by_key = self._by_key
        if not self._affinity:
            key = next(iter(by_key))
        else:
            key = _shared_key(self._runs[previous[0]]) if previous else ""
            if key not in by_key:
                key = max(by_key, key=lambda k: len(by_key[k]))  # the first of the largest
        runs = by_key[key]
        size = min(len(runs), max(1, min(CHUNK_RUNS, self._left // (3 * self._slots))))
        chunk = [runs.popleft() for _ in range(size)]
        if not runs:
            del by_key[key]
        self._left -= size
        return chunk


def _task_loop(
    runs: Sequence[PlannedRun],
    tasks: list[int],
    out: Path,
    parallel: int | None,
    record: Callable[[int, RunOutcome], None],
    shared: dict[str, Any] | None = None,
    warm_up: bool = False,
) -> None:
    """Run ``tasks`` as Ray tasks, up to ``parallel`` at once (all of them when None: Ray queues the
    rest), with the evaluators' inputs ``shared`` (prepared here when None).

    ``warm_up`` (a local Ray this sweep started): the workers import natsray while this process
    prepares and puts the inputs.
    """
    import ray

    first = runs[tasks[0]].config
    assert first is not None
    cpus = max(first.resources.cpus_per_actor, 1e-3)
    slots = parallel or max(1, int(ray.cluster_resources().get("CPU", 1) / cpus))
    remote = ray.remote(_chunk_task).options(  # over all nodes from the start (Ray's default fills the
        num_cpus=cpus, max_retries=TASK_RETRIES, retry_exceptions=False, scheduling_strategy="SPREAD"
    )  # driver's node first, which can take every short run before another node's worker is up)
    token = uuid.uuid4().hex
    if warm_up:
        for _ in range(min(slots, len(tasks))):
            remote.remote([], "", None, token)
    shared = _prepare_shared([runs[i] for i in tasks]) if shared is None else shared
    refs = {key: ray.put(value) for key, value in shared.items()}
    queue = _Queue(runs, tasks, slots)
    inflight: dict[Any, list[int]] = {}
    limit = parallel or len(tasks)
    while queue or inflight:
        while queue and len(inflight) < limit:
            chunk = queue.take()
            items = [(runs[i].config, str(runs[i].run_dir.absolute()), runs[i].name) for i in chunk]
            ref = remote.remote(items, str(out.resolve()), refs[_shared_key(runs[chunk[0]])], token)
            inflight[ref] = chunk
        ready, _ = ray.wait(list(inflight), num_returns=1)
        for ref in ready:
            chunk = inflight.pop(ref)
            try:
                results = ray.get(ref)
            except ray.exceptions.RayError as exc:  # retries exhausted
                for i in chunk:
                    record(i, RunOutcome(str(runs[i].run_dir), "failed", _one_line(exc)))
                continue
            for i, result in zip(chunk, results, strict=True):
                _record_result(runs, i, result, record)
