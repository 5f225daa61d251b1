"""Running a sweep: every (grid point, seed) run in parallel on Ray, resumable, fault-tolerant.

Runs whose loop needs no actors of its own (``engine.mode: simulated`` or
``engine.in_process``, i.e. cheap look-up evaluators) are one Ray task each, with
``num_cpus = resources.cpus_per_actor``; Ray runs as many at once as the cluster has room
for (``parallel`` caps it). The evaluator's read-only inputs (the compact table) are
prepared once on the driver per distinct evaluator config and ``ray.put`` once; each task
receives them from the object store (one copy per node, zero-copy numpy). Runs whose
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
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from natsray.callbacks import Callback, CallbackList
from natsray.config import ExperimentConfig, dump_config
from natsray.engine.checkpoint import CHECKPOINT_FILE, JOURNAL_FILE, RunLock, drop_torn_line, read_json
from natsray.study.grid import PlannedRun

__all__ = ["RunOutcome", "SweepOutcome", "execute_run", "run_state", "run_sweep"]

STATUS_FILE = "sweep-runs.jsonl"
TASK_RETRIES = 3
"""Ray retries of a run task whose worker process or node died."""


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


def run_state(run_dir: Path) -> str:
    """``finalized``, ``finished`` (loop done, CSV/plots missing), ``started`` or ``new``."""
    checkpoint = read_json(run_dir / CHECKPOINT_FILE) if (run_dir / CHECKPOINT_FILE).exists() else None
    if checkpoint is not None and checkpoint.get("finished"):
        return "finalized" if (run_dir / "evaluations.csv").exists() else "finished"
    if checkpoint is not None or (run_dir / JOURNAL_FILE).exists():
        return "started"
    return "new"


def _local(config: ExperimentConfig) -> bool:
    """True when the run's loop runs in one process (no actors of its own)."""
    return config.engine.mode == "simulated" or bool(config.engine.in_process)


def _one_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    return text if isinstance(exc, ValueError) and text else f"{type(exc).__name__}: {text}"


def execute_run(
    config: ExperimentConfig, run_dir: Path, shared: Any = None, address: str | None = None
) -> int:
    """Run, resume or finalise one run directory as ``natsray run`` / ``resume`` would; its evaluations."""
    from natsray.engine.runner import run_experiment
    from natsray.experiment.report import finalize_run

    state = run_state(run_dir)
    if state != "finalized":
        if state != "finished":
            run_dir.mkdir(parents=True, exist_ok=True)
            if not (run_dir / "config.yaml").exists():
                dump_config(config, run_dir / "config.yaml")
            run_experiment(  # the sweep's callbacks are called by run_sweep, on the driver
                replace(config, callbacks=()),
                run_dir,
                resume=state == "started",
                address=address,
                progress=False,
                shared=shared,
            )
        finalize_run(run_dir)
    summary = read_json(run_dir / "summary.json") or {}
    return int(summary.get("evaluations", 0))


def _task(config: ExperimentConfig, run_dir: str, shared: Any) -> dict[str, Any]:
    """Ray task body: one run; an exception becomes ``{"error": one line}`` (not retried)."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    try:
        evaluations = execute_run(config, Path(run_dir), shared)
    except Exception as exc:
        return {"error": _one_line(exc), "node": node}
    return {"evaluations": evaluations, "node": node}


class _Bar:
    """Runs done / total on stderr (tqdm), with the failure count."""

    def __init__(self, enabled: bool, total: int, initial: int) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, initial=initial, unit="run", file=sys.stderr, disable=not enabled)
        self.failed = 0

    def step(self, failed: bool) -> None:
        self.failed += failed
        self._bar.set_postfix({"failed": self.failed}, refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()


def _shared_refs(runs: Sequence[PlannedRun]) -> dict[int, Any]:
    """``ray.put`` each distinct evaluator config's prepared inputs once; index of run -> ref."""
    import ray

    from natsray.evaluators import evaluator_class

    by_config: dict[str, Any] = {}
    refs = {}
    for i, run in enumerate(runs):
        assert run.config is not None
        evaluator = run.config.evaluator
        key = repr(evaluator)
        if key not in by_config:
            by_config[key] = ray.put(evaluator_class(evaluator.type).prepare_shared(evaluator))
        refs[i] = by_config[key]
    return refs


