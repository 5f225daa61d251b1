"""Query-mode throughput: natsray's engine against the plain REA loop, measured side by side.

The reference is ``../shared/bench/bare_rea.py`` (REA P=10 S=3 over the real hp-12 numbers, one dict
look-up per evaluation, no framework), run in this process right before AND right after each engine
run (each side the median of ``--bare-runs`` runs, default 3: a single sub-second run of it swings by
a third on a shared machine); each engine figure is divided by the mean of its two neighbours, so
machine noise hits both sides of a ratio alike. The engine runs the same protocol (REA P=10 S=3,
cifar10, hp 12, ``dedup: none``, table evaluator, 100,000 evaluations by default):

* ``in-process``: the real command, ``natsray run`` in a subprocess (``engine.in_process: true``).
  Its rate is evaluations / the run's own wall seconds (``summary.json``); ``start-up + finish`` is
  the command's whole wall time minus that: Python start, config, table load, then CSV, plots,
  summary;
* ``ray xN``: :func:`run_experiment` on N actors of a fresh local Ray instance started just before
  (as ``natsray run`` starts one); its wall time includes starting the actors, not Ray itself.

Targets (issue 8): in-process >= 0.25, Ray with 1-2 actors >= 0.15, start-up + finish <= 5 s.
Prints a table and writes ``benchmarks/results/throughput.json``.

Usage::

    python benchmarks/throughput.py --table TABLE.npz [--evaluations 100000] [--actors 1 2] [--repeats 1]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
BARE = ROOT.parent / "shared" / "bench" / "bare_rea.py"
TARGETS = {"in-process": 0.25, "ray": 0.15, "start-up + finish": 5.0}


def load_bare(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("bare_rea", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"--bare: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def experiment(table: str, evaluations: int, **engine: Any) -> dict[str, Any]:
    return {
        "seed": 0,
        "search_space": {"dedup": "none"},
        "strategy": {"name": "regularized_evolution", "population": 10, "sample_size": 3},
        "evaluator": {"type": "table", "table": table, "dataset": "cifar10", "hp": "12"},
        "budget": {"evaluations": evaluations},
        "engine": engine,
        "output": {"progress": False},
    }


def in_process(table: str, evaluations: int) -> dict[str, Any]:
    """``natsray run`` of the in-process protocol, as a user runs it."""
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "throughput.yaml"
        config.write_text(yaml.safe_dump(experiment(table, evaluations, in_process=True, mode="async")))
        out = Path(tmp) / "run"
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "natsray", "run", str(config), "--out", str(out)],
            check=True,
            capture_output=True,
        )
        total = time.perf_counter() - start
        summary = json.loads((out / "summary.json").read_text())
    return {
        "evaluations": summary["evaluations"],
        "wall_seconds": summary["wall_seconds"],
        "evals_per_s": summary["evaluations"] / summary["wall_seconds"],
        "command_seconds": total,
        "startup_finish_seconds": total - summary["wall_seconds"],
    }


def on_ray(table: str, evaluations: int, actors: int) -> dict[str, Any]:
    """:func:`run_experiment` on a fresh local Ray instance (as ``natsray run`` starts one), timed
    from the call: actor start-up included, Ray's own start-up (a few seconds) not."""
    import ray

    from natsray.config import config_from_dict
    from natsray.engine.runner import run_experiment

    data = experiment(table, evaluations)
    data["resources"] = {"actors": actors, "cpus_per_actor": 1}
    config = config_from_dict(data)
    ray.init(address="local", num_cpus=max(2, actors), include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            summary = run_experiment(config, Path(tmp) / "run", progress=False)
            wall = time.perf_counter() - start
    finally:
        ray.shutdown()
    return {
        "evaluations": summary.evaluations,
        "wall_seconds": wall,
        "evals_per_s": summary.evaluations / wall,
        "ray_calls": summary.ray_calls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", required=True, help="metric table .npz (natsray export-table)")
    parser.add_argument("--bare", default=str(BARE), help="the reference loop (default: %(default)s)")
    parser.add_argument("--evaluations", type=int, default=100_000)
    parser.add_argument("--actors", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=1, help="run the whole table this many times")
    parser.add_argument(
        "--bare-runs", type=int, default=3, help="plain-loop runs before and after each engine run (median)"
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "throughput.json"))
    args = parser.parse_args()
    if not Path(args.table).is_file():
        parser.error(f"--table: no such file {args.table}")
    bare = load_bare(Path(args.bare))
    numbers = bare.load("cifar10")

    def reference() -> float:
        """The plain loop's rate: the median of ``--bare-runs`` runs (one run of it swings by 30 %+)."""
        rates = [bare.bare_rea(numbers, args.evaluations, 0)[0] for _ in range(args.bare_runs)]
        return statistics.median(rates)

    rows: list[dict[str, Any]] = []
    for repeat in range(1, args.repeats + 1):
        before = reference()
        engine = in_process(args.table, args.evaluations)
        after = reference()
        rows.append({"repeat": repeat, "runner": "in-process", **engine, "bare_evals_per_s": [before, after]})
        for actors in args.actors:
            before = after
            engine = on_ray(args.table, args.evaluations, actors)
            after = reference()
            rows.append(
                {"repeat": repeat, "runner": f"ray x{actors}", **engine, "bare_evals_per_s": [before, after]}
            )
    for row in rows:
        row["ratio"] = row["evals_per_s"] / statistics.mean(row["bare_evals_per_s"])
        target = TARGETS["in-process" if row["runner"] == "in-process" else "ray"]
        row["target"] = target
        row["meets_target"] = row["ratio"] >= target
    head = (
        f"{'runner':<11} {'repeat':>6} {'evals/s':>9} {'bare evals/s':>13} {'ratio':>6} {'target':>7} "
        f"{'wall s':>7}"
    )
    print(f"REA P=10 S=3, cifar10 hp 12, dedup none, {args.evaluations:,} evaluations")
    print(head)
    for row in rows:
        reference_rate = statistics.mean(row["bare_evals_per_s"])
        print(
            f"{row['runner']:<11} {row['repeat']:>6} {row['evals_per_s']:>9,.0f} {reference_rate:>13,.0f} "
            f"{row['ratio']:>6.3f} >={row['target']:<5} {row['wall_seconds']:>7.2f}"
        )
    finishes = [row["startup_finish_seconds"] for row in rows if row["runner"] == "in-process"]
    print(
        "in-process start-up + finish (CSV, plots, summary): "
        + ", ".join(f"{value:.2f}" for value in finishes)
        + " s (target <= 5 s)"
    )
    if args.repeats > 1:
        for runner in dict.fromkeys(row["runner"] for row in rows):
            ratios = [row["ratio"] for row in rows if row["runner"] == runner]
            print(f"{runner}: median ratio {statistics.median(ratios):.3f} (min {min(ratios):.3f})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_after": os.getloadavg(),
    }
    command = "python benchmarks/throughput.py " + " ".join(sys.argv[1:])
    out.write_text(
        json.dumps(
            {"command": command, "evaluations": args.evaluations, "machine": machine, "rows": rows}, indent=1
        )
        + "\n"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
