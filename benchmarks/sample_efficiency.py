"""Sample efficiency of every shipped single-objective strategy on the real NATS-Bench TSS table.

For each strategy, dataset and seed, through :func:`natsray.engine.runner.run_experiment` (in-process,
``engine.mode: simulated`` with one simulated worker, ``search_space.dedup: none`` as NATS-Bench):

(a) **evaluations to the best-signal cell**: run up to ``--cap`` evaluations and count the evaluations
    until the cell with the highest hp-12 validation accuracy of the dataset is first evaluated
    (``cap + 1`` when it never is): median, 75th percentile, share of seeds within 1,000 (or the cap).
    The run is resumed with a larger evaluation budget (100, 250, 500, cap) until the cell is in its
    journal, so it stops soon after; the trajectory is the one an uninterrupted run would take.
(b) **NATS protocol**: stop after 20,000 / 40,000 / 120,000 simulated seconds (CIFAR-10 / CIFAR-100 /
    ImageNet16-120) and report the hp-200 test accuracy of the best cell by search signal: mean ± std.
    Each run also records ``evaluations_to_tied_best``: until a cell whose signal is within :data:`TIE`
    of the best is first evaluated (on CIFAR-100 two cells tie; on the other two datasets the figures are
    equal); the table reports the strict figure.
(c) **driver seconds per proposal**: wall seconds of the (a) run divided by its evaluations (the whole
    in-process loop: strategy ask/tell, table look-ups, journal), and, for the first ``--timing-seeds``
    seeds, the strategy's own ``ask`` + ``tell`` seconds per proposal over the (a) trajectory.

Usage::

    python benchmarks/sample_efficiency.py --table /work/data/nats-tss.npz [--seeds 100] [--cap 1000]
        [--strategies predictor_evolution,local_search,...] [--workers 2] [--merge]

Writes ``benchmarks/results/sample_efficiency.json`` (rows and every run) and prints the table. With
``--merge``, the runs of the strategies not re-run are kept from the existing file (same seeds, cap
and table required), so one strategy can be re-measured without re-running the baselines; the file
then records the command of the kept runs too.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from benchmark_json import write_results

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {"cifar10": 20_000, "cifar100": 40_000, "ImageNet16-120": 120_000}
SIGNAL_KEY = {
    "cifar10": "cifar10-valid/12/x-valid/accuracy",
    "cifar100": "cifar100/12/x-valid/accuracy",
    "ImageNet16-120": "ImageNet16-120/12/x-valid/accuracy",
}
TEST_KEY = {
    "cifar10": "cifar10/200/ori-test/accuracy",
    "cifar100": "cifar100/200/x-test/accuracy",
    "ImageNet16-120": "ImageNet16-120/200/x-test/accuracy",
}
TIE = 1e-4
"""Signals within this of the best count as tied in ``evaluations_to_tied_best`` (accuracy points):
CIFAR-100's best-signal cell (61.32) and its runner-up (61.31999993) are both 61.32 % up to float rounding."""
STRATEGIES: dict[str, dict[str, Any]] = {
    "regularized_evolution": {"name": "regularized_evolution", "population": 10, "sample_size": 3},
    "genetic": yaml.safe_load((ROOT / "configs" / "ga-cifar10.yaml").read_text())["strategy"],
    "local_search": yaml.safe_load((ROOT / "configs" / "local-search-cifar10.yaml").read_text())["strategy"],
    "random": {"name": "random"},
    "predictor_evolution": yaml.safe_load(
        (ROOT / "configs" / "predictor-evolution-cifar10.yaml").read_text()
    )["strategy"],
}


def best_signal_cell(table: str, dataset: str) -> tuple[int, float, float, frozenset[int]]:
    """Code, hp-12 validation accuracy and hp-200 test accuracy of the dataset's best-signal cell, and the
    codes of the cells tied with it (signal within :data:`TIE`, itself included)."""
    with np.load(table) as data:
        signal = data[SIGNAL_KEY[dataset]].mean(axis=1)
        code = int(np.argmax(signal))
        tied = frozenset(np.flatnonzero(signal >= signal[code] - TIE).tolist())
        return code, float(signal[code]), float(data[TEST_KEY[dataset]][code].mean()), tied


def experiment(strategy: str, dataset: str, seed: int, table: str, budget: dict[str, Any]) -> dict[str, Any]:
    """A NATS-protocol experiment dict (the shipped configs' evaluator section) on the exported table."""
    return {
        "seed": seed,
        "search_space": {"dedup": "none"},
        "strategy": STRATEGIES[strategy],
        "evaluator": {
            "type": "table",
            "table": table,
            "dataset": dataset,
            "hp": "12",
            "objective": ["valid_accuracy"],
            "report": ["test_accuracy@200"],
        },
        "budget": budget,
        "engine": {"mode": "simulated", "simulated_workers": 1},
        "output": {"progress": False, "checkpoint_every": 100_000, "checkpoint_seconds": 1e9},
    }


