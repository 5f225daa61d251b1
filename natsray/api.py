"""The Python API: run a search, read a run, run a sweep, from a script or a notebook.

::

    import natsray

    run = natsray.run(
        {"strategy": {"name": "regularized_evolution"}, "budget": {"evaluations": 200}},
        evaluator=lambda arch, context: {"score": sum(op == "nor_conv_3x3" for op in arch.ops)},
    )
    run.best.arch, run.best.objectives   # the best cell and its objectives
    run.evaluations                      # a pandas DataFrame, equal to run.path / "evaluations.csv"

A run started here is the same complete run directory ``natsray run`` makes (``config.yaml``,
journal, checkpoint, summary, CSV, plots), so ``natsray report`` and ``natsray resume`` work on it
(except that a run scored by a Python callable resumes from Python only:
``natsray.load_run(dir).resume(evaluator=fn)``). Ray is left as it was found: a Ray the caller
initialised stays up; one natsray started is shut down when the run ends. See ``docs/python-api.md``.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from natsray.callbacks import Callback
from natsray.config import ConfigError, ExperimentConfig, apply_overrides, config_to_dict, read_yaml
from natsray.experiment.lifecycle import (
    CONFIG_FILE,
    RUN_FILES,
    RunDirError,
    checked_config,
    clear_run_dir,
    execute,
    new_run,
    resume_config,
)
from natsray.search_space import Arch

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Best", "Run", "Sweep", "load_run", "load_sweep", "plan_sweep", "run", "sweep"]

ConfigLike = Mapping[str, Any] | str | Path | ExperimentConfig
"""A config: a mapping as read from YAML, a YAML file's path, or a parsed :class:`ExperimentConfig`."""
Scorer = Callable[[Arch, Any], Mapping[str, float]]
"""A scoring function ``(arch, context) -> {metric name: value}`` (``docs/extending.md``)."""

_PLOTS = ("best_so_far.png", "fitness.png", "pareto_front.png")


@dataclass(frozen=True)
class Best:
    """The best cell of a run (highest fitness; the first found among equals).

    Attributes:
        arch: The cell.
        objectives: Its objective values, as the evaluator returned them.
        metrics: Its report metrics.
        candidate_id: Its candidate id in the run.
    """

    arch: Arch
    objectives: Mapping[str, float]
    metrics: Mapping[str, Any]
    candidate_id: int | None


