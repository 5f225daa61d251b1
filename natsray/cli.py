"""The ``natsray`` command line: run | resume | report | export-table | validate | show | measure-latency |
components.

Exit codes: 0 success, 2 bad input (one line on stderr; also a ``resume --set budget.*``
that cannot run longer because another budget is used up), 1 failure during the run (one
line; ``NATSRAY_DEBUG=1`` shows the traceback) or a finished run (sweep) in which more than half
of the evaluations (runs) failed, 130 interrupted (one line saying how to continue), 141 (128 + SIGPIPE, as
``cat`` or ``grep``) when the reader of stdout went away (``natsray show ... | head -1``),
silently, after the command wrote its files. Ray and torch are imported only by the commands that
need them, so ``--help`` and ``validate`` stay fast.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from natsray.config import ConfigError, ExperimentConfig, apply_overrides, read_yaml
from natsray.engine.checkpoint import RunInUseError
from natsray.engine.cluster import ClusterError
from natsray.evaluators.base import EvaluatorError
from natsray.experiment.lifecycle import (
    RunDirError,
    checked_config,
    execute,
    new_run,
    resume_config,
)
from natsray.search_space import EDGES, Arch

__all__ = ["UsageError", "main", "parse_seeds"]

_NUM_CLASSES_INPUT = {"cifar10": (10, 32), "cifar100": (100, 32), "ImageNet16-120": (120, 16)}
_SHOW_METRICS = (
    "valid_accuracy@12",
    "test_accuracy@12",
    "valid_accuracy@200",
    "test_accuracy@200",
    "train_time@200",
    "params",
    "flops",
    "latency",
)


_PATH_ERRNOS = frozenset(
    {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENOENT}
)
"""File-system refusals of a path: bad input (exit 2), unlike a full disk or an I/O error (exit 1)."""


class UsageError(Exception):
    """Bad input from the user (config, arguments, paths): reported in one line, exit code 2."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a command that can be continued: carries the one-line hint how."""

    def __init__(self, hint: str) -> None:
        super().__init__(hint)
        self.hint = hint


class RunInterrupted(Interrupted):
    """Ctrl-C during a run or sweep: carries its directory so the hint can name it."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(f"continue with 'natsray resume {run_dir}'")
        self.run_dir = run_dir


class Stopped(Exception):
    """A failure that stopped a command which can be continued: the failure and the one-line hint how."""

    def __init__(self, cause: Exception, hint: str) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.hint = hint


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def parse_seeds(spec: str) -> list[int]:
    """Seeds from ``0-99`` (inclusive range), ``0,3,5`` or a mix such as ``0-4,10``."""
    from natsray.study.grid import parse_seeds as parse

    try:
        return list(parse(spec))
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _load(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Load, parse and check a config including its paths, made absolute; bad input becomes a UsageError."""
    try:
        return checked_config(apply_overrides(read_yaml(Path(path)), overrides), str(path))
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None


def _preflight(config: ExperimentConfig, address: str | None, source: str | Path) -> Any:
    """:func:`~natsray.engine.preflight.preflight` (what the run would refuse, before Ray starts and
    before any file is made): a refusal is a UsageError naming the config; warnings go to stderr."""
    from natsray.engine.preflight import preflight

    try:
        checked = preflight(config, address=address)
    except ValueError as exc:
        raise UsageError(f"{source}: {exc}") from None
    for warning in checked.warnings:
        print(f"natsray: warning: {warning}", file=sys.stderr)
    return checked


def _with_address(config: ExperimentConfig, address: str | None) -> ExperimentConfig:
    return dataclasses.replace(config, ray=dataclasses.replace(config.ray, address=address))


def _existing_dir(path: str, what: str) -> Path:
    directory = Path(path)
    if not directory.is_dir() and not (what == "run" and _from_sweep_store(directory)):
        raise UsageError(f"{path}: no such {what} directory")
    return directory