def run_one(job: tuple[str, str, int, str, int, frozenset[int], int, bool]) -> dict[str, Any]:
    """Both runs of one (strategy, dataset, seed); see the module docstring."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from natsray.config import config_from_dict
    from natsray.engine.checkpoint import JOURNAL_FILE, read_journal
    from natsray.engine.runner import run_experiment
    from natsray.search_space import Arch

    strategy, dataset, seed, table, target, tied, cap, timing = job
    with tempfile.TemporaryDirectory() as run_dir:
        # The (a) run grows its evaluation budget in steps and stops at the first step whose journal
        # holds the target: a resumed run continues the same trajectory (ordered, one simulated worker).
        start = time.perf_counter()
        for step, limit in enumerate(sorted({min(b, cap) for b in (100, 250, 500, cap)})):
            config = config_from_dict(experiment(strategy, dataset, seed, table, {"evaluations": limit}))
            run_experiment(config, run_dir, progress=False, resume=step > 0)
            records = sorted(read_journal(Path(run_dir) / JOURNAL_FILE), key=lambda r: r["candidate_id"])
            codes = [Arch.from_str(r["arch"]).code for r in records]
            if target in codes:
                break
        wall = time.perf_counter() - start
    to_best = codes.index(target) + 1 if target in codes else cap + 1
    to_tied = next((k + 1 for k, code in enumerate(codes) if code in tied), cap + 1)
    with tempfile.TemporaryDirectory() as run_dir:
        config = config_from_dict(
            experiment(strategy, dataset, seed, table, {"simulated_seconds": DATASETS[dataset]})
        )
        nats = run_experiment(config, run_dir, progress=False)
    row = {
        "strategy": strategy,
        "dataset": dataset,
        "seed": seed,
        "evaluations_to_best": to_best,
        "evaluations_to_tied_best": to_tied,
        "run_evaluations": len(codes),
        "run_seconds_per_evaluation": wall / max(len(codes), 1),
        "test_accuracy@200": nats.best_metrics["test_accuracy@200"],
        "nats_evaluations": nats.evaluations,
    }
    if timing:
        row["strategy_seconds_per_proposal"] = strategy_seconds(strategy, dataset, seed, table, codes)
    return row


def strategy_seconds(strategy: str, dataset: str, seed: int, table: str, codes: list[int]) -> float:
    """Seconds per ``ask`` + ``tell`` of the strategy alone, told the table's signal sequentially."""
    from natsray.config import config_from_dict
    from natsray.strategies import strategy_class

    config = config_from_dict(experiment(strategy, dataset, seed, table, {"evaluations": len(codes)}))
    with np.load(table) as data:
        signal = data[SIGNAL_KEY[dataset]].mean(axis=1)
    instance = strategy_class(config.strategy.name)(config.strategy, seed=seed)
    start = time.perf_counter()
    for _ in codes:
        candidate = instance.ask()
        if candidate is None:
            break
        instance.tell(candidate, (float(signal[candidate.arch.code]),))
    return (time.perf_counter() - start) / max(len(codes), 1)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q, method="linear"))


