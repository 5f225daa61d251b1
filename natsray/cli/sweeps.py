"""Sweeps on the command line: ``run`` with ``--seeds``, ``--grid`` or a ``sweep`` section, and
``resume`` of a sweep directory: plan the runs, refuse a grid point that pre-flight refuses, execute
them, print the comparative report and exit with the sweep's outcome (docs/sweeps.md)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from natsray.cli.errors import PATH_ERRNOS, RunInterrupted, Stopped, UsageError
from natsray.cli.inputs import writable
from natsray.cli.outcome import FAILED_FRACTION, mostly_failed
from natsray.config import ConfigError, read_yaml

__all__ = ["finish_sweep", "has_sweep_section", "preflight_sweep", "run_sweep_command"]


def has_sweep_section(path: str) -> bool:
    """Whether the config file has a ``sweep`` section (a file that cannot be read: no)."""
    try:
        return "sweep" in read_yaml(Path(path))
    except ConfigError:
        return False  # load_config reports it


def run_sweep_command(args: argparse.Namespace) -> int:
    """``run`` with ``--seeds`` / ``--grid`` / a ``sweep`` section: plan, refuse clashes, execute, report."""
    from natsray.api import plan_sweep
    from natsray.study.grid import sweep_error

    def check(runs: list[Any]) -> list[Any]:  # before the sweep's directory is made
        runs = preflight_sweep(runs, args.address)
        if all(run.config is None for run in runs):
            raise UsageError(sweep_error(runs, args.config))
        return runs

    if args.out:
        writable(Path(args.out), "--out")
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
    return finish_sweep(runs, out, args)


def preflight_sweep(runs: Sequence[Any], address: str | None) -> list[Any]:
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


def _show_unplanned(runs: Sequence[Any], outcomes: Sequence[Any]) -> None:
    """One line per grid point whose runs could not be planned (their config refused here: a plugin
    not importable, a file missing) and were not run: the point, how many, the error."""
    points: dict[str, list[Any]] = {}
    for run, done in zip(runs, outcomes, strict=True):
        if run.config is None and done.status == "failed":
            points.setdefault(run.point.name, []).append(run)
    for name, failed in points.items():
        where = f"grid point {name}" if name else "the sweep"
        print(
            f"natsray: {where}: {len(failed)} unfinished run(s) not run: {failed[0].error}",
            file=sys.stderr,
        )


def finish_sweep(runs: Sequence[Any], out: Path, args: argparse.Namespace) -> int:
    """Execute a planned sweep, print its comparative report; exit code 1 when a run failed."""
    from natsray.experiment.report import aggregate_runs
    from natsray.study.grid import invalid_points, load_plan, plan_runs
    from natsray.study.plot_process import PlotProcess
    from natsray.study.report import load_sweep_runs, sweep_report
    from natsray.study.sweep import run_sweep

    unplanned = {str(run.run_dir) for run in runs if run.config is None}  # said once per grid point

    def show(outcome: Any) -> None:
        if outcome.status == "failed" and outcome.run_dir not in unplanned:
            print(f"natsray: run failed: {outcome.run_dir}: {outcome.error}", file=sys.stderr)

    plotter = PlotProcess.start()  # imports matplotlib on a core the runs leave free
    try:
        try:
            outcome = run_sweep(
                runs,
                out,
                parallel=args.parallel,
                address=args.address,
                progress=False if args.no_progress else None,  # else the config's output.progress
                on_outcome=show,
                on_cores_free=None if plotter is None else plotter.preload,
            )
        except KeyboardInterrupt:
            raise RunInterrupted(out) from None
        except OSError as exc:  # a full disk, an I/O error: the finished runs are kept
            if exc.errno in PATH_ERRNOS and exc.filename is not None:
                raise  # a path refused: bad input, reported as such
            raise Stopped(exc, f"after fixing the cause, 'natsray resume {out}' runs what is left") from None
        _show_unplanned(runs, outcome.runs)
        try:
            planned = plan_runs(load_plan(out), out, typed=False)  # as natsray report reads them
            loaded = load_sweep_runs(out, planned)  # read once, for the report and below
            sweep_report(out, loaded=loaded, plotter=plotter, show=True)
        except KeyboardInterrupt:  # the runs are done: resume writes the report
            raise RunInterrupted(out) from None
    finally:
        if plotter is not None:
            plotter.close()
    finished = [data for data in loaded if data is not None]
    if finished and all(not run.point.labels for run in runs):  # seeds only: the per-seed aggregate too
        aggregate_runs(finished, out / "aggregate.json")
        print(f"aggregate     {out / 'aggregate.json'} ({len(finished)} seeds)")
    failed = [(run, done) for run, done in zip(runs, outcome.runs, strict=True) if done.status == "failed"]
    if failed:
        invalid = invalid_points(load_plan(out))  # resume re-reads sweep.yaml: these it cannot run
        stuck = [run for run, _ in failed if run.point.name in invalid]
        hint = f"after fixing the cause, 'natsray resume {out}' runs them"
        if stuck:
            names = list(dict.fromkeys(run.point.name or "(seeds only)" for run in stuck))
            hint = (
                f"resume cannot run the {len(stuck)} of grid point(s) {', '.join(names[:3])}"
                f"{', ...' if len(names) > 3 else ''}: their config in {out / 'sweep.yaml'} is invalid "
                "(printed above); run a corrected grid of them with another --out "
                "(the finished runs stay here)"
            ) + (f"; for the other {len(failed) - len(stuck)}, {hint}" if len(stuck) < len(failed) else "")
        print(
            f"natsray: {len(failed)} of {len(runs)} runs failed "
            f"(listed above and in {out / 'sweep-runs.jsonl'}); {hint}",
            file=sys.stderr,
        )
        return 1
    mostly = [run.path for run in finished if mostly_failed(run.path, dict(run.summary or {}), quiet=True)]
    if mostly and len(mostly) > FAILED_FRACTION * len(runs):
        print(
            f"natsray: in {len(mostly)} of {len(runs)} runs more than {FAILED_FRACTION:.0%} of the "
            f"evaluations failed (e.g. {mostly[0]}); their errors are in each run's evaluations.jsonl "
            "(natsray report RUN_DIR writes a stored run's files)",
            file=sys.stderr,
        )
        return 1
    return 0
