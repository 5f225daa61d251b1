"""NSGA-II with surrogate pre-selection (``strategy.screen``) against plain NSGA-II on the real NATS table.

For each dataset, seed and ``screen`` value, one run through :func:`natsray.engine.runner.run_experiment`
(in-process, ``engine.mode: ordered``, ``search_space.dedup: arch``) of NSGA-II with two objectives read
from the exported table: the hp-12 validation accuracy (%, maximised; the search signal) and the
parameter count (MB, minimised). Reported per row, at 100 / 200 / ``--evaluations`` evaluations (the
first evaluations of the run by candidate id):

- **hypervolume gap** (%): ``100 * (1 - HV / HV*)``, HV the 2-D hypervolume of the evaluated cells'
  (accuracy, params) points and HV* that of the whole table's Pareto front, both over the reference point
  (lowest accuracy, largest parameter count of the whole table); 0 when the true front is found. The gap,
  not the ratio, because the ratio is above 0.9 after a few dozen evaluations (the front's low-accuracy,
  tiny cells are found at once) and its differences vanish in rounding (BoTorch reports its log).
  Mean ± std over seeds.
- **front cells found**: how many cells of the whole table's Pareto front were evaluated (mean).
- driver seconds per evaluation of the whole run.

Usage::

    python benchmarks/multi_objective.py --table /work/data/nats-tss.npz [--seeds 30] [--evaluations 300]
        [--screens 1,4,8] [--population 20] [--workers 2]

Writes ``benchmarks/results/multi_objective.json`` (the rows, and every run's figures) and prints the table.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from benchmark_json import write_results

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {  # dataset -> (hp-12 validation accuracy key, params key)
    "cifar10": ("cifar10-valid/12/x-valid/accuracy", "cifar10/12/cost/params"),
    "cifar100": ("cifar100/12/x-valid/accuracy", "cifar100/12/cost/params"),
    "ImageNet16-120": ("ImageNet16-120/12/x-valid/accuracy", "ImageNet16-120/12/cost/params"),
}
CHECKPOINTS = (100, 200)


def objectives(table: str, dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy (%) and params (MB) of every cell, ``(15625,)`` each, as the table evaluator reads them."""
    accuracy_key, params_key = DATASETS[dataset]
    with np.load(table) as data:
        params = data[params_key]
        return data[accuracy_key].mean(axis=1), params.mean(axis=1) if params.ndim == 2 else params


def hypervolume(accuracy: np.ndarray, params: np.ndarray, reference: tuple[float, float]) -> float:
    """Area dominated by the points (accuracy maximised, params minimised) and bounded by ``reference``
    (an accuracy below and a parameter count above every point)."""
    order = np.lexsort((-accuracy, params))  # by params ascending, then accuracy descending
    area, best = 0.0, reference[0]
    edges = np.append(params[order], reference[1])
    for k, i in enumerate(order):
        best = max(best, float(accuracy[i]))
        area += (best - reference[0]) * (float(edges[k + 1]) - float(params[i]))
    return area


def pareto_codes(accuracy: np.ndarray, params: np.ndarray) -> set[int]:
    """Codes of the cells no other cell dominates (higher-or-equal accuracy and lower-or-equal params,
    one strictly)."""
    order = np.lexsort((-accuracy, params))
    front, best = set(), -np.inf
    for i in order.tolist():
        if accuracy[i] > best:
            front.add(i)
            best = float(accuracy[i])
    return front