def _writable(path: Path, option: str, *, directory: bool = True) -> None:
    """Refuse an output path that cannot be written: one line naming it and what was expected.

    ``directory``: the path is a directory, else a file to write. Nothing is left behind: folders
    made to try are removed again.
    """
    if directory and path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path}: is a file, expected a directory")
    if not directory and path.is_dir():
        raise UsageError(f"{option} {path}: is a directory, expected a file to write")
    folder = path if directory else path.parent
    missing, existing = [], folder
    while not existing.exists() and existing != existing.parent:
        missing.append(existing)
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{option} {path}: {existing} is a file, expected a directory")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{option} {path}: cannot create directory {folder} ({exc.strerror})") from None
    writable = os.access(folder, os.W_OK | os.X_OK)
    for made in missing:  # deepest first
        made.rmdir()
    if not writable:
        raise UsageError(f"{option} {path}: directory {folder} is not writable")


@contextlib.contextmanager
def _reading_inputs(what: str) -> Iterator[None]:
    """A command whose ValueErrors are all about the files the user named: each is bad input."""
    try:
        yield
    except (UsageError, ConfigError, EvaluatorError):
        raise
    except ValueError as exc:
        raise UsageError(f"{what}: {exc}" if what else str(exc)) from None


def _from_sweep_store(run_dir: Path) -> bool:
    """Write a sweep's run directory from the sweep's store, where the run finished (docs/sweeps.md)."""
    from natsray.study.grid import SWEEP_FILE
    from natsray.study.store import write_run_dir

    for sweep_dir in run_dir.parents[:2]:
        if (sweep_dir / SWEEP_FILE).is_file():
            try:
                return write_run_dir(sweep_dir, run_dir)
            except (ConfigError, ValueError) as exc:
                raise UsageError(f"{run_dir}: cannot be read from the sweep's store: {exc}") from None
    return False


def _format_values(values: dict[str, Any] | None) -> str:
    return ", ".join(
        f"{name}={value:.6g}" if isinstance(value, float) else f"{name}={value}"
        for name, value in (values or {}).items()
    )


def _print_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    """A few lines: best arch, its objectives and metrics, evaluation counts and where the files are."""
    print(f"run dir       {run_dir}")
    print(f"best arch     {summary['best_arch']}")
    print(f"objectives    {_format_values(summary['best_objectives'])}")
    if summary["best_metrics"]:
        print(f"metrics       {_format_values(summary['best_metrics'])}")
    if summary["pareto_front"]:
        print(f"pareto front  {len(summary['pareto_front'])} cells")
    print(
        f"evaluations   {summary['evaluations']} ({summary['failed']} failed, {summary['cached']} cached); "
        f"stopped: {summary['stop_reason']}"
    )
    files = sorted(path.name for path in run_dir.iterdir() if not path.name.startswith("."))
    print(f"files         {', '.join(files)}")


def _execute(
    config: ExperimentConfig, run_dir: Path, *, resume: bool, progress: bool | None, shared: Any = None
) -> dict[str, Any]:
    try:
        summary = execute(
            config, run_dir, resume=resume, progress=progress, finishing=_finishing, shared=shared
        )
    except KeyboardInterrupt:
        raise RunInterrupted(run_dir) from None
    result = summary.to_dict()
    _print_summary(run_dir, result)
    return result


