"""Spearman rank correlation of zero-cost proxies (and params / FLOPs) with real NATS-Bench accuracy.

For a random sample of cells it computes every proxy with natsray's ``ProxyEvaluator`` and
correlates it with the 200-epoch accuracies in the NATS-TSS tables (``../shared/nats-tss``):
``test_acc_hp200.csv`` (test accuracy) and, for ``cifar10``, ``cifar10valid_hp200.csv``
(``cifar10-valid`` validation accuracy). ``params`` / ``flops`` come from ``costs.csv``.

The minibatch comes from ``--data-dir`` (the real dataset, as in the papers). Without it the
batch is a stand-in: sklearn's digits upsampled to 32x32 (cifar10 only: same 10 classes and
input size, so the networks are exactly the CIFAR-10 ones). ``synflow`` is data-free either way.

    python benchmarks/proxy_correlation.py --samples 300 --seed 0 --dataset cifar10
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
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
    parser.add_argument("--tables", type=Path, default=_DEFAULT_TABLES, help="NATS-TSS tables directory")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/proxy_correlation.json"))
    args = parser.parse_args(argv)
    if args.data_dir is None and args.dataset != "cifar10":
        parser.error("without --data-dir only --dataset cifar10 has a stand-in batch (digits at 32x32)")

    arch_strs, targets, costs = _targets(args.tables, args.dataset)
    rng = np.random.default_rng(args.seed)
    indices = sorted(int(i) for i in rng.choice(len(arch_strs), size=args.samples, replace=False))
    if args.data_dir is None:
        data = {"dataset": "digits", "digits_size": 32}
        batch_source = "STAND-IN: sklearn digits upsampled to 32x32 (no CIFAR-10 here)"
    else:
        data = {"dataset": args.dataset, "data_dir": args.data_dir}
        batch_source = f"{args.dataset} training images from {args.data_dir}"
    config = ProxyConfig(
        **data, batch_size=args.batch_size, device=args.device, threads=args.threads, proxies=PROXIES
    )
    evaluator = ProxyEvaluator(config)
    evaluator.setup()

    start = time.perf_counter()
    scores: dict[str, list[float]] = {name: [] for name in PROXIES}
    for n, index in enumerate(indices):
        candidate = Candidate(n, Arch.from_str(arch_strs[index]), seed=candidate_seed(args.seed, n))
        (result,) = evaluator.evaluate([candidate])
        if not result.ok:
            sys.exit(f"proxy_correlation: index {index} failed: {result.error}")
        for name in PROXIES:
            scores[name].append(result.metrics[name])
        if (n + 1) % 25 == 0:
            print(f"  {n + 1}/{len(indices)} cells, {time.perf_counter() - start:.0f} s", flush=True)
    seconds = time.perf_counter() - start

    predictors = {name: np.array(values) for name, values in scores.items()}
    predictors.update({name: costs[name][indices] for name in COST_METRICS if name in costs})
    correlations = {
        predictor: {
            target: float(spearmanr(values, target_values[indices]).statistic)
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
        "seconds": seconds,
        "spearman": correlations,
        "cells": [
            {"index": index, **{name: _finite_or_none(float(scores[name][n])) for name in PROXIES}}
            for n, index in enumerate(indices)
        ],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
