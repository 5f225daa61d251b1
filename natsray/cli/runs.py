"""``natsray run`` and ``natsray resume`` of one run: start or continue it, print its summary, and
exit with its outcome. A sweep is handed to :mod:`natsray.cli.sweeps`."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from natsray.cli.errors import RunInterrupted, UsageError
from natsray.cli.inputs import existing_dir, load_config, preflight_config, with_address, writable
from natsray.cli.outcome import mostly_failed
from natsray.cli.sweeps import finish_sweep, has_sweep_section, run_sweep_command
from natsray.config import ExperimentConfig
from natsray.experiment.lifecycle import execute, new_run, resume_config

__all__ = ["cmd_resume", "cmd_run"]


def cmd_run(args: argparse.Namespace) -> int:
    """``natsray run``: one run of a config (a sweep with ``--seeds``, ``--grid`` or a ``sweep`` section)."""
    if args.seeds is not None or args.grid or has_sweep_section(args.config):
        return run_sweep_command(args)
    config = load_config(args.config, args.set)
    if args.address:
        config = with_address(config, args.address)
        if config.engine.mode == "simulated" or config.engine.in_process:
            print(
                f"natsray: note: --address {args.address} is not used: this config runs in the driver "
                "(engine.mode simulated / engine.in_process); a sweep (--seeds/--grid) runs such runs "
                "on the cluster",
                file=sys.stderr,
            )
    run_dir = Path(args.out or config.output.dir)
    checked = preflight_config(config, args.address, args.config)
    if run_dir.is_dir() or not run_dir.exists():  # (a file: new_run says so)
        writable(run_dir, "--out" if args.out else "output.dir")
    config = new_run(config, run_dir, overwrite=args.overwrite)
    result = _execute(
        config, run_dir, resume=False, progress=False if args.no_progress else None, shared=checked.shared
    )
    return mostly_failed(run_dir, result)


def cmd_resume(args: argparse.Namespace) -> int:
    """``natsray resume``: continue a run (or extend it with ``--set budget.*``), or what a sweep has left."""
    run_dir = existing_dir(args.run_dir, "run")
    from natsray.study.grid import SWEEP_FILE, load_plan, plan_runs

    if (run_dir / SWEEP_FILE).is_file():
        if args.set:
            raise UsageError(
                f"--set: not supported when resuming a sweep ({run_dir}); resume its runs one by one"
            )
        args.parallel = getattr(args, "parallel", None)
        root = run_dir.resolve()  # outcome lines name absolute run directories, as natsray run writes them
        return finish_sweep(plan_runs(load_plan(root), root), root, args)
    if not (run_dir / "config.yaml").is_file():
        seeds = _seed_runs(run_dir)
        if seeds:
            names = ", ".join(path.name for path in seeds[:3]) + (", ..." if len(seeds) > 3 else "")
            raise UsageError(
                f"{run_dir}: holds {len(seeds)} seed runs ({names}), not one run; resume each, "
                f"e.g. natsray resume {seeds[0]}"
            )
        raise UsageError(f"{run_dir}: not a run or sweep directory (no config.yaml or {SWEEP_FILE})")
    # where the run continues is where the user is now (--address, RAY_ADDRESS or a local Ray),
    # never an address stored in an older run directory (a SLURM job's head is gone after the job)
    config = with_address(resume_config(run_dir, args.set), args.address)
    checked = preflight_config(config, args.address, run_dir / "config.yaml")
    result = _execute(
        config, run_dir, resume=True, progress=False if args.no_progress else None, shared=checked.shared
    )
    return mostly_failed(run_dir, result)


def _seed_runs(directory: Path) -> list[Path]:
    """The ``seed-N`` run directories of a ``--seeds`` parent, in seed order."""
    runs = [path for path in directory.glob("seed-*") if (path / "config.yaml").is_file()]
    return sorted(runs, key=lambda path: int(path.name[5:]) if path.name[5:].isdigit() else -1)


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


def _format_values(values: dict[str, Any] | None) -> str:
    return ", ".join(
        f"{name}={value:.6g}" if isinstance(value, float) else f"{name}={value}"
        for name, value in (values or {}).items()
    )