@contextlib.contextmanager
def _finishing() -> Iterator[None]:
    """While a finished run's CSV and plots are written (a few seconds), a first Ctrl-C only says so:
    the search is over and its files take moments, and a ``KeyboardInterrupt`` raised inside Arrow's or
    matplotlib's native code can abort the interpreter. A second Ctrl-C stops at once (exit 130)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        print("natsray: the search is finished, writing its files; Ctrl-C again to stop now", file=sys.stderr)
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # the next Ctrl-C ends the process

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _cmd_run(args: argparse.Namespace) -> int:
    if args.seeds is not None or args.grid or _has_sweep_section(args.config):
        return _run_sweep(args)
    config = _load(args.config, args.set)
    if args.address:
        config = _with_address(config, args.address)
        if config.engine.mode == "simulated" or config.engine.in_process:
            print(
                f"natsray: note: --address {args.address} is not used: this config runs in the driver "
                "(engine.mode simulated / engine.in_process); a sweep (--seeds/--grid) runs such runs "
                "on the cluster",
                file=sys.stderr,
            )
    run_dir = Path(args.out or config.output.dir)
    checked = _preflight(config, args.address, args.config)
    if run_dir.is_dir() or not run_dir.exists():  # (a file: new_run says so)
        _writable(run_dir, "--out" if args.out else "output.dir")
    config = new_run(config, run_dir, overwrite=args.overwrite)
    result = _execute(
        config, run_dir, resume=False, progress=False if args.no_progress else None, shared=checked.shared
    )
    return _mostly_failed(run_dir, result)


FAILED_FRACTION = 0.5
"""A run in which more than this fraction of the evaluations failed exits with code 1 (its files are
kept): the search learned from too few results to be trusted (e.g. an extra_csv covering 4 % of the
space). A sweep exits 1 when more than this fraction of its runs failed or mostly failed."""


def _mostly_failed(run_dir: Path, summary: dict[str, Any], *, quiet: bool = False) -> int:
    """Exit code of a finished run: 1 (with one line on stderr unless ``quiet``) when more than
    :data:`FAILED_FRACTION` of its evaluations failed."""
    evaluations, failed = summary.get("evaluations") or 0, summary.get("failed") or 0
    if evaluations and failed > FAILED_FRACTION * evaluations:
        if quiet:
            return 1
        print(
            f"natsray: {failed} of {evaluations} evaluations failed (more than "
            f"{FAILED_FRACTION:.0%}){_commonest_error(run_dir)}; the errors are in "
            f'{run_dir / "evaluations.jsonl"} ("error")',
            file=sys.stderr,
        )
        return 1
    return 0


def _commonest_error(run_dir: Path) -> str:
    """``", N of them: <error>"`` for the most frequent error of a run's journal ("" if none is read)."""
    from collections import Counter

    from natsray.engine.checkpoint import JOURNAL_FILE, read_journal

    try:
        errors = Counter(r["error"] for r in read_journal(run_dir / JOURNAL_FILE) if r.get("error"))
    except (OSError, ValueError):
        return ""
    if not errors:
        return ""
    error, count = errors.most_common(1)[0]
    return f", {count} of them: {error}"


def _has_sweep_section(path: str) -> bool:
    from natsray.config import read_yaml

    try:
        return "sweep" in read_yaml(Path(path))
    except ConfigError:
        return False  # _load reports it


def _run_sweep(args: argparse.Namespace) -> int:
    """``run`` with ``--seeds`` / ``--grid`` / a ``sweep`` section: plan, refuse clashes, execute, report."""
    from natsray.api import plan_sweep

    def check(runs: list[Any]) -> list[Any]:  # before the sweep's directory is made
        runs = _preflight_sweep(runs, args.address)
        if all(run.config is None for run in runs):
            raise UsageError(_sweep_error(args.config, runs[0]))
        return runs

    if args.out:
        _writable(Path(args.out), "--out")
    out, runs = plan_sweep(
        read_yaml(Path(args.config)),
        args.out,
        overrides=args.set,
        grid=args.grid,
        seeds=args.seeds,
        source=args.config,
        overwrite=args.overwrite,
        check=check,
    )
    return _finish_sweep(runs, out, args)


def _preflight_sweep(runs: Sequence[Any], address: str | None) -> list[Any]:
    """The planned runs, those of a grid point that :func:`~natsray.engine.preflight.preflight` refuses
    turned into failed plans (``error`` set): once per grid point, before anything runs. Warnings are
    printed once per grid point, prefixed with its name."""
    from natsray.engine.preflight import preflight

    errors: dict[str, str | None] = {}
    result = []
    for run in runs:
        name = run.point.name
        if run.config is not None and name not in errors:
            errors[name] = None
            try:
                checked = preflight(run.config, address=address, prepare=True)
            except ValueError as exc:
                errors[name] = str(exc)
            else:
                for warning in checked.warnings:
                    where = f"{name}: " if name else ""
                    print(f"natsray: warning: {where}{warning}", file=sys.stderr)
        error = errors.get(name)
        result.append(dataclasses.replace(run, config=None, error=error) if error else run)
    return result


