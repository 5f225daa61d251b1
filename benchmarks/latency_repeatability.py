"""Does ``natsray measure-latency`` repeat itself? Each mode measures the same cells twice.

For the first ``--cells`` cells of the measurement's seeded order, each mode writes two CSVs
(two full passes, one after the other) with :func:`natsray.experiment.latency.measure_latency`:

* ``in-process``: the default, one cell at a time in this process on one torch thread;
* ``ray-actors=K``: K Ray actors of one CPU each, measuring concurrently (the old default, K=2).

Per mode it prints the Spearman rank correlation of the two passes' latencies (1: the same
order of cells), the median relative deviation between them (``|a - b| / mean(a, b)``), the
median latency and the seconds per pass, with the load average before and after (the machine
is shared: compare modes within one run, as ratios). Results go to
``benchmarks/results/latency_repeatability.json``.

    python benchmarks/latency_repeatability.py --cells 40 --actors 2
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from natsray.evaluators.costs import CostConfig
from natsray.experiment.latency import measure_latency

RESULTS = Path(__file__).resolve().parent / "results" / "latency_repeatability.json"


def read_latencies(path: Path) -> dict[str, float]:
    """``arch -> latency_ms`` of a measure-latency CSV (its ``#`` settings line skipped)."""
    with open(path, newline="") as handle:
        rows = list(csv.reader(line for line in handle if not line.startswith("#")))
    return {arch: float(ms) for arch, ms in rows[1:]}


def compare(first: dict[str, float], second: dict[str, float]) -> dict[str, float]:
    """Spearman correlation and median relative deviation (%) of two passes over the same cells."""
    archs = sorted(first)
    a = np.array([first[arch] for arch in archs])
    b = np.array([second[arch] for arch in archs])
    return {
        "spearman": float(spearmanr(a, b).statistic),
        "median_deviation_pct": float(100 * np.median(np.abs(a - b) / ((a + b) / 2))),
        "median_ms": float(np.median(np.concatenate([a, b]))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=40)
    parser.add_argument("--actors", type=int, default=2, help="actors of the Ray mode (default: 2)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    config = CostConfig(threads=1, objective=("latency",), latency_repeats=args.repeats)
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, actors in (("in-process", None), (f"ray-actors={args.actors}", args.actors)):
            passes, seconds = [], []
            for index in range(2):
                path = Path(tmp) / f"{name}-{index}.csv"
                start = time.perf_counter()
                measure_latency(path, config, cells=args.cells, seed=0, actors=actors)
                seconds.append(time.perf_counter() - start)
                passes.append(read_latencies(path))
            rows.append({"mode": name, **compare(*passes), "seconds_per_pass": statistics.mean(seconds)})
    load_after = os.getloadavg()
    print(f"{args.cells} cells, C=16 N=5, cifar10 input, batch 1, {args.repeats} repeats; 2 passes per mode")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)")
    print(f"{'mode':<14} {'spearman':>8} {'median dev %':>12} {'median ms':>9} {'s/pass':>7}")
    for row in rows:
        print(
            f"{row['mode']:<14} {row['spearman']:>8.3f} {row['median_deviation_pct']:>12.1f} "
            f"{row['median_ms']:>9.3f} {row['seconds_per_pass']:>7.1f}"
        )
    result = {
        "command": f"python benchmarks/latency_repeatability.py --cells {args.cells} --actors {args.actors}",
        "cells": args.cells,
        "repeats": args.repeats,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "cpus": os.cpu_count(),
        "modes": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