def _stdev(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def run_one(job: tuple[str, int, int, int, int, str]) -> dict[str, Any]:
    """One NSGA-II run; the codes it evaluated, in candidate-id order."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from natsray.config import config_from_dict
    from natsray.engine.checkpoint import JOURNAL_FILE, read_journal
    from natsray.engine.runner import run_experiment
    from natsray.search_space import Arch

    dataset, seed, screen, population, evaluations, table = job
    config = config_from_dict(
        {
            "seed": seed,
            "search_space": {"dedup": "arch"},
            "strategy": {"name": "nsga2", "population": population, "screen": screen},
            "evaluator": {
                "type": "table",
                "table": table,
                "dataset": dataset,
                "hp": "12",
                "objective": ["valid_accuracy", "params:min"],
            },
            "budget": {"evaluations": evaluations},
            "engine": {"mode": "ordered", "in_process": True},
            "output": {"progress": False, "checkpoint_every": 100_000, "checkpoint_seconds": 1e9},
        }
    )
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        run_experiment(config, run_dir, progress=False)
        wall = time.perf_counter() - start
        records = sorted(read_journal(Path(run_dir) / JOURNAL_FILE), key=lambda r: r["candidate_id"])
    codes = [Arch.from_str(r["arch"]).code for r in records]
    return {"dataset": dataset, "seed": seed, "screen": screen, "codes": codes, "seconds": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", required=True, help="table written by `natsray export-table`")
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--evaluations", type=int, default=300)
    parser.add_argument("--screens", default="1,4,8", help="values of strategy.screen (1: plain NSGA-II)")
    parser.add_argument("--population", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="processes running seeds in parallel")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "multi_objective.json"))
    args = parser.parse_args()
    table = Path(args.table).resolve()
    if not table.is_file():
        parser.error(f"--table: {table} does not exist (write it with `natsray export-table`)")
    screens = [int(s) for s in args.screens.split(",")]
    checkpoints = [c for c in CHECKPOINTS if c < args.evaluations] + [args.evaluations]
    jobs = [
        (d, seed, screen, args.population, args.evaluations, str(table))
        for seed in range(args.seeds)
        for d in DATASETS
        for screen in screens
    ]
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        runs = pool.map(run_one, jobs, chunksize=1)
    elapsed = time.perf_counter() - start

    rows = []
    print(
        f"{'dataset':<15} {'screen':>6} {'seeds':>5} "
        + " ".join(f"{f'HV gap %@{c}':>13}" for c in checkpoints)
        + f" {'front found':>11} {'s/eval':>7}"
    )
    for dataset in DATASETS:
        accuracy, params = objectives(str(table), dataset)
        reference = (float(accuracy.min()), float(params.max()))
        front = pareto_codes(accuracy, params)
        full = hypervolume(accuracy[list(front)], params[list(front)], reference)
        for screen in screens:
            mine = [r for r in runs if r["dataset"] == dataset and r["screen"] == screen]
            ratios: dict[int, list[float]] = {c: [] for c in checkpoints}
            found = []
            for run in mine:
                codes = run.pop("codes")  # the file keeps each run's figures, not its cells
                for c in checkpoints:
                    prefix = np.asarray(codes[:c])
                    gap = 100 * (1 - hypervolume(accuracy[prefix], params[prefix], reference) / full)
                    ratios[c].append(gap)
                    run[f"hypervolume_gap_pct@{c}"] = gap
                found.append(len(front & set(codes)))
                run |= {"front_cells_found": found[-1], "evaluations": len(codes)}
            row = {
                "dataset": dataset,
                "screen": screen,
                "seeds": len(mine),
                "front_size": len(front),
                **{f"hypervolume_gap_pct@{c}_mean": statistics.mean(ratios[c]) for c in checkpoints},
                **{f"hypervolume_gap_pct@{c}_std": _stdev(ratios[c]) for c in checkpoints},
                "front_cells_found_mean": statistics.mean(found),
                "seconds_per_evaluation": statistics.mean(r["seconds"] / r["evaluations"] for r in mine),
            }
            rows.append(row)
            print(
                f"{dataset:<15} {screen:>6} {len(mine):>5} "
                + " ".join(
                    f"{row[f'hypervolume_gap_pct@{c}_mean']:>6.3f}±{row[f'hypervolume_gap_pct@{c}_std']:<6.3f}"
                    for c in checkpoints
                )
                + f" {row['front_cells_found_mean']:>7.1f}/{len(front):<3}"
                + f" {row['seconds_per_evaluation']:>7.4f}"
            )
    print(f"{len(runs)} runs in {elapsed:.1f} s")
    command = (
        f"python benchmarks/multi_objective.py --table {args.table} --seeds {args.seeds} "
        f"--evaluations {args.evaluations} --screens {args.screens} --population {args.population} "
        f"--workers {args.workers}"
    )
    write_results(args.out, command, {"elapsed_s": elapsed, "rows": rows, "runs": runs})


if __name__ == "__main__":
    main()
