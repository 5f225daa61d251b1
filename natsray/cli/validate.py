"""``natsray validate``: a config checked as ``run`` checks it (types, values, files, pre-flight, the
strategy built: its ``__init__`` run) without running it or making a file; a sweep config grid point by
grid point."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from natsray.cli.errors import UsageError
from natsray.cli.inputs import load_config, preflight_config
from natsray.cli.sweeps import has_sweep_section, preflight_sweep
from natsray.config import read_yaml
from natsray.strategies import build_strategy

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
    build_strategy(config.strategy, num_objectives=len(config.objectives), seed=config.seed)
    print(
        f"OK: {args.config}: strategy {config.strategy.name}, evaluator {config.evaluator.type}, "
        f"objectives {', '.join(map(str, config.objectives))}, budget {budget}, "
        f"engine {_engine(config, args.address, checked.machine)}, seed {config.seed}"
    )
    return 0


def _engine(config: Any, address: str | None, machine: str | None, *, where: bool = True) -> str:
    """How a run of ``config`` evaluates: in the driver (simulated, in-process) or with Ray actors
    (``machine``: what pre-flight found this machine can host; None: not said; ``where``: say where a
    single in-process run runs, not said of a sweep's runs, which the sweep places)."""
    driver = " (no Ray: runs in the driver)" if where else ""
    if config.engine.mode == "simulated":
        return f"simulated with {config.engine.simulated_workers} simulated worker(s){driver}"
    if config.engine.in_process:
        return f"{config.engine.mode} in-process{driver}"
    engine = f"{config.engine.mode} with {config.resources.actors} Ray actor(s)"
    address = address or config.ray.address
    if address:
        return engine + f" (resources checked when the run joins {address})"
    return engine + (f" {machine}" if machine else "")


def _validate_sweep(args: argparse.Namespace) -> int:
    """``validate`` of a sweep (a ``sweep`` section, ``--seeds``, ``--grid``): every grid point as
    ``run`` will see it."""
    from natsray.study.grid import plan_runs, sweep_error, sweep_from_config
    from natsray.study.sweep import describe_execution

    plan = sweep_from_config(read_yaml(Path(args.config)), args.set, args.grid, args.seeds, args.config)
    assert plan is not None
    runs = preflight_sweep(plan_runs(plan, Path("sweep")), args.address)
    if any(run.config is None for run in runs):
        raise UsageError(sweep_error(runs, args.config))
    for config in {run.point.name: run.config for run in runs}.values():  # one per grid point
        build_strategy(config.strategy, num_objectives=len(config.objectives), seed=config.seed)
    points = len({run.point.name for run in runs})
    engines = dict.fromkeys(_engine(run.config, args.address, None, where=False) for run in runs)
    where = describe_execution(runs, list(range(len(runs))), args.parallel, args.address)
    print(
        f"OK: {args.config}: sweep of {len(runs)} runs ({points} grid point(s) x {len(plan.seeds)} seed(s)), "
        f"each run's engine {' / '.join(engines)}; {where}"
    )
    return 0