def _finish_sweep(runs: Sequence[Any], out: Path, args: argparse.Namespace) -> int:
    """Execute a planned sweep, print its comparative report; exit code 1 when a run failed."""
    from natsray.experiment.report import aggregate_runs
    from natsray.study.grid import load_plan, plan_runs
    from natsray.study.plot_process import PlotProcess
    from natsray.study.report import load_sweep_runs, sweep_report
    from natsray.study.sweep import run_sweep

    def show(outcome: Any) -> None:
        if outcome.status == "failed":
            print(f"natsray: run failed: {outcome.run_dir}: {outcome.error}", file=sys.stderr)

    plotter = PlotProcess.start()  # imports matplotlib while the runs run
    try:
        try:
            outcome = run_sweep(
                runs,
                out,
                parallel=args.parallel,
                address=args.address,
                progress=not args.no_progress,
                on_outcome=show,
            )
        except KeyboardInterrupt:
            raise RunInterrupted(out) from None
        except OSError as exc:  # a full disk, an I/O error: the finished runs are kept
            if exc.errno in _PATH_ERRNOS and exc.filename is not None:
                raise  # a path refused: bad input, reported as such
            raise Stopped(exc, f"after fixing the cause, 'natsray resume {out}' runs what is left") from None
        loaded = load_sweep_runs(out, plan_runs(load_plan(out), out))  # read once, for the report and below
        sweep_report(out, loaded=loaded, plotter=plotter)
    finally:
        if plotter is not None:
            plotter.close()
    finished = [data for data in loaded if data is not None]
    if finished and all(not run.point.labels for run in runs):  # seeds only: the per-seed aggregate too
        aggregate_runs(finished, out / "aggregate.json")
        print(f"aggregate     {out / 'aggregate.json'} ({len(finished)} seeds)")
    failed = outcome.failed
    if failed:
        print(
            f"natsray: {len(failed)} of {len(runs)} runs failed "
            f"(listed above and in {out / 'sweep-runs.jsonl'}); "
            f"after fixing the cause, 'natsray resume {out}' runs them",
            file=sys.stderr,
        )
        return 1
    mostly = [run.path for run in finished if _mostly_failed(run.path, dict(run.summary or {}), quiet=True)]
    if mostly and len(mostly) > FAILED_FRACTION * len(runs):
        print(
            f"natsray: in {len(mostly)} of {len(runs)} runs more than {FAILED_FRACTION:.0%} of the "
            f"evaluations failed (e.g. {mostly[0]}); their errors are in each run's evaluations.jsonl "
            "(natsray report RUN_DIR writes a stored run's files)",
            file=sys.stderr,
        )
        return 1
    return 0


def _seed_runs(directory: Path) -> list[Path]:
    """The ``seed-N`` run directories of a ``--seeds`` parent, in seed order."""
    runs = [path for path in directory.glob("seed-*") if (path / "config.yaml").is_file()]
    return sorted(runs, key=lambda path: int(path.name[5:]) if path.name[5:].isdigit() else -1)


def _cmd_resume(args: argparse.Namespace) -> int:
    run_dir = _existing_dir(args.run_dir, "run")
    from natsray.study.grid import SWEEP_FILE, load_plan, plan_runs

    if (run_dir / SWEEP_FILE).is_file():
        if args.set:
            raise UsageError(
                f"--set: not supported when resuming a sweep ({run_dir}); resume its runs one by one"
            )
        args.parallel = getattr(args, "parallel", None)
        root = run_dir.resolve()  # outcome lines name absolute run directories, as natsray run writes them
        return _finish_sweep(plan_runs(load_plan(root), root), root, args)
    if not (run_dir / "config.yaml").is_file():
        seeds = _seed_runs(run_dir)
        if seeds:
            names = ", ".join(path.name for path in seeds[:3]) + (", ..." if len(seeds) > 3 else "")
            raise UsageError(
                f"{run_dir}: holds {len(seeds)} seed runs ({names}), not one run; resume each, "
                f"e.g. natsray resume {seeds[0]}"
            )
        raise UsageError(f"{run_dir}: not a run directory (no config.yaml)")
    # where the run continues is where the user is now (--address, RAY_ADDRESS or a local Ray),
    # never an address stored in an older run directory (a SLURM job's head is gone after the job)
    config = _with_address(resume_config(run_dir, args.set), args.address)
    checked = _preflight(config, args.address, run_dir / "config.yaml")
    result = _execute(
        config, run_dir, resume=True, progress=False if args.no_progress else None, shared=checked.shared
    )
    return _mostly_failed(run_dir, result)


def _cmd_report(args: argparse.Namespace) -> int:
    run_dirs = [_existing_dir(path, "run") for path in args.run_dirs]
    from natsray.study.grid import SWEEP_FILE

    out = Path(args.out) if args.out else None
    if out is not None:
        _writable(out, "--out")
    if len(run_dirs) == 1 and (run_dirs[0] / SWEEP_FILE).is_file():
        from natsray.study.report import sweep_report

        with _reading_inputs(""):
            sweep_report(run_dirs[0], out)
        return 0
    from natsray.experiment.report import report

    with _reading_inputs(""):
        report(run_dirs, out)
    return 0


