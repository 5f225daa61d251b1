"""The argparse tree of ``natsray``: every command, option and help text, and the handler each
command runs (the ``cmd_*`` functions of the command modules)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NoReturn

from natsray.cli.cells import NUM_CLASSES_INPUT, cmd_export_table, cmd_measure_latency, cmd_show
from natsray.cli.components import cmd_components
from natsray.cli.errors import UsageError
from natsray.cli.report import cmd_report
from natsray.cli.runs import cmd_resume, cmd_run
from natsray.cli.validate import cmd_validate

__all__ = ["build_parser"]


class _Parser(argparse.ArgumentParser):
    """A parser whose refusals are :class:`UsageError` (one line, exit code 2), not argparse's exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def _positive(option: str) -> Callable[[str], int]:
    """An argparse ``type`` for a positive integer option: anything else is one line naming ``option``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise UsageError(f"{option}: expected a positive integer, got {text}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The ``natsray`` parser: each command with its options, help texts and handler (``args.handler``)."""
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

    def sweep_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--seeds",
            help="a sweep: one run per seed, several at once (look-up runs on forked worker processes on "
            "Linux, else on Ray; docs/sweeps.md 'Execution'): 0-99, 0,3,5; a run's dir OUT/seed-N is written "
            "when it reaches a checkpoint or is asked for",
        )
        sub.add_argument(
            "--grid",
            action="append",
            default=[],
            metavar="KEY.PATH=V1,V2",
            help="a sweep axis, e.g. --grid strategy.name=random,regularized_evolution; repeatable "
            "(runs OUT/AXIS=LABEL__.../seed-N; see docs/sweeps.md)",
        )

    run = command("run", cmd_run, "run an experiment from a YAML config")
    run.add_argument("config", help="experiment YAML file (see docs/config.md)")
    overrides(run)
    run.add_argument(
        "--address", help="Ray cluster address (default: ray.address, RAY_ADDRESS, or a local Ray)"
    )
    run.add_argument(
        "--out", help="run directory, or a sweep's directory (default: output.dir of the config)"
    )
    sweep_options(run)
    run.add_argument(
        "--parallel",
        type=_positive("--parallel"),
        metavar="N",
        help="a sweep runs at most N runs at once; 1: all in this process, no Ray (default: in-process "
        "look-up runs on one forked worker per usable CPU on Linux; other in-process runs start here and "
        "move to a local Ray once that pays for its start-up; runs with Ray actors, or --address, on Ray)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--overwrite", action="store_true", help="delete a run already in the run directory")

    resume = command(
        "resume",
        cmd_resume,
        "continue an interrupted run (or extend a finished one with --set budget.KEY=N)",
    )
    resume.add_argument(
        "run_dir", metavar="RUN_DIR", help="a run directory, or a sweep directory (sweep.yaml)"
    )
    resume.add_argument(
        "--parallel",
        type=_positive("--parallel"),
        metavar="N",
        help="a sweep runs at most N runs at once (as for run)",
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

    report = command("report", cmd_report, "tables and plots of one or several runs (compared)")
    report.add_argument(
        "run_dirs", nargs="+", metavar="RUN_DIR", help="run directories, or one sweep directory (sweep.yaml)"
    )
    report.add_argument("--out", help="output directory (default: next to the runs)")

    export = command("export-table", cmd_export_table, "compile a NATS-Bench archive into a metric table")
    export.add_argument("--archive", required=True, help="NATS-tss-v1_0-3ffb9-simple archive directory")
    export.add_argument("--out", required=True, help="table file to write")

    validate = command("validate", cmd_validate, "check a config (types, values, files) without running it")
    validate.add_argument("config", help="experiment YAML file")
    overrides(validate)
    sweep_options(validate)
    validate.add_argument(
        "--parallel",
        type=_positive("--parallel"),
        metavar="N",
        help="as for run: validate of a sweep says where its runs would run",
    )
    validate.add_argument(
        "--address",
        help="the cluster the run will join: resources are then checked there at run time, "
        "not against this machine",
    )

    show = command("show", cmd_show, "describe one cell: ops per edge, canonical form, code, params/FLOPs")
    show.add_argument("arch", metavar="ARCH", help="NATS arch string, or a NATS index with --archive/--table")
    source = show.add_mutually_exclusive_group()
    source.add_argument("--archive", help="NATS-Bench archive: also print the cell's metrics")
    source.add_argument("--table", help="natsray metric table: also print the cell's metrics")
    show.add_argument(
        "--dataset", default="cifar10", choices=list(NUM_CLASSES_INPUT), help="default: cifar10"
    )
    components = command(
        "components",
        cmd_components,
        "list the evaluator types, strategies, callbacks and datasets a config names: built-ins and plugins",
    )
    components.add_argument(
        "kind",
        nargs="?",
        choices=["evaluators", "strategies", "callbacks", "datasets"],
        help="list only these (default: all)",
    )
    latency = command(
        "measure-latency",
        cmd_measure_latency,
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
        "--dataset", default="cifar10", choices=list(NUM_CLASSES_INPUT), help="input size and classes"
    )
    latency.add_argument("--C", type=int, default=16, help="channels of the first stage (NATS: 16)")
    latency.add_argument("--N", type=int, default=5, help="cells per stage (NATS: 5)")
    latency.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"], help="default: cpu")
    latency.add_argument("--batch-size", type=int, default=1, help="images per timed pass (default: 1)")
    latency.add_argument("--repeats", type=int, default=10, help="timed passes, median kept (default: 10)")
    latency.add_argument("--no-progress", action="store_true", help="no progress bar (with ETA) on stderr")
    return parser
