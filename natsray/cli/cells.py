"""Commands about cells and their benchmark data: ``show`` (one cell described, with its metrics from
a NATS-Bench archive or a metric table), ``export-table`` (an archive compiled into a metric table of
every cell) and ``measure-latency`` (every cell's latency timed into a CSV for ``extra_csv``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from natsray.cli.errors import Interrupted, UsageError
from natsray.cli.inputs import writable
from natsray.evaluators.base import EvaluatorError
from natsray.search_space import EDGES, Arch

__all__ = ["NUM_CLASSES_INPUT", "cmd_export_table", "cmd_measure_latency", "cmd_show"]

NUM_CLASSES_INPUT = {"cifar10": (10, 32), "cifar100": (100, 32), "ImageNet16-120": (120, 16)}
"""A NATS-Bench dataset's number of classes and input size (pixels a side): the choices of ``--dataset``."""

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


def cmd_show(args: argparse.Namespace) -> int:
    """``natsray show``: a cell's ops per edge, canonical form, code, params and FLOPs; with
    ``--archive`` / ``--table`` its NATS index and metrics too."""
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
    num_classes, input_size = NUM_CLASSES_INPUT[args.dataset]
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


def cmd_export_table(args: argparse.Namespace) -> int:
    """``natsray export-table``: a NATS-Bench archive compiled into a metric table (``evaluator.table``)."""
    archive = Path(args.archive)
    if not archive.exists():
        raise UsageError(f"--archive {args.archive}: no such NATS-Bench archive")
    writable(Path(args.out), "--out", directory=False)
    from natsray.evaluators.table import export_table

    export_table(archive, Path(args.out), progress=True)
    print(f"wrote {args.out}")
    return 0


def cmd_measure_latency(args: argparse.Namespace) -> int:
    """``natsray measure-latency``: every cell's inference timed here, into a CSV that resumes."""
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

            from natsray.bars import bar_options

            bar = tqdm(total=total, unit="cell", desc="measure-latency", **bar_options(sys.stderr))
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