def _cmd_export_table(args: argparse.Namespace) -> int:
    archive = Path(args.archive)
    if not archive.exists():
        raise UsageError(f"--archive {args.archive}: no such NATS-Bench archive")
    _writable(Path(args.out), "--out", directory=False)
    from natsray.evaluators.table import export_table

    export_table(archive, Path(args.out), progress=True)
    print(f"wrote {args.out}")
    return 0


def _sweep_error(source: str, run: Any) -> str:
    """The one line of a planned run without config: the config file, its grid point, the error."""
    error = str(run.error or "no runs")
    if error.startswith(f"{source}:"):  # a config error names the file (and the key) already
        return error
    return f"{source}: " + (f"grid point {run.point.name}: " if run.point.name else "") + error


def _validate_sweep(args: argparse.Namespace) -> int:
    """``validate`` of a config with a ``sweep`` section: every grid point as ``run`` will see it."""
    from natsray.config import read_yaml
    from natsray.study.grid import plan_runs, sweep_from_config

    plan = sweep_from_config(read_yaml(Path(args.config)), args.set, (), None, args.config)
    assert plan is not None
    runs = _preflight_sweep(plan_runs(plan, Path("sweep")), args.address)
    for run in runs:
        if run.config is None:
            raise UsageError(_sweep_error(args.config, run))
    points = len({run.point.name for run in runs})
    print(
        f"OK: {args.config}: sweep of {len(runs)} runs ({points} grid point(s) x {len(plan.seeds)} seed(s))"
    )
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    if _has_sweep_section(args.config):
        return _validate_sweep(args)
    config = _load(args.config, args.set)
    budget = ", ".join(
        f"{name}={value:g}" for name, value in dataclasses.asdict(config.budget).items() if value
    )
    checked = _preflight(config, args.address, args.config)
    if config.engine.mode == "simulated":
        workers = config.engine.simulated_workers
        engine = f"simulated with {workers} simulated worker(s) (no Ray: runs in the driver)"
    elif config.engine.in_process:
        engine = f"{config.engine.mode} in-process (no Ray: runs in the driver)"
    else:
        engine = f"{config.engine.mode} with {config.resources.actors} Ray actor(s)"
        address = args.address or config.ray.address
        if address:
            engine += f" (resources checked when the run joins {address})"
        else:
            engine += f" {checked.machine}"
    print(
        f"OK: {args.config}: strategy {config.strategy.name}, evaluator {config.evaluator.type}, "
        f"objectives {', '.join(map(str, config.objectives))}, budget {budget}, "
        f"engine {engine}, seed {config.seed}"
    )
    return 0


def _cmd_components(args: argparse.Namespace) -> int:
    from natsray.callbacks import REGISTRY as callbacks
    from natsray.evaluators import REGISTRY as evaluators
    from natsray.strategies import REGISTRY as strategies

    kinds = {"evaluators": evaluators, "strategies": strategies, "callbacks": callbacks}
    chosen = [args.kind] if args.kind else list(kinds)
    for kind in chosen:
        registry = kinds[kind]
        components = registry.components()
        print(f"{kind} ({registry.field}):")
        width = max(len(c.name) for c in components)
        target_width = max(len(c.target) for c in components)
        for component in components:
            line = f"  {component.name:<{width}}  {component.target:<{target_width}}  {component.origin}"
            if component.shadowed_by:
                line += f" (not used by this name: {component.shadowed_by}; give {component.target})"
            print(line.rstrip())
    print("any 'package.module:Class' import path works too (docs/extending.md)")
    return 0


def _metrics_from_archive(path: str, dataset: str, spec: str) -> tuple[Arch, int, dict[str, float | None]]:
    from natsray.evaluators.archive import open_archive, read_record
    from natsray.evaluators.benchmark import BenchmarkConfig
    from natsray.evaluators.metrics import MetricQuery
    from natsray.search_space.nats_index import NatsIndex

    api = open_archive(path, "--archive")  # a NATS-tss archive directory, or one line saying what is wrong
    nats = NatsIndex.from_archive(path)
    arch = nats.arch_at(int(spec)) if spec.isdigit() else Arch.from_str(spec)
    index = nats.index_of(arch)
    query = MetricQuery(
        BenchmarkConfig(archive=path, dataset=dataset, objective=("params",), report=_SHOW_METRICS)
    )
    score = query.score(read_record(api, index, query.keys), 0, {})
    return arch, index, dict(score.metrics)


