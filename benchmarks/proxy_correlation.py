"""Spearman rank correlation of zero-cost proxies (and params / FLOPs) with real NATS-Bench accuracy.

For a random sample of cells it computes every proxy with natsray's ``ProxyEvaluator`` and
correlates it with the 200-epoch accuracies (the dataset's test accuracy and, for ``cifar10``,
the ``cifar10-valid`` validation accuracy) and with ``params`` / ``flops``, read from one of:

* ``--archive DIR``: a NATS-Bench TSS archive (``NATS-tss-v1_0-3ffb9-simple``);
* ``--table FILE``: a table from ``natsray export-table``;
* ``--tables DIR`` (default ``../shared/nats-tss``): the NATS-TSS CSV tables
  ``test_acc_hp200.csv``, ``cifar10valid_hp200.csv`` and ``costs.csv``.

Cells are sampled among those the source has results for.

The minibatch comes from ``--data-dir`` (the real dataset, as in the papers). Without it the
batch is a stand-in: sklearn's digits upsampled to 32x32 (cifar10 only: same 10 classes and
input size, so the networks are exactly the CIFAR-10 ones). ``synflow`` is data-free either way.

    python benchmarks/proxy_correlation.py --samples 300 --seed 0 --dataset cifar10 --table nats-tss.npz
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from natsray.evaluators.costs import COST_METRICS
from natsray.evaluators.proxies import PROXIES, ProxyConfig, ProxyEvaluator
from natsray.records import Candidate, candidate_seed
from natsray.search_space import Arch

__all__ = ["main"]

_DEFAULT_TABLES = Path(__file__).resolve().parents[2] / "shared" / "nats-tss"
_TEST_COLUMN = {
    "cifar10": "CIFAR10TestAccuracy200Epochs",
    "cifar100": "CIFAR100TestAccuracy200Epochs",
    "ImageNet16-120": "ImageNetTestAccuracy200Epochs",
}


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        sys.exit(f"proxy_correlation: missing table {path} (expected the NATS-TSS tables, see --tables)")
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


Lookup = Callable[[list[int]], tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]
"""Sampled NATS indices -> (accuracy targets, params/FLOPs), arrays aligned with the indices."""


def _from_csv_tables(tables: Path, dataset: str) -> tuple[dict[int, str], Lookup]:
    arch_strs, targets, costs = _targets(tables, dataset)

    def lookup(indices: list[int]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        return (
            {name: values[indices] for name, values in targets.items()},
            {name: values[indices] for name, values in costs.items()},
        )

    return dict(enumerate(arch_strs)), lookup


def _from_evaluator(kind: str, path: str, dataset: str) -> tuple[dict[int, str], Lookup]:
    """Cells with results in an archive (``kind="archive"``) or an exported table, and their numbers."""
    from natsray.evaluators import EvaluatorError
    from natsray.evaluators.archive import open_archive, record_file
    from natsray.evaluators.benchmark import BenchmarkConfig, BenchmarkEvaluator
    from natsray.evaluators.table import TableConfig, TableEvaluator, load_table

    report = ("test_accuracy@200", "params", "flops")
    if dataset == "cifar10":
        report += ("valid_accuracy@200",)
    fields = {"dataset": dataset, "hp": "200", "objective": ("test_accuracy",), "report": report}
    try:
        if kind == "archive":
            api = open_archive(path, "--archive")
            cells = {
                i: arch for i, arch in enumerate(api.meta_archs) if record_file(api.archive_dir, i).is_file()
            }
            evaluator = BenchmarkEvaluator(BenchmarkConfig(archive=path, **fields))
        else:
            table = load_table(path, "--table")
            rows = np.flatnonzero(table["has_record"] & (table["nats_index"] >= 0))
            cells = {int(table["nats_index"][row]): str(table["arch"][row]) for row in rows}
            evaluator = TableEvaluator(TableConfig(table=path, **fields), shared=None)
        evaluator.setup()
    except EvaluatorError as exc:
        sys.exit(f"proxy_correlation: {exc}")

    def lookup(indices: list[int]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        batch = [Candidate(n, Arch.from_str(cells[index])) for n, index in enumerate(indices)]
        results = evaluator.evaluate(batch)
        bad = next((r for r in results if not r.ok), None)
        if bad is not None:
            sys.exit(f"proxy_correlation: NATS index {indices[bad.candidate_id]}: {bad.error}")
        column = {name: np.array([float(r.metrics[name]) for r in results], dtype=float) for name in report}
        targets = {f"{dataset}_test_acc_hp200": column["test_accuracy@200"]}
        if dataset == "cifar10":
            targets["cifar10-valid_valid_acc_hp200"] = column["valid_accuracy@200"]
        return targets, {"params": column["params"], "flops": column["flops"]}

    return cells, lookup


def _targets(tables: Path, dataset: str) -> tuple[list[str], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Arch strings by NATS index, accuracy targets and params/FLOPs, all indexed by NATS index."""
    test_rows = _read_csv(tables / "test_acc_hp200.csv")
    arch_strs = [row["ArchitectureString"] for row in test_rows]
    targets = {f"{dataset}_test_acc_hp200": np.array([float(r[_TEST_COLUMN[dataset]]) for r in test_rows])}
    if dataset == "cifar10":
        valid_rows = _read_csv(tables / "cifar10valid_hp200.csv")
        targets["cifar10-valid_valid_acc_hp200"] = np.array([float(r["valid-accuracy"]) for r in valid_rows])
    cost_rows = _read_csv(tables / "costs.csv")
    costs = {
        name: np.array([float(r[f"{name}_{dataset}"]) for r in cost_rows]) for name in ("params", "flops")
    }
    return arch_strs, targets, costs


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns what it writes to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--samples", type=int, default=1000, help="cells sampled uniformly without replacement"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="sample seed; also the run seed of candidate seeds"
    )
    parser.add_argument("--dataset", choices=sorted(_TEST_COLUMN), default="cifar10")
    parser.add_argument("--data-dir", default=None, help="real dataset directory for the minibatch")
    parser.add_argument("--batch-size", type=int, default=64)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--archive", help="NATS-Bench TSS archive directory (targets and costs)")
    source.add_argument("--table", help="table from `natsray export-table` (targets and costs)")
    source.add_argument("--tables", type=Path, default=_DEFAULT_TABLES, help="NATS-TSS CSV tables directory")
    parser.add_argument(
        "--proxies",
        nargs="+",
        choices=PROXIES,
        default=list(PROXIES),
        help="proxies to compute (default: all)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/proxy_correlation.json"))
    args = parser.parse_args(argv)
    if args.data_dir is None and args.dataset != "cifar10":
        parser.error("without --data-dir only --dataset cifar10 has a stand-in batch (digits at 32x32)")

    if args.archive or args.table:
        kind = "archive" if args.archive else "table"
        arch_strs, lookup = _from_evaluator(kind, args.archive or args.table, args.dataset)
    else:
        arch_strs, lookup = _from_csv_tables(args.tables, args.dataset)
    if args.samples > len(arch_strs):
        parser.error(f"--samples {args.samples}: the source has results for {len(arch_strs)} cells only")
    rng = np.random.default_rng(args.seed)
    available = sorted(arch_strs)
    indices = sorted(available[int(i)] for i in rng.choice(len(available), size=args.samples, replace=False))
    targets, costs = lookup(indices)
    proxies = tuple(args.proxies)
    if args.data_dir is None:
        data = {"dataset": "digits", "digits_size": 32}
        batch_source = "STAND-IN: sklearn digits upsampled to 32x32 (no CIFAR-10 here)"
    else:
        data = {"dataset": args.dataset, "data_dir": args.data_dir}
        batch_source = f"{args.dataset} training images from {args.data_dir}"
    config = ProxyConfig(
        **data,
        batch_size=args.batch_size,
        device=args.device,
        threads=args.threads,
        proxies=proxies,
        objective=(proxies[0],),
    )
    evaluator = ProxyEvaluator(config)
    evaluator.setup()

    start = time.perf_counter()
    scores: dict[str, list[float]] = {name: [] for name in proxies}
    for n, index in enumerate(indices):
        candidate = Candidate(n, Arch.from_str(arch_strs[index]), seed=candidate_seed(args.seed, n))
        (result,) = evaluator.evaluate([candidate])
        if not result.ok:
            sys.exit(f"proxy_correlation: index {index} failed: {result.error}")
        for name in proxies:
            scores[name].append(result.metrics[name])
        if (n + 1) % 25 == 0:
            print(f"  {n + 1}/{len(indices)} cells, {time.perf_counter() - start:.0f} s", flush=True)
    seconds = time.perf_counter() - start

    predictors = {name: np.array(values) for name, values in scores.items()}
    predictors.update({name: costs[name] for name in COST_METRICS if name in costs})
    correlations = {
        predictor: {
            target: float(spearmanr(values, target_values).statistic)
            for target, target_values in targets.items()
        }
        for predictor, values in predictors.items()
    }

    header = f"{'predictor':<10}" + "".join(f"{target:>32}" for target in targets)
    per_cell = seconds / len(indices)
    print(f"\n{len(indices)} cells, batch: {batch_source}, {seconds:.0f} s ({per_cell:.2f} s/cell)")
    print(header)
    for predictor, row in correlations.items():
        print(f"{predictor:<10}" + "".join(f"{row[target]:>32.3f}" for target in targets))

    report = {
        "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "samples": len(indices),
        "seed": args.seed,
        "dataset": args.dataset,
        "batch_source": batch_source,
        "batch_size": args.batch_size,
        "source": args.archive or args.table or str(args.tables),
        "seconds": seconds,
        "seconds_per_cell": per_cell,
        "spearman": correlations,
        "cells": [
            {"index": index, **{name: _finite_or_none(float(scores[name][n])) for name in proxies}}
            for n, index in enumerate(indices)
        ],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