def run_sweep(
    runs: Sequence[PlannedRun],
    out: Path,
    *,
    parallel: int | None = None,
    address: str | None = None,
    progress: bool = True,
    on_outcome: Callable[[RunOutcome], None] | None = None,
    callbacks: Sequence[Callback] = (),
) -> SweepOutcome:
    """Execute (or continue) the planned runs of a sweep.

    Args:
        runs: The plan (:func:`natsray.study.grid.plan_runs`).
        out: The sweep directory (``sweep-runs.jsonl`` goes there).
        parallel: At most this many run tasks at once (default: as many as Ray has CPUs for).
        address: Ray cluster to join (default: the config's ``ray.address`` / ``RAY_ADDRESS`` / a local Ray).
        progress: Show the runs-done bar on stderr.
        on_outcome: Called with each outcome as it comes (for printing).
        callbacks: Called on this (the driver) process after those of the plan's ``callbacks``
            config key (built once): ``on_sweep_start``, ``on_run_end`` for each run that is done or
            found finished (skipped) as its outcome comes, ``on_sweep_end``. The runs themselves run
            without callbacks.

    Returns:
        Every run's outcome in plan order. A run that fails does not stop the others.

    Raises:
        RunInUseError: another process is running this sweep (it holds ``out/.lock``).
    """
    outcomes: dict[int, RunOutcome] = {}
    todo: list[int] = []
    for i, run in enumerate(runs):
        if run.config is None:
            outcomes[i] = RunOutcome(str(run.run_dir), "failed", run.error)
        elif run_state(run.run_dir) == "finalized":
            outcomes[i] = RunOutcome(str(run.run_dir), "skipped")
        else:
            todo.append(i)
    out.mkdir(parents=True, exist_ok=True)
    lock = RunLock(out, timeout=0)  # one process per sweep directory
    hooks = CallbackList([*_callbacks(runs), *callbacks])
    hooks.sweep_start(out, len(runs))
    bar = _Bar(progress, len(runs), len(runs) - len(todo))
    drop_torn_line(out / STATUS_FILE)  # a sweep killed mid-line: its outcome is recorded again
    status = open(out / STATUS_FILE, "a", encoding="utf-8")  # noqa: SIM115 - closed in finally

    def record(i: int, outcome: RunOutcome) -> None:
        outcomes[i] = outcome
        status.write(json.dumps({**outcome.__dict__, "time": time.time()}) + "\n")
        status.flush()
        bar.step(outcome.status == "failed")
        if on_outcome is not None:
            on_outcome(outcome)
        if outcome.status == "done":
            run_end(Path(outcome.run_dir))

    def run_end(run_dir: Path) -> None:
        if hooks:
            hooks.run_end(run_dir, read_json(run_dir / "summary.json") or {}, report=False)

    try:
        for i in [i for i in outcomes if outcomes[i].status == "failed"]:
            if on_outcome is not None:
                on_outcome(outcomes[i])
        for i in [i for i in outcomes if outcomes[i].status == "skipped"]:
            run_end(Path(outcomes[i].run_dir))
        if todo:
            _run_on_ray(runs, todo, parallel, address, record)
    finally:
        bar.close()
        status.close()
        lock.release()
    result = SweepOutcome(tuple(outcomes[i] for i in range(len(runs))))
    hooks.sweep_end(out, result.runs)
    return result


def _callbacks(runs: Sequence[PlannedRun]) -> list[Callback]:
    """The sweep's callbacks: those of its first planned config's ``callbacks`` key."""
    config = next((run.config for run in runs if run.config is not None), None)
    return [spec.build() for spec in config.callbacks] if config is not None else []


def _run_on_ray(
    runs: Sequence[PlannedRun],
    todo: list[int],
    parallel: int | None,
    address: str | None,
    record: Callable[[int, RunOutcome], None],
) -> None:
    import ray

    from natsray.engine.runner import connect_ray

    first = runs[todo[0]].config
    assert first is not None
    started = connect_ray(first, address)
    try:
        tasks = [i for i in todo if _local(runs[i].config)]  # type: ignore[arg-type]
        if tasks:
            _task_loop(runs, tasks, parallel, record)
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


def _task_loop(
    runs: Sequence[PlannedRun],
    tasks: list[int],
    parallel: int | None,
    record: Callable[[int, RunOutcome], None],
) -> None:
    """Keep up to ``parallel`` run tasks in flight (all of them when None: Ray queues the rest)."""
    import ray

    shared = _shared_refs([runs[i] for i in tasks])
    pending = list(enumerate(tasks))[::-1]
    inflight: dict[Any, int] = {}
    limit = parallel or len(tasks)
    remote_task = ray.remote(_task)
    while pending or inflight:
        while pending and len(inflight) < limit:
            position, i = pending.pop()
            run = runs[i]
            assert run.config is not None
            remote = remote_task.options(
                num_cpus=run.config.resources.cpus_per_actor, max_retries=TASK_RETRIES, retry_exceptions=False
            )
            inflight[remote.remote(run.config, str(run.run_dir), shared[position])] = i
        ready, _ = ray.wait(list(inflight), num_returns=1)
        for ref in ready:
            i = inflight.pop(ref)
            run_dir = str(runs[i].run_dir)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as exc:  # retries exhausted
                record(i, RunOutcome(run_dir, "failed", _one_line(exc)))
                continue
            if "error" in result:
                record(i, RunOutcome(run_dir, "failed", result["error"], result["node"]))
            else:
                record(i, RunOutcome(run_dir, "done", None, result["node"], result["evaluations"]))