def _metrics_from_table(path: str, dataset: str, spec: str) -> tuple[Arch, int, dict[str, float | None]]:
    import numpy as np

    from natsray.evaluators.table import TableConfig, TableEvaluator, load_table
    from natsray.records import Candidate

    table = load_table(path, "--table")
    if spec.isdigit():
        rows = np.flatnonzero(table["nats_index"] == int(spec))
        if len(rows) != 1:
            raise UsageError(f"ARCH {spec}: no NATS index {spec} in table {path}")
        arch = Arch.from_code(int(rows[0]))
    else:
        arch = Arch.from_str(spec)
    evaluator = TableEvaluator(
        TableConfig(table=path, dataset=dataset, objective=("params",), report=_SHOW_METRICS), shared=table
    )
    evaluator.setup()
    metrics = dict(evaluator.score(Candidate(0, arch)).metrics)
    return arch, int(metrics.pop("nats_index")), metrics


def _cmd_show(args: argparse.Namespace) -> int:
    index = metrics = None
    try:
        if args.archive:
            arch, index, metrics = _metrics_from_archive(args.archive, args.dataset, args.arch)
        elif args.table:
            arch, index, metrics = _metrics_from_table(args.table, args.dataset, args.arch)
        elif args.arch.isdigit():
            raise UsageError(
                f"ARCH {args.arch}: a NATS index needs --archive or --table (or give an arch string)"
            )
        else:
            arch = Arch.from_str(args.arch)
    except EvaluatorError as exc:  # a bad --archive / --table: names the option and path
        raise UsageError(str(exc)) from None
    except ValueError as exc:  # an arch string's error quotes it already
        raise UsageError(f"ARCH {args.arch}: {exc}" if args.arch.isdigit() else f"ARCH: {exc}") from None
    num_classes, input_size = _NUM_CLASSES_INPUT[args.dataset]
    print(f"arch         {arch.to_str()}")
    for (to_node, from_node), op in zip(EDGES, arch.ops, strict=True):
        print(f"  edge {to_node}<-{from_node}   {op}")
    print(f"canonical    {arch.canonical().to_str()}")
    print(f"code         {arch.code}")
    if index is not None:
        print(f"NATS index   {index}")
    from natsray.models import count_params_flops

    params, flops = count_params_flops(arch, num_classes=num_classes, input_size=input_size)
    print(f"params       {params:.6g} M ({args.dataset}, C=16, N=5)")
    print(f"FLOPs        {flops:.6g} M")
    for name, value in (metrics or {}).items():
        print(f"{name:<20} {'n/a' if value is None else f'{value:.6g}'}")
    return 0


