"""Multi-fidelity search on NATS-Bench: ASHA-promoted evolution (hp 12 -> hp 200) against REA.

Both run NATS-Bench's protocol from the shipped ``configs/rea-*.yaml``: one simulated worker, NATS's
simulated training cost, 20,000 / 40,000 / 120,000 simulated seconds on CIFAR-10 / CIFAR-100 /
ImageNet16-120, and the hp-200 test accuracy of the run's best cell as the answer. REA searches on the
hp-12 validation accuracy only. ``asha_evolution`` (``natsray/strategies/asha_evolution.py``) breeds at
hp 12 and promotes the top ``1/eta`` of the hp-12 results to hp 200 (ASHA's rule, Li et al. 2020),
paying the hp-200 training time for each promotion; its best cell is the best hp-200 validation accuracy
among the promoted ones. Prints mean ± std per (strategy, eta, dataset) and writes
``benchmarks/results/multi_fidelity.json``.

A dataset whose table has no hp-200 validation accuracy is skipped with a note (the table rebuilt from
public results, ``/work/data/nats-tss.npz``, has it for CIFAR-10 only: ``cifar10-valid`` hp 200; its
CIFAR-100 / ImageNet16-120 hp-200 columns hold only the ``x-test`` accuracy, which a search must not
read).

Usage::

    python benchmarks/multi_fidelity.py --table /work/data/nats-tss.npz [--seeds 100] [--eta 9 27 81]
    python benchmarks/multi_fidelity.py --table TABLE --budget-scale 5 --out benchmarks/results/mf_x5.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from natsray.config import config_from_dict
from natsray.engine.checkpoint import JOURNAL_FILE, read_journal
from natsray.engine.runner import run_experiment
from natsray.evaluators.metrics import raw_key, valid_run

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {"cifar10": "cifar10", "cifar100": "cifar100", "ImageNet16-120": "imagenet16"}
DEFAULT_OUT = "benchmarks/results/multi_fidelity.json"
OPTIMUM = {"cifar10": 94.373, "cifar100": 73.513, "ImageNet16-120": 47.311}  # ../shared/nats-tss/README.md


def experiment(dataset: str, seed: int, table: str, eta: int | None, scale: float = 1.0) -> dict[str, Any]:
    """``configs/rea-<dataset>.yaml`` on ``table``, its simulated-seconds budget times ``scale``; with
    ``eta``, the strategy is asha_evolution."""
    raw = yaml.safe_load((ROOT / "configs" / f"rea-{DATASETS[dataset]}.yaml").read_text())
    raw["seed"] = seed
    raw["budget"] = {"simulated_seconds": raw["budget"]["simulated_seconds"] * scale}
    evaluator = {k: v for k, v in raw["evaluator"].items() if k not in ("type", "archive")}
    raw["evaluator"] = {"type": "table", "table": table, **evaluator}
    if eta is not None:
        raw["strategy"] = {**raw["strategy"], "name": "asha_evolution", "budgets": [12, 200], "eta": eta}
    raw["output"] = {"progress": False, "checkpoint_every": 100_000, "checkpoint_seconds": 1e9}
    return raw


def has_hp200_validation(table: str, dataset: str) -> bool:
    """True when ``table`` holds the hp-200 validation accuracy of ``dataset`` for some cell."""
    with np.load(table, allow_pickle=False) as data:
        values = data[raw_key(valid_run(dataset), "200", "x-valid", "accuracy")]
    return bool(values.size) and not bool(np.isnan(values).all())


def run_one(job: tuple[str, int, str, int | None, float]) -> dict[str, Any]:
    dataset, seed, table, eta, scale = job
    config = config_from_dict(experiment(dataset, seed, table, eta, scale))
    with tempfile.TemporaryDirectory() as run_dir:
        summary = run_experiment(config, run_dir, progress=False)
        budgets = [record.get("budget") for record in read_journal(Path(run_dir) / JOURNAL_FILE)]
    return {
        "strategy": "regularized_evolution" if eta is None else "asha_evolution",
        "eta": eta,
        "dataset": dataset,
        "seed": seed,
        "test_accuracy@200": summary.best_metrics["test_accuracy@200"],
        "evaluations": summary.evaluations,
        "evaluations_hp200": budgets.count(200),
        "failed": summary.failed,
        "budget_scale": scale,
        "simulated_seconds": summary.simulated_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", required=True, help="table written by `natsray export-table`")
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--eta", type=int, nargs="+", default=[9, 27, 81], help="asha_evolution's eta values")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument(
        "--budget-scale", type=float, default=1.0, help="multiply the NATS simulated-seconds budgets by this"
    )
    parser.add_argument("--workers", type=int, default=1, help="processes running seeds in parallel")
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args()
    table = str(Path(args.table).resolve())
    variants: list[int | None] = [None, *args.eta]
    datasets = [d for d in args.datasets if has_hp200_validation(table, d)]
    skipped = [d for d in args.datasets if d not in datasets]
    for dataset in skipped:
        print(f"skipped {dataset}: {args.table} has no hp-200 validation accuracy for it")
    jobs = [
        (d, seed, table, eta, args.budget_scale)
        for seed in range(args.seeds)
        for eta in variants
        for d in datasets
    ]
    per_seed = len(variants) * len(datasets)
    command = (
        f"python benchmarks/multi_fidelity.py --table {args.table} --seeds {args.seeds} "
        f"--eta {' '.join(map(str, args.eta))} --datasets {' '.join(args.datasets)} "
        f"--budget-scale {args.budget_scale:g} --workers {args.workers}"
        + (f" --out {args.out}" if args.out != DEFAULT_OUT else "")
    )
    meta = {
        "command": command,
        "machine": platform.platform(),
        "skipped_datasets": skipped,
        "simulated_seconds": {
            d: experiment(d, 0, table, None, args.budget_scale)["budget"] for d in datasets
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    runs: list[dict[str, Any]] = []
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        for run in pool.imap(run_one, jobs, chunksize=1):  # in job order: seed by seed
            runs.append(run)
            if len(runs) % (10 * per_seed) == 0 or len(runs) == len(jobs):
                # written every 10 complete seeds, so a run stopped early leaves what it finished
                write(out, meta, time.perf_counter() - start, variants, datasets, runs, len(jobs))
    rows = write(out, meta, time.perf_counter() - start, variants, datasets, runs, len(jobs))
    print(
        f"{'strategy':<22} {'eta':>4} {'dataset':<15} {'seeds':>5} {'test@200 mean±std':>18} "
        f"{'optimum':>8} {'evals':>6} {'at hp200':>8}"
    )
    for row in rows:
        print(
            f"{row['strategy']:<22} {row['eta'] or '-':>4} {row['dataset']:<15} {row['seeds']:>5} "
            f"{row['test_accuracy@200_mean']:>10.2f} ± {row['test_accuracy@200_std']:.2f} "
            f"{OPTIMUM[row['dataset']]:>8.2f} {row['evaluations_mean']:>6.1f} "
            f"{row['evaluations_hp200_mean']:>8.1f}"
        )
    print(f"{len(runs)} runs in {time.perf_counter() - start:.1f} s; wrote {out}")


def write(
    out: Path,
    meta: dict[str, Any],
    elapsed: float,
    variants: list[int | None],
    datasets: list[str],
    runs: list[dict[str, Any]],
    planned: int,
) -> list[dict[str, Any]]:
    """Write the JSON of the runs so far (rows over the seeds every variant finished); return the rows."""
    rows = []
    for eta in variants:
        for dataset in datasets:
            mine = [r for r in runs if (r["eta"], r["dataset"]) == (eta, dataset)]
            if not mine:
                continue
            accs = [r["test_accuracy@200"] for r in mine]
            rows.append(
                {
                    "strategy": mine[0]["strategy"],
                    "eta": eta,
                    "dataset": dataset,
                    "seeds": len(mine),
                    "test_accuracy@200_mean": statistics.mean(accs),
                    "test_accuracy@200_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                    "optimum": OPTIMUM[dataset],
                    "evaluations_mean": statistics.mean(r["evaluations"] for r in mine),
                    "evaluations_hp200_mean": statistics.mean(r["evaluations_hp200"] for r in mine),
                    "failed_total": sum(r["failed"] for r in mine),
                }
            )
    payload = {
        **meta,
        "elapsed_s": elapsed,
        "complete": len(runs) == planned,
        "rows": rows,
        "runs": runs,
    }
    out.write_text(json.dumps(payload, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main()