class Run:
    """A run directory, finished or interrupted (:func:`run`, :func:`load_run`).

    Everything is read from the directory when asked, so a :class:`Run` of a run still going shows
    its progress so far.

    Attributes:
        path: The run directory.
    """

    def __init__(self, path: str | Path, *, evaluator: Scorer | None = None) -> None:
        self.path = Path(path)
        self._evaluator = evaluator

    def __repr__(self) -> str:
        summary = self.summary
        state = (
            f"{summary['evaluations']} evaluations, stopped: {summary['stop_reason']}"
            if summary
            else "unfinished"
        )
        return f"Run({str(self.path)!r}: {state})"

    def _data(self) -> Any:
        from natsray.experiment.run_data import load_run as read_run

        return read_run(self.path)

    @property
    def config(self) -> Mapping[str, Any] | None:
        """``config.yaml`` as plain data (None when absent)."""
        return self._data().config

    @property
    def summary(self) -> Mapping[str, Any] | None:
        """``summary.json`` as last written, at each checkpoint and at the end (fields:
        ``docs/results.md``): ``stop_reason`` None while the run goes on (or when it was killed),
        ``"interrupted"`` when Ctrl-C / SIGTERM stopped it at a checkpoint. None before the first
        checkpoint, or when the run was killed after its last one (the summary is stale)."""
        return self._data().summary

    @property
    def finished(self) -> bool:
        """True when the run's search loop has ended (budget, strategy, space exhausted)."""
        from natsray.engine.checkpoint import CHECKPOINT_FILE, read_json

        checkpoint = read_json(self.path / CHECKPOINT_FILE)
        return bool(checkpoint and checkpoint.get("finished"))

    @property
    def best(self) -> Best | None:
        """The best cell so far (from the summary, else from the journal); None when nothing succeeded."""
        from natsray.experiment.report import best_record

        record = best_record(self._data())
        if record is None:
            return None
        return Best(
            Arch.from_str(record["arch"]),
            dict(record.get("objectives") or {}),
            dict(record.get("metrics") or {}),
            record.get("candidate_id"),
        )

    @property
    def evaluations(self) -> pd.DataFrame:
        """One row per finished evaluation, as ``evaluations.csv`` (columns: ``docs/results.md``).

        A finished run's ``evaluations.csv`` read with ``pandas.read_csv``; for a run that has not
        written it (interrupted, or still running) the same table made from its journal now.
        """
        import tempfile

        import pandas as pd

        from natsray.experiment.journal_table import write_csv

        csv = self.path / "evaluations.csv"
        data = self._data()
        if csv.is_file() and self.finished and data.summary is not None:
            return pd.read_csv(csv)
        with tempfile.TemporaryDirectory() as tmp:
            write_csv(data.table, Path(tmp) / "evaluations.csv")
            return pd.read_csv(Path(tmp) / "evaluations.csv")

    @property
    def plots(self) -> dict[str, Path]:
        """The run's PNG plots that exist, by name (``best_so_far``, ``fitness``, ``pareto_front``)."""
        return {name[:-4]: self.path / name for name in _PLOTS if (self.path / name).is_file()}

    def resume(
        self,
        *,
        overrides: Sequence[str] = (),
        evaluator: Scorer | None = None,
        callbacks: Iterable[Callback] = (),
        progress: bool | None = None,
        address: str | None = None,
    ) -> Run:
        """Continue the run (interrupted), or extend it (finished) with raised ``budget.*`` overrides.

        Args:
            overrides: ``budget.KEY=VALUE`` items, e.g. ``["budget.evaluations=500"]``.
            evaluator: The scoring callable of a run started with ``natsray.run(evaluator=fn)``
                (default: the one this object was made with, if any).
            callbacks: :class:`~natsray.Callback` objects called on each result and at the end
                (``docs/callbacks.md``); on resume they see the results from then on.
            progress: Show the progress bar (default: the run's ``output.progress``).
            address: Ray cluster to join (default: ``RAY_ADDRESS``, else a local Ray).

        Returns:
            This run.

        Raises:
            RunDirError: an override outside ``budget.*``, or a used-up budget not raised.
            ConfigError: the run needs its Python callable and none was given.
        """
        function = evaluator if evaluator is not None else self._evaluator
        config = resume_config(self.path, overrides, function=function)
        config = dataclasses.replace(config, ray=dataclasses.replace(config.ray, address=address))
        shared = _preflight(config, address)
        execute(config, self.path, resume=True, progress=progress, callbacks=tuple(callbacks), shared=shared)
        self._evaluator = function
        return self


def _preflight(config: ExperimentConfig, address: str | None) -> Any:
    """What ``natsray run`` checks before Ray starts or a file is made
    (:func:`~natsray.engine.preflight.preflight`), as the shell does: a refusal raises its one line,
    a warning (e.g. an ``extra_csv`` covering part of the space) is a :class:`UserWarning`.

    Returns:
        The evaluator's prepared inputs, for the run to reuse.
    """
    import warnings

    from natsray.engine.preflight import preflight

    try:
        import ray

        joined = ray.is_initialized()  # a Ray the user started: its resources are checked on joining
    except ImportError:  # pragma: no cover - ray is a dependency
        joined = False
    checked = preflight(config, address=address or ("auto" if joined else None))
    for warning in checked.warnings:
        warnings.warn(warning, UserWarning, stacklevel=3)
    return checked.shared


def _raw(config: ConfigLike) -> tuple[dict[str, Any], str | None]:
    """``(raw config data, its source for error messages)``."""
    if isinstance(config, ExperimentConfig):
        return config_to_dict(config), None
    if isinstance(config, str | Path):
        return read_yaml(Path(config)), str(config)
    if isinstance(config, Mapping):
        return dict(config), None
    raise ConfigError(
        f"config: expected a mapping, a YAML file's path or an ExperimentConfig, got {type(config).__name__}"
    )