def _cmd_measure_latency(args: argparse.Namespace) -> int:
    from natsray.evaluators.costs import CostConfig
    from natsray.experiment.latency import measure_latency

    try:
        config = CostConfig(
            dataset=args.dataset,
            C=args.C,
            N=args.N,
            device=args.device,
            threads=1,
            objective=("latency",),
            latency_batch_size=args.batch_size,
            latency_repeats=args.repeats,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.cells is not None and args.cells < 1:
        raise UsageError(f"--cells {args.cells}: expected a positive number of cells")
    if args.actors is not None and args.actors < 1:
        raise UsageError(f"--actors {args.actors}: expected at least 1 actor")
    if args.actors is not None and args.in_process:
        raise UsageError(f"--actors {args.actors} and --in-process: choose one (in-process is the default)")
    bar: Any = None

    def report(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="cell", desc="measure-latency", file=sys.stderr, dynamic_ncols=True)
        bar.update(done - bar.n)

    try:
        measured, total = measure_latency(
            args.out,
            config,
            cells=args.cells,
            seed=args.seed,
            actors=args.actors,
            report=None if args.no_progress else report,
        )
    except KeyboardInterrupt:
        raise Interrupted(
            f"the cells measured are in {args.out}; the same command continues with the cells it lacks"
        ) from None
    finally:
        if bar is not None:
            bar.close()
    print(f"wrote {args.out}: {measured} cells measured now, {total} in the file (columns arch,latency_ms)")
    return 0


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="natsray",
        description="Evolutionary neural architecture search on NATS-Bench TSS, distributed with Ray.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, handler: Callable[[argparse.Namespace], int], help_text: str
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    def overrides(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY.PATH=VALUE",
            help="override a config value (YAML syntax), e.g. --set strategy.population=50; repeatable",
        )

    run = command("run", _cmd_run, "run an experiment from a YAML config")
    run.add_argument("config", help="experiment YAML file (see docs/config.md)")
    overrides(run)
    run.add_argument(
        "--address", help="Ray cluster address (default: ray.address, RAY_ADDRESS, or a local Ray)"
    )
    run.add_argument("--out", help="run directory (default: output.dir of the config)")
    run.add_argument(
        "--seeds", help="a sweep: one run per seed, in parallel on Ray: 0-99, 0,3,5; run dirs OUT/seed-N"
    )
    run.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY.PATH=V1,V2",
        help="a sweep axis, e.g. --grid strategy.name=random,regularized_evolution; repeatable "
        "(run dirs OUT/KEY.PATH=V__.../seed-N; see docs/sweeps.md)",
    )
    run.add_argument(
        "--parallel",
        type=int,
        metavar="N",
        help="a sweep runs at most N runs at once; 1: all in this process, no Ray (default: short runs "
        "here, the rest on a local Ray once they would pay for its start-up)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--overwrite", action="store_true", help="delete a run already in the run directory")

    resume = command(
        "resume",
        _cmd_resume,
        "continue an interrupted run (or extend a finished one with --set budget.KEY=N)",
    )
    resume.add_argument(
        "run_dir", metavar="RUN_DIR", help="a run directory, or a sweep directory (sweep.yaml)"
    )
    resume.add_argument(
        "--parallel", type=int, metavar="N", help="a sweep runs at most N runs at once (as for run)"
    )
    resume.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="budget.KEY=VALUE",
        help="raise a budget limit, e.g. --set budget.evaluations=500; repeatable",
    )
    resume.add_argument("--address", help="Ray cluster address")
    resume.add_argument("--no-progress", action="store_true", help="no progress bar")

    report = command("report", _cmd_report, "tables and plots of one or several runs (compared)")
    report.add_argument(
        "run_dirs", nargs="+", metavar="RUN_DIR", help="run directories, or one sweep directory (sweep.yaml)"
    )
    report.add_argument("--out", help="output directory (default: next to the runs)")

    export = command("export-table", _cmd_export_table, "compile a NATS-Bench archive into a metric table")
    export.add_argument("--archive", required=True, help="NATS-tss-v1_0-3ffb9-simple archive directory")
    export.add_argument("--out", required=True, help="table file to write")

    validate = command("validate", _cmd_validate, "check a config (types, values, files) without running it")
    validate.add_argument("config", help="experiment YAML file")
    overrides(validate)
    validate.add_argument(
        "--address",
        help="the cluster the run will join: resources are then checked there at run time, "
        "not against this machine",
    )

    show = command("show", _cmd_show, "describe one cell: ops per edge, canonical form, code, params/FLOPs")
    show.add_argument("arch", metavar="ARCH", help="NATS arch string, or a NATS index with --archive/--table")
    source = show.add_mutually_exclusive_group()
    source.add_argument("--archive", help="NATS-Bench archive: also print the cell's metrics")
    source.add_argument("--table", help="natsray metric table: also print the cell's metrics")
    show.add_argument(
        "--dataset", default="cifar10", choices=list(_NUM_CLASSES_INPUT), help="default: cifar10"
    )
    components = command(
        "components",
        _cmd_components,
        "list the evaluator types, strategies and callbacks a config may name: built-ins and plugins",
    )
    components.add_argument(
        "kind",
        nargs="?",
        choices=["evaluators", "strategies", "callbacks"],
        help="list only these (default: all)",
    )
    latency = command(
        "measure-latency",
        _cmd_measure_latency,
        "time every cell's inference on this machine (one at a time, resumable) into a CSV for extra_csv",
    )
    latency.add_argument("--out", required=True, help="CSV to write or extend (columns arch,latency_ms)")
    latency.add_argument(
        "--cells", type=int, help="measure the first N of a seeded cell order (default: all)"
    )
    latency.add_argument("--seed", type=int, default=0, help="seed of the cell order (default: 0)")
    latency.add_argument(
        "--actors",
        type=int,
        help="spread the cells over this many Ray actors of one CPU each (default: none: in this process, "
        "one cell at a time on one thread, which repeats; concurrent actors disturb each other's timings)",
    )
    latency.add_argument("--in-process", action="store_true", help="in this process (the default)")
    latency.add_argument(
        "--dataset", default="cifar10", choices=list(_NUM_CLASSES_INPUT), help="input size and classes"
    )
    latency.add_argument("--C", type=int, default=16, help="channels of the first stage (NATS: 16)")
    latency.add_argument("--N", type=int, default=5, help="cells per stage (NATS: 5)")
    latency.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"], help="default: cpu")
    latency.add_argument("--batch-size", type=int, default=1, help="images per timed pass (default: 1)")
    latency.add_argument("--repeats", type=int, default=10, help="timed passes, median kept (default: 10)")
    latency.add_argument("--no-progress", action="store_true", help="no progress bar (with ETA) on stderr")
    return parser


