"""``natsray report``: tables and plots of stored runs (compared when several), or of one sweep."""

from __future__ import annotations

import argparse
from pathlib import Path

from natsray.cli.errors import UsageError
from natsray.cli.inputs import existing_dir, reading_inputs, writable

__all__ = ["cmd_report"]


def cmd_report(args: argparse.Namespace) -> int:
    """``natsray report``: a run's files, several runs compared, or a sweep's comparative report."""
    for path in args.run_dirs:
        _refuse_grid_point(Path(path))
    run_dirs = [existing_dir(path, "run") for path in args.run_dirs]
    from natsray.experiment.run_data import RUN_FILES, is_run_dir
    from natsray.study.grid import SWEEP_FILE

    for run_dir in run_dirs if len(run_dirs) > 1 else ():
        if (run_dir / SWEEP_FILE).is_file():
            raise UsageError(f"{run_dir}: a sweep directory is reported alone: natsray report {run_dir}")
    if len(run_dirs) == 1 and not is_run_dir(run_dirs[0]) and not (run_dirs[0] / SWEEP_FILE).is_file():
        raise UsageError(
            f"{run_dirs[0]}: not a run or sweep directory (no {', '.join(RUN_FILES)} or {SWEEP_FILE})"
        )
    out = Path(args.out) if args.out else None
    if out is not None:
        writable(out, "--out")
    if len(run_dirs) == 1 and (run_dirs[0] / SWEEP_FILE).is_file():
        from natsray.study.report import sweep_report

        with reading_inputs(""):
            sweep_report(run_dirs[0], out, show=True)
        return 0
    from natsray.experiment.report import report

    with reading_inputs(""):
        report(run_dirs, out)
    return 0


def _refuse_grid_point(path: Path) -> None:
    """One grid point's directory of a sweep (``OUT/strategy=rea__dataset=cifar10``) is neither a run
    nor a sweep: name what to report instead, the sweep (its parent) or one of the point's runs."""
    from natsray.experiment.run_data import is_run_dir
    from natsray.study.grid import SWEEP_FILE, load_plan

    sweep = path.parent
    if "=" not in path.name or not (sweep / SWEEP_FILE).is_file() or (path / SWEEP_FILE).is_file():
        return
    if path.is_dir() and is_run_dir(path):
        return
    try:
        seed = load_plan(sweep).seeds[0]
    except Exception:  # an unreadable plan: the sweep's report says why
        seed = 0
    raise UsageError(
        f"{path}: one grid point of the sweep {sweep}, not a run: report the sweep "
        f"(natsray report {sweep}) or one of its runs (natsray report {path / f'seed-{seed}'})"
    )
