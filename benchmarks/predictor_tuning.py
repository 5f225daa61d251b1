"""Tune ``predictor_evolution`` on development seeds: its ask/tell loop alone on the exported table.

A fast stand-in for ``benchmarks/sample_efficiency.py`` used to choose the strategy's defaults on seeds
that the benchmark does not use (default 1000-1049; the benchmark reports seeds 0-99). Per seed and
dataset it drives :class:`~natsray.strategies.predictor_evolution.PredictorEvolution` sequentially
(one worker, as the benchmark's simulated engine) with the hp-12 validation accuracy as fitness and
measures, in one trajectory:

- evaluations until the best-signal cell is first proposed (``cap + 1`` when not within ``--cap``);
- the NATS protocol: the hp-200 test accuracy of the best cell by signal among the evaluations made
  before 20k / 40k / 120k simulated seconds are spent (the evaluation that crosses the budget counts,
  as in the engine; cost = hp-12 training time + one validation pass, as the table evaluator's);
- the strategy's seconds per ``ask`` + ``tell``.

It reproduced the benchmark's per-seed figures (evaluations to the cell, test accuracy) on the 9 runs
checked (seeds 0-2 of the previous defaults, three datasets). Usage::

    python benchmarks/predictor_tuning.py --table /work/data/nats-tss.npz --set '{"target": "rank"}'
        [--seeds 1000:1050] [--cap 300] [--datasets cifar10,cifar100,ImageNet16-120] [--workers 1]

``--set`` is a JSON object of ``PredictorEvolutionConfig`` fields (the rest keep their defaults);
``--workers`` runs that many seeds at once in forked processes (the figures do not depend on it).
Each row holds the median / 75th / 90th percentile of the evaluations to the cell and the mean NATS-protocol
test accuracy. Prints one line per dataset and appends them to ``benchmarks/results/predictor_tuning.jsonl``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import statistics
import time
from pathlib import Path

import numpy as np

from natsray.strategies.predictor_evolution import PredictorEvolution, PredictorEvolutionConfig

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {  # dataset -> (run with the hp-12 signal, hp-200 test key, NATS budget in simulated seconds)
    "cifar10": ("cifar10-valid", "cifar10/200/ori-test/accuracy", 20_000),
    "cifar100": ("cifar100", "cifar100/200/x-test/accuracy", 40_000),
    "ImageNet16-120": ("ImageNet16-120", "ImageNet16-120/200/x-test/accuracy", 120_000),
}


def load(table: str, dataset: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Signal, hp-200 test accuracy and simulated cost of every cell, ``(15625,)`` each."""
    run, test, _ = DATASETS[dataset]
    with np.load(table) as data:
        signal = data[f"{run}/12/x-valid/accuracy"].mean(axis=1)
        cost = data[f"{run}/12/train/time"].mean(axis=1) + data[f"{run}/12/x-valid/time"].mean(axis=1) / 12
        return signal, data[test].mean(axis=1), cost


def trajectory(
    config: PredictorEvolutionConfig, seed: int, cap: int, budget: float, tables: tuple[np.ndarray, ...]
) -> tuple[int, float, float]:
    """(evaluations to the best-signal cell, NATS-protocol test accuracy, seconds per proposal)."""
    signal, test, cost = tables
    target = int(np.argmax(signal))
    strategy = PredictorEvolution(config, seed=seed)
    spent, nats_best, hit, steps = 0.0, -1, cap + 1, 0
    start = time.perf_counter()
    while steps < cap and (hit > cap or spent < budget):
        candidate = strategy.ask()
        code = candidate.arch.code
        steps += 1
        if spent < budget:
            spent += cost[code]
            if nats_best < 0 or signal[code] > signal[nats_best]:
                nats_best = code
        strategy.tell(candidate, (float(signal[code]),))
        if code == target:
            hit = steps
    return hit, float(test[nats_best]), (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", required=True, help="table written by `natsray export-table`")
    parser.add_argument("--set", default="{}", help="JSON object of PredictorEvolutionConfig fields")
    parser.add_argument("--seeds", default="1000:1050", help="first:stop")
    parser.add_argument("--cap", type=int, default=300)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--workers", type=int, default=1, help="seeds run at once (forked processes)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "predictor_tuning.jsonl"))
    args = parser.parse_args()
    config = PredictorEvolutionConfig(**json.loads(args.set))
    first, stop = map(int, args.seeds.split(":"))
    for dataset in args.datasets.split(","):
        tables = load(args.table, dataset)
        jobs = [(config, s, args.cap, DATASETS[dataset][2], tables) for s in range(first, stop)]
        if args.workers > 1:
            with multiprocessing.get_context("fork").Pool(args.workers) as pool:
                runs = pool.starmap(trajectory, jobs)
        else:
            runs = [trajectory(*job) for job in jobs]
        hits, accs = [r[0] for r in runs], [r[1] for r in runs]
        row = {
            "set": json.loads(args.set),
            "config": dataclasses.asdict(config),
            "dataset": dataset,
            "seeds": args.seeds,
            "cap": args.cap,
            "median": float(np.percentile(hits, 50)),
            "p75": float(np.percentile(hits, 75)),
            "p90": float(np.percentile(hits, 90)),
            "test_accuracy@200_mean": statistics.mean(accs),
            "test_accuracy@200_std": statistics.stdev(accs),
            "seconds_per_proposal": statistics.mean(r[2] for r in runs),
            "evaluations_to_best": hits,
            "test_accuracy@200": accs,
        }
        print(
            f"{args.set} {dataset}: median {row['median']:.1f} p75 {row['p75']:.1f} p90 {row['p90']:.1f} "
            f"test@200 {row['test_accuracy@200_mean']:.3f} ± {row['test_accuracy@200_std']:.2f} "
            f"s/proposal {row['seconds_per_proposal']:.4f}",
            flush=True,
        )
        with open(args.out, "a") as out:
            out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
