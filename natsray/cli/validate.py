"""``natsray validate``: a config checked as ``run`` checks it (types, values, files, pre-flight)
without running it or making a file; a sweep config grid point by grid point."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from natsray.cli.errors import UsageError
from natsray.cli.inputs import load_config, preflight_config
from natsray.cli.sweeps import has_sweep_section, preflight_sweep
from natsray.config import read_yaml

__all__ = ["cmd_validate"]


def cmd_validate(args: argparse.Namespace) -> int:
    """``natsray validate``: one line saying what the run would do, or what it would refuse."""
    if args.seeds is not None or args.grid or has_sweep_section(args.config):
        return _validate_sweep(args)
    config = load_config(args.config, args.set)
    budget = ", ".join(
        f"{name}={value:g}" for name, value in dataclasses.asdict(config.budget).items() if value
    )
    checked = preflight_config(config, args.address, args.config)
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


def _validate_sweep(args: argparse.Namespace) -> int:
    """``validate`` of a sweep (a ``sweep`` section, ``--seeds``, ``--grid``): every grid point as
    ``run`` will see it."""
    from natsray.study.grid import plan_runs, point_error, sweep_from_config

    plan = sweep_from_config(read_yaml(Path(args.config)), args.set, args.grid, args.seeds, args.config)
    assert plan is not None
    runs = preflight_sweep(plan_runs(plan, Path("sweep")), args.address)
    for run in runs:
        if run.config is None:
            raise UsageError(point_error(run, args.config))
    points = len({run.point.name for run in runs})
    print(
        f"OK: {args.config}: sweep of {len(runs)} runs ({points} grid point(s) x {len(plan.seeds)} seed(s))"
    )
    return 0