def markdown(rows: list[dict[str, Any]]) -> str:
    """The rows as the Markdown table of README.md and docs/strategies.md."""
    lines = [
        "| strategy | dataset | seeds | evals to best: median | p75 | within cap | test@200 mean ± std "
        "| best cell | run s/eval | strategy s/proposal |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        timed = r["strategy_seconds_per_proposal"]
        lines.append(
            f"| {r['strategy']} | {r['dataset']} | {r['seeds']} | {r['evaluations_to_best_median']:.0f} "
            f"| {r['evaluations_to_best_p75']:.0f} | {100 * r['share_within_cap']:.0f}% "
            f"| {r['test_accuracy@200_mean']:.2f} ± {r['test_accuracy@200_std']:.2f} "
            f"| {r['best_signal_cell_test_accuracy@200']:.2f} | {r['run_seconds_per_evaluation']:.4f} "
            f"| {'-' if timed is None else f'{timed:.4f}'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", required=True, help="table written by `natsray export-table`")
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--cap", type=int, default=1000, help="evaluations of each (a) run")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--timing-seeds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2, help="processes running seeds in parallel")
    parser.add_argument("--merge", action="store_true", help="keep the other strategies' runs from --out")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sample_efficiency.json"))
    args = parser.parse_args()
    table = str(Path(args.table).resolve())
    names = args.strategies.split(",")
    unknown = sorted(set(names) - set(STRATEGIES))
    if unknown:
        parser.error(f"--strategies: unknown {', '.join(unknown)}; expected some of {', '.join(STRATEGIES)}")
    cells = {d: best_signal_cell(table, d) for d in DATASETS}
    args.kept = kept_runs(args, names) if args.merge else None
    jobs = [  # seed-major, so a run stopped early holds about as many seeds of every row
        (s, d, seed, table, cells[d][0], cells[d][3], args.cap, seed < args.timing_seeds)
        for seed in range(args.seeds)
        for s in names
        for d in DATASETS
    ]
    start = time.perf_counter()
    runs: list[dict[str, Any]] = []
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        for run in pool.imap(run_one, jobs, chunksize=1):
            runs.append(run)
            if len(runs) % (3 * len(names)) == 0 and len(runs) < len(jobs):  # every seed: a partial file
                write(args, cells, names, runs, time.perf_counter() - start, quiet=True)
    write(args, cells, names, runs, time.perf_counter() - start)


def kept_runs(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    """The ``--merge`` part of the existing ``--out``: its runs of strategies not in ``names``."""
    old = json.loads(Path(args.out).read_text())
    for field in ("seeds", "cap"):
        if f"--{field} {getattr(args, field)} " not in old["command"] + " ":
            raise SystemExit(f"--merge: {args.out} was not made with --{field} {getattr(args, field)}")
    runs = [r for r in old["runs"] if r["strategy"] not in names]
    return {
        "command": old.get("kept_command", old["command"]),
        "strategies": [s for s in STRATEGIES if any(r["strategy"] == s for r in runs)],
        "elapsed_s": old.get("kept_elapsed_s", old["elapsed_s"]),
        "runs": runs,
    }


def write(args: argparse.Namespace, cells, names, runs, elapsed: float, *, quiet: bool = False) -> None:
    """Summarise ``runs`` (plus the ``--merge`` kept runs) into rows, print them (unless ``quiet``) and
    write the JSON file."""
    out_print = (lambda *a, **k: None) if quiet else print
    kept = args.kept
    complete = len(runs) == args.seeds * len(names) * len(DATASETS)
    if kept is not None:
        runs = kept["runs"] + runs
        names = [s for s in STRATEGIES if s in names or s in kept["strategies"]]

    rows = []
    out_print(
        f"{'strategy':<22} {'dataset':<15} {'seeds':>5} {'median':>6} {'p75':>6} {'<=cap':>6} "
        f"{'test@200 mean±std':>17} {'best cell':>9} {'run s/eval':>10} {'strat s/prop':>12}"
    )
    for strategy in names:
        for dataset in DATASETS:
            mine = [r for r in runs if r["strategy"] == strategy and r["dataset"] == dataset]
            if not mine:
                continue
            hits = [r["evaluations_to_best"] for r in mine]
            accs = [r["test_accuracy@200"] for r in mine]
            timed = [r["strategy_seconds_per_proposal"] for r in mine if "strategy_seconds_per_proposal" in r]
            row = {
                "strategy": strategy,
                "dataset": dataset,
                "seeds": len(mine),
                "evaluations_to_best_median": percentile(hits, 50),
                "evaluations_to_best_p75": percentile(hits, 75),
                "share_within_cap": sum(h <= args.cap for h in hits) / len(hits),
                "cap": args.cap,
                "test_accuracy@200_mean": statistics.mean(accs),
                "test_accuracy@200_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                "best_signal_cell": cells[dataset][0],
                "best_signal_cell_test_accuracy@200": cells[dataset][2],
                "run_seconds_per_evaluation": statistics.mean(r["run_seconds_per_evaluation"] for r in mine),
                "strategy_seconds_per_proposal": statistics.mean(timed) if timed else None,
            }
            rows.append(row)
            out_print(
                f"{strategy:<22} {dataset:<15} {len(mine):>5} {row['evaluations_to_best_median']:>6.0f} "
                f"{row['evaluations_to_best_p75']:>6.0f} {row['share_within_cap']:>6.2f} "
                f"{row['test_accuracy@200_mean']:>9.2f} ± {row['test_accuracy@200_std']:.2f} "
                f"{cells[dataset][2]:>9.2f} {row['run_seconds_per_evaluation']:>10.4f} "
                f"{row['strategy_seconds_per_proposal'] or float('nan'):>12.4f}"
            )
    out_print(f"{len(runs)} runs in {elapsed:.1f} s\n")
    out_print(markdown(rows))
    command = (
        f"python benchmarks/sample_efficiency.py --table {args.table} --seeds {args.seeds} --cap {args.cap} "
        f"--strategies {args.strategies} --timing-seeds {args.timing_seeds} --workers {args.workers}"
        + (" --merge" if kept is not None else "")
    )
    kept_fields = (
        {}
        if kept is None
        else {
            "kept_command": kept["command"],
            "kept_strategies": kept["strategies"],
            "kept_elapsed_s": kept["elapsed_s"],
        }
    )
    fields = {"elapsed_s": elapsed, "complete": complete, **kept_fields, "rows": rows, "runs": runs}
    write_results(args.out, command, fields, quiet=quiet)


if __name__ == "__main__":
    main()