class _ClosedPipeGuard:
    """``sys.stdout`` while a command runs: once the reader has gone (``| head``), what is printed is
    dropped instead of raising ``BrokenPipeError`` halfway through the command, so a command finishes
    writing its files (plots, ``aggregate.json``) whoever reads its output; it then exits 141."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.reader_gone = False

    def _gone(self) -> None:
        self.reader_gone = True
        _stdout_closed()

    def write(self, text: str) -> int:
        if not self.reader_gone:
            try:
                return self.stream.write(text)
            except BrokenPipeError:
                self._gone()
        return len(text)

    def flush(self) -> None:
        if not self.reader_gone:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._gone()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, ...
        return getattr(self.stream, name)


def _stdout_closed() -> int:
    """The reader of stdout left (``| head``): exit quietly as other command-line programs do."""
    # Python's recipe: point stdout at devnull so the interpreter's final flush cannot fail again
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 128 + 13  # SIGPIPE


def _one_line_warnings() -> None:
    """A plugin shadowed by a built-in, or a corrupt line in a sweep's store, is reported as
    ``natsray: warning: ...`` (one line, no source)."""
    import warnings

    from natsray.registry import ShadowedPluginWarning

    show = warnings.showwarning
    if getattr(show, "natsray", False):
        return

    def showwarning(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        store = sys.modules.get("natsray.study.store")  # loaded when it warns (imported lazily)
        one_line = (ShadowedPluginWarning,) + ((store.StoreWarning,) if store is not None else ())
        if issubclass(category, one_line):
            print(f"natsray: warning: {message}", file=sys.stderr)
        else:
            show(message, category, *args, **kwargs)

    showwarning.natsray = True  # type: ignore[attr-defined]
    warnings.showwarning = showwarning


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``natsray`` command line; returns the exit code."""
    _one_line_warnings()
    guard = _ClosedPipeGuard(sys.stdout)
    sys.stdout = guard
    try:
        return _main(argv, guard)
    finally:
        sys.stdout = guard.stream


def _main(argv: Sequence[str] | None, guard: _ClosedPipeGuard) -> int:
    try:
        args = _build_parser().parse_args(argv)
        code = args.handler(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return 128 + 13 if guard.reader_gone and code == 0 else code
    except BrokenPipeError:
        return _stdout_closed()
    except Stopped as exc:
        return _failed(exc.cause, exc.hint)
    except (UsageError, ConfigError, EvaluatorError, ClusterError, RunDirError, RunInUseError) as exc:
        print(f"natsray: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in _PATH_ERRNOS or exc.filename is None:
            return _failed(exc)
        print(f"natsray: error: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"natsray: interrupted; {exc.hint}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("natsray: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        return _failed(exc)


def _failed(exc: Exception, hint: str | None = None) -> int:
    """A failure during the command: one line (the traceback under ``NATSRAY_DEBUG=1``), exit code 1."""
    if os.environ.get("NATSRAY_DEBUG", "") not in ("", "0"):
        raise exc
    message = (str(exc).splitlines() or [""])[0]
    then = f"; {hint}" if hint else ""
    print(
        f"natsray: failed: {type(exc).__name__}: {message}{then} (NATSRAY_DEBUG=1 shows the traceback)",
        file=sys.stderr,
    )
    return 1