def _with_evaluator(data: dict[str, Any], evaluator: Scorer | type | str | None) -> dict[str, Any]:
    """``data`` whose evaluator is the function evaluator scoring with ``evaluator``, or the evaluator
    class ``evaluator`` (by its import path), if given."""
    if evaluator is None:
        return data
    from natsray.evaluators import BaseEvaluator

    if isinstance(evaluator, BaseEvaluator):
        name = type(evaluator).__name__
        raise ConfigError(
            f"evaluator: got an instance of {name}; pass the class (evaluator={name}): each Ray actor builds "
            "its own from the config's evaluator section"
        )
    if not callable(evaluator) and not isinstance(evaluator, str):
        raise ConfigError(
            f"evaluator: expected a callable (arch, context) -> mapping, 'package.module:function' or a "
            f"natsray.BaseEvaluator subclass, got {type(evaluator).__name__}"
        )
    section = data.get("evaluator")
    section = dict(section) if isinstance(section, Mapping) else {}
    if isinstance(evaluator, type):
        return {**data, "evaluator": {**section, "type": _class_type(evaluator, section.get("type"))}}
    if section.setdefault("type", "function") != "function":
        raise ConfigError(
            f"evaluator.type: {section['type']!r}, but evaluator= gives a scoring function "
            "(type 'function'); drop one of them"
        )
    section["function"] = evaluator
    return {**data, "evaluator": section}


def _with_dataset(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` whose ``evaluator.dataset``, if a Python callable (a dataset plugin: a function or
    class defined in a module), is its import path ``"module:qualname"`` (what ``config.yaml`` records
    and a resumed run imports again), as an evaluator class given to :func:`run` becomes its path.

    Raises:
        ConfigError: ``evaluator.dataset: ...``: defined in ``__main__`` or inside a function, or no
            callable.
    """
    section = data.get("evaluator")
    dataset = section.get("dataset") if isinstance(section, Mapping) else None
    if dataset is None or isinstance(dataset, str):
        return data
    from natsray.datasets.plugin import dataset_path

    try:
        path = dataset_path(dataset)
    except ValueError as exc:
        raise ConfigError(str(exc).removeprefix("dataset: "), path="evaluator.dataset") from None
    return {**data, "evaluator": {**section, "dataset": path}}


_SELECTORS = {"strategy": "name", "evaluator": "type"}
"""The key of each section that selects its class."""


def _with_classes(data: dict[str, Any], strategy: type | None) -> dict[str, Any]:
    """``data`` whose ``strategy.name`` / ``evaluator.type`` given as a class (in the mapping, or as
    ``run(strategy=cls)``) is the name that selects it."""
    if strategy is not None:
        if not isinstance(strategy, type):
            from natsray.errors import component_name
            from natsray.strategies import Strategy

            got = (  # an instance reads as the class it is of: say so
                f"an instance of {component_name(type(strategy))}: pass the class"
                if isinstance(strategy, Strategy)
                else type(strategy).__name__
            )
            raise ConfigError(
                f"strategy: expected a natsray.Strategy subclass (or set strategy.name), got {got}"
            )
        section = data.get("strategy")
        section = dict(section) if isinstance(section, Mapping) else {}
        given = section.get("name")
        section["name"] = _class_type(strategy, None if isinstance(given, type) else given, "strategy")
        data = {**data, "strategy": section}
    for name, key in _SELECTORS.items():
        section = data.get(name)
        if isinstance(section, Mapping) and isinstance(section.get(key), type):
            data = {**data, name: {**section, key: _class_type(section[key], None, name)}}
    return data


def _class_type(cls: type, given: Any, section: str = "evaluator") -> str:
    """The ``evaluator.type`` / ``strategy.name`` naming the class ``cls``: its built-in short name if it
    has one, else its import path ``"module:Class"`` (what ``config.yaml`` records, the Ray actors
    import and a resume from the shell reads).

    Raises:
        ConfigError: ``cls`` is not a :class:`~natsray.evaluators.BaseEvaluator` (a
            :class:`~natsray.Strategy`) subclass, has no import path (defined in ``__main__`` or
            inside a function), or ``given`` (the section's ``type`` / ``name``) names another.
    """
    if section == "strategy":
        from natsray.strategies import STRATEGIES as builtins
        from natsray.strategies import Strategy as base

        what = "not a natsray.Strategy subclass"
    else:
        from natsray.evaluators import EVALUATOR_TYPES as builtins
        from natsray.evaluators import BaseEvaluator as base

        what = "neither a scoring function (arch, context) -> mapping nor a natsray.BaseEvaluator subclass"
    key = f"{section}.{_SELECTORS[section]}"
    path = f"{cls.__module__}:{cls.__qualname__}"
    if not issubclass(cls, base):
        raise ConfigError(f"{section}: {path} is a class, {what}")
    if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
        where = "__main__" if cls.__module__ == "__main__" else "a function"
        raise ConfigError(
            f"{section}: {cls.__qualname__} is defined in {where}, so the Ray actors and a resumed run "
            f"cannot import it: define it in a module of your own and pass it (or set {key}: "
            "'module:Class')"
        )
    name = next((short for short, target in builtins.items() if target == path), path)
    if given is not None and given not in (name, path):
        raise ConfigError(f"{key}: {given!r}, but {section}= gives the class {path}; drop one of them")
    return name


def run(
    config: ConfigLike,
    *,
    out: str | Path | None = None,
    overrides: Sequence[str] = (),
    evaluator: Scorer | type | str | None = None,
    callbacks: Iterable[Callback] = (),
    progress: bool | None = None,
    overwrite: bool = False,
    address: str | None = None,
    strategy: type | None = None,
) -> Run:
    """Run a search; the run directory is complete as one ``natsray run`` makes.

    Args:
        config: A config mapping (the YAML sections: ``strategy``, ``evaluator``, ``budget``, ...),
            a YAML file's path, or an :class:`~natsray.config.ExperimentConfig`.
        out: The run directory (default ``output.dir`` of the config, ``runs/run``).
        overrides: ``KEY.PATH=VALUE`` items, as ``natsray run --set``.
        evaluator: A scoring function ``(arch, context) -> {name: value}`` (a Python callable,
            shipped to the Ray actors by cloudpickle; or ``"package.module:function"``): the run's
            evaluator becomes ``type: function`` with this function; the ``evaluator`` section, if
            any, gives its other keys (``objective`` default ``score``, ``cheap``, ``params``, ...).
            Or a :class:`~natsray.evaluators.BaseEvaluator` subclass defined in a module: the run's
            ``evaluator.type`` becomes its import path ``"module:Class"`` (as in YAML), the section
            gives its ``Config`` keys.

            The evaluator section's ``dataset`` (``type: train`` / ``proxy``) may likewise be a dataset
            plugin given as the Python function or class itself, defined in a module: it becomes its
            import path ``"module:function"`` (``docs/training.md``).
        callbacks: :class:`~natsray.Callback` objects called on each result and at the end, after
            those of the config's ``callbacks`` section (``docs/callbacks.md``).
        progress: Show a progress bar (tqdm; a widget in Jupyter when ipywidgets is installed);
            default: the config's ``output.progress``.
        overwrite: Delete a run already in ``out`` (one natsray made).
        address: Ray cluster to join (default ``ray.address``, ``RAY_ADDRESS``, else a local Ray;
            a Ray already initialised in this process is used and left running).
        strategy: A :class:`~natsray.Strategy` subclass defined in a module: the run's
            ``strategy.name`` becomes its import path ``"module:Class"`` (a built-in's short name),
            the ``strategy`` section gives its ``Config`` keys. A class given as ``strategy.name`` /
            ``evaluator.type`` in the config mapping is taken the same way.

    Returns:
        The finished :class:`Run`.

    Raises:
        ConfigError: one line naming the key and what was expected (also: ``evaluator`` an
            evaluator instance, a class that is no evaluator or strategy, or one without an import path).
        RunDirError: ``out`` already holds a run (and not ``overwrite``).
        EvaluatorError: the evaluator cannot be set up (e.g. its function does not import on the
            actors).
        KeyboardInterrupt: interrupted; the run directory is kept: ``load_run(out).resume()``.
    """
    data, source = _raw(config)
    data = apply_overrides(
        _with_dataset(_with_evaluator(_with_classes(data, strategy), evaluator)), overrides
    )
    parsed = checked_config(data, source)
    if address is not None:
        parsed = dataclasses.replace(parsed, ray=dataclasses.replace(parsed.ray, address=address))
    run_dir = Path(out if out is not None else parsed.output.dir)
    shared = _preflight(parsed, address)
    parsed = new_run(parsed, run_dir, overwrite=overwrite)
    execute(parsed, run_dir, resume=False, progress=progress, callbacks=tuple(callbacks), shared=shared)
    function = evaluator if callable(evaluator) and not isinstance(evaluator, type) else None
    return Run(run_dir, evaluator=function)


def load_run(run_dir: str | Path) -> Run:
    """Open a run directory (finished, interrupted or still running).

    Raises:
        RunDirError: not a run directory (no journal, summary or ``config.yaml``).
    """
    path = Path(run_dir)
    from natsray.engine.checkpoint import JOURNAL_FILE, SUMMARY_FILE

    if not path.is_dir():
        raise RunDirError(f"{path}: no such run directory")
    if not any((path / name).is_file() for name in (JOURNAL_FILE, SUMMARY_FILE, CONFIG_FILE)):
        raise RunDirError(f"{path}: not a run directory (no {JOURNAL_FILE}, {SUMMARY_FILE} or {CONFIG_FILE})")
    return Run(path)


class Sweep:
    """A sweep directory (:func:`sweep`, :func:`load_sweep`): its runs, outcomes and report.

    Attributes:
        path: The sweep directory (``sweep.yaml``).
        outcomes: Each run's outcome (``natsray.study.sweep.RunOutcome``) when this object ran them.
    """

    def __init__(self, path: str | Path, outcomes: Sequence[Any] = ()) -> None:
        self.path = Path(path)
        self.outcomes = tuple(outcomes)

    def __repr__(self) -> str:
        return f"Sweep({str(self.path)!r}: {len(self.runs)} runs)"

    @property
    def runs(self) -> list[Run]:
        """Every planned run (in plan order), finished or not. A run kept in the sweep's store gets its
        run directory written now (``docs/sweeps.md``), so that :class:`Run` reads it like any other."""
        from natsray.study import load_plan, plan_runs
        from natsray.study.store import stored_runs, write_run_dir

        planned = plan_runs(load_plan(self.path), self.path, typed=False)  # no plugin imported
        stored = stored_runs(self.path)
        for run in planned:
            if run.name in stored and not run.run_dir.is_dir():
                write_run_dir(self.path, run.run_dir, run.data, stored)
        return [Run(run.run_dir) for run in planned]

    def report(self, out: str | Path | None = None, *, show: bool = False) -> dict[str, Any]:
        """Write the comparative report (``natsray report SWEEP_DIR``; default ``SWEEP_DIR/report``);
        its rows. Prints nothing unless ``show``: then the Markdown table, as the command does."""
        from natsray.study.report import sweep_report

        return sweep_report(self.path, None if out is None else Path(out), show=show)

    def resume(self, *, parallel: int | None = None, progress: bool | None = None) -> Sweep:
        """Run what is left of the sweep (``natsray resume SWEEP_DIR``)."""
        from natsray.study import load_plan, plan_runs, run_sweep

        runs = plan_runs(load_plan(self.path), self.path.resolve())
        self.outcomes = run_sweep(runs, self.path, parallel=parallel, progress=progress).runs
        return self


def sweep(
    config: ConfigLike,
    *,
    out: str | Path | None = None,
    seeds: str | int | Sequence[int] | None = None,
    grid: Sequence[str] = (),
    overrides: Sequence[str] = (),
    parallel: int | None = None,
    progress: bool | None = None,
    overwrite: bool = False,
    report: bool = True,
    callbacks: Iterable[Callback] = (),
) -> Sweep:
    """Run a sweep: seeds x grid points of one config, in parallel (``docs/sweeps.md``, "Execution": on one
    Linux machine, look-up runs go to worker processes forked from this one; other runs, and runs on a
    cluster, to Ray).

    Args:
        config: As for :func:`run`; may hold a ``sweep`` section. Its evaluator must be named in
            the config (a function by import path): each run may go to another process or Ray worker.
        out: The sweep directory (default ``output.dir`` of the config).
        seeds: The seeds (``"0-9"``, ``"0,3,5"``, an int or a list), replacing ``sweep.seeds``.
        grid: ``KEY.PATH=v1,v2`` axes, as ``--grid``.
        overrides: ``KEY.PATH=VALUE`` items for the base config.
        parallel: At most this many runs at once.
        progress: Show the runs-done bar (default: the config's ``output.progress``).
        overwrite: Delete runs (and a sweep plan) already in ``out``.
        report: Write the comparative report when done (``SWEEP_DIR/report``; nothing printed:
            ``sweep.report(show=True)`` prints its table).
        callbacks: :class:`~natsray.Callback` objects called on this process as runs end and at
            the sweep's end (``docs/callbacks.md``).

    Raises:
        ConfigError: no seeds/grid/``sweep`` section, a grid point whose config is invalid (one line
            naming it and the field; nothing run or written), or a malformed axis.
        ValueError: ``parallel`` is not a positive integer.
        RunDirError: ``out`` already holds a sweep or a run (and not ``overwrite``).
        RunInUseError: with ``overwrite``, another process holds the sweep or one of its runs.
    """
    from natsray.study import run_sweep
    from natsray.study.plot_process import PlotProcess
    from natsray.study.report import sweep_report
    from natsray.study.sweep import check_parallel

    check_parallel(parallel)  # before the sweep's directory is made
    data, source = _raw(config)
    data = _with_dataset(_with_classes(data, None))
    seed_spec = seeds if seeds is None or isinstance(seeds, str) else _seed_text(seeds)
    root, runs = plan_sweep(
        data,
        out,
        overrides=overrides,
        grid=grid,
        seeds=seed_spec,
        source=source,
        overwrite=overwrite,
        absolute=True,  # a run task's worker may run in another directory (ray.runtime_env.working_dir)
    )
    plotter = PlotProcess.start() if report else None  # imports matplotlib on a core the runs leave free
    try:
        outcome = run_sweep(
            runs,
            root,
            parallel=parallel,
            progress=progress,
            callbacks=tuple(callbacks),
            on_cores_free=None if plotter is None else plotter.preload,
        )
        result = Sweep(root, outcome.runs)
        if report:
            sweep_report(root, plotter=plotter)
    finally:
        if plotter is not None:
            plotter.close()
    return result


def plan_sweep(
    data: Mapping[str, Any],
    out: str | Path | None,
    *,
    overrides: Sequence[str] = (),
    grid: Sequence[str] = (),
    seeds: str | None = None,
    source: str | None = None,
    overwrite: bool = False,
    absolute: bool = False,
    check: Callable[[list[Any]], list[Any]] | None = None,
) -> tuple[Path, list[Any]]:
    """Plan a sweep and make its directory (``sweep.yaml`` written; what ``natsray run --seeds/--grid``
    and :func:`sweep` share).

    Args:
        absolute: Give the runs absolute directories (a relative ``out`` is otherwise kept as
            written in each run's ``output.dir``).
        check: Called with the planned runs before anything is written; returns them (a run it
            refuses with ``error`` set and no config) or raises (``natsray run``'s pre-flight).

    Returns:
        ``(sweep directory, planned runs)`` (``natsray.study.grid.PlannedRun``).

    Raises:
        ConfigError: no sweep asked for, a grid point whose config is invalid (named), or a malformed axis.
        RunDirError: ``out`` already holds a sweep or a run (and not ``overwrite``).
    """
    from natsray.engine.checkpoint import check_not_in_use
    from natsray.study import plan_runs, sweep_from_config
    from natsray.study.grid import SWEEP_FILE, sweep_error, write_plan
    from natsray.study.store import STORE_DIR

    function = (
        (data.get("evaluator") or {}).get("function") if isinstance(data.get("evaluator"), Mapping) else None
    )
    if function is not None and not isinstance(function, str):
        raise ConfigError(
            "evaluator.function: a sweep names its scoring function by import path "
            "('package.module:function'): each run may go to another Ray worker, and sweep.yaml must name it"
        )
    plan = sweep_from_config(data, overrides, grid, seeds, source or "sweep")
    if plan is None:
        raise ConfigError("sweep: give seeds, a grid or a 'sweep' section in the config")
    root = Path(out if out is not None else (plan.base.get("output") or {}).get("dir") or "runs/run")
    runs = plan_runs(plan, root.resolve() if absolute else root)
    if any(planned.config is None for planned in runs):  # every grid point must be valid before anything runs
        raise ConfigError(sweep_error(runs, plan.source))
    if check is not None:
        runs = check(runs)
    if all(planned.config is None for planned in runs):
        raise ConfigError(runs[0].error or "sweep: no runs")
    if (root / SWEEP_FILE).exists() and not overwrite:
        if _same_plan(root, plan):
            raise RunDirError(
                f"{root} already holds a sweep: continue it with 'natsray resume {root}' "
                "(natsray.load_sweep(...).resume()), replace it with --overwrite (overwrite=True), "
                "or choose another --out"
            )
        raise RunDirError(
            f"{root} already holds another sweep (its {SWEEP_FILE} plans a different config or grid): "
            f"give this one its own --out (out=...), or continue that one with 'natsray resume {root}'"
        )
    if any((root / name).exists() for name in RUN_FILES) and not overwrite:
        raise RunDirError(
            f"{root} holds a single run, not a sweep: give the sweep its own --out (out=...), "
            "or replace the run with --overwrite (overwrite=True)"
        )
    if overwrite:  # nothing is deleted while the sweep or any of its runs is live
        for directory in (root, *(planned.run_dir for planned in runs)):
            check_not_in_use(directory)
        if not (root / SWEEP_FILE).exists():
            clear_run_dir(root, overwrite=True)  # a single run there (a sweep's own files are kept)
    for planned in runs:
        clear_run_dir(planned.run_dir, overwrite=overwrite)
    for name in (SWEEP_FILE, "sweep-runs.jsonl"):
        (root / name).unlink(missing_ok=True)
    shutil.rmtree(root / STORE_DIR, ignore_errors=True)  # an earlier sweep's finished runs
    write_plan(plan, root)
    return root, runs


def _same_plan(root: Path, plan: Any) -> bool:
    """True when ``root/sweep.yaml`` plans the sweep that ``plan`` does (base config and grid; the seeds
    may differ), or cannot be read (then resume's own message says what is wrong with it)."""
    import yaml

    from natsray.study.grid import load_plan

    try:
        old = load_plan(root)
    except ConfigError:
        return True

    def text(one: Any) -> str:
        grid = [(axis.name, [(label, dict(values)) for label, values in axis.values]) for axis in one.axes]
        return yaml.safe_dump([dict(one.base), grid])

    return text(old) == text(plan)


def _seed_text(seeds: int | Sequence[int]) -> str:
    return str(seeds) if isinstance(seeds, int) else ",".join(str(int(seed)) for seed in seeds)


def load_sweep(sweep_dir: str | Path) -> Sweep:
    """Open a sweep directory.

    Raises:
        ConfigError: no ``sweep.yaml`` there.
    """
    from natsray.study import load_plan

    load_plan(Path(sweep_dir))
    return Sweep(sweep_dir)
