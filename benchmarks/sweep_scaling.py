"""Sweep scaling: the 300-run NATS-protocol sweep with 1 core and with all cores, parallel efficiency.

Runs ``configs/sweeps/nats-bench-rea-random.yaml`` on a compact table (``--seeds 50``: 2 strategies x 3
datasets x 50 seeds) three times, each in a fresh Python process timed by phase (as in
``benchmarks/sweep_throughput.py``): with ``--parallel 1`` (in the driver: no Ray), as natsray chooses
when not told (``forks``: on Linux, workers forked from the driver, :mod:`natsray.study.forks`) and on
all cores of a local Ray (its start-up and shutdown timed apart: ``ray s``). Parallel efficiency
``(T1 / Tall) / cores`` is given for the runs (``run_sweep``) and for the whole command (Python start,
plan, Ray start-up, runs, report: the serial parts of the scaling model in ``docs/sweeps.md``).

This machine's second core gives a varying share from minute to minute, so ``--repeat N`` (default 3) runs
the pair ``1`` / ``forks`` N times in all, alternating which goes first, and reports each pair's runs
efficiency, their median and the efficiency of the two ways' median runs times (``forks_runs_each``,
``forks_runs_median``, ``forks_runs_of_medians``); the table shows the first set.

The reference row ``plain``: the same sweep split by seeds over ``cores`` plain ``--parallel 1``
processes started together (no Ray, nothing shared; its runs time is the slowest process's). Its
efficiency is what this machine gives this workload on that many cores with no framework in between
(each process also starts its own plot process and pays its own start, so it is a loose bound).

The reference ``machine``: after each pair, what the machine gives any two processes in those seconds. A pure
Python loop that takes about as long as the pair's ``1`` runs runs in one process, then split over
``cores`` forked processes (alternating which goes first too); its efficiency (``machine_each``,
``machine_median``) is the ceiling the sweep's can reach in those minutes, free of natsray's own costs.
Prints a table with the load average and writes ``benchmarks/results/sweep_scaling.json``::

    python benchmarks/sweep_scaling.py --table nats-tss.npz --seeds 50
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from benchmark_json import write_results  # noqa: E402
from sweep_throughput import child, child_env  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", required=True, help="table from natsray export-table")
    parser.add_argument("--seeds", type=int, default=50, help="seeds per grid point (6 points)")
    parser.add_argument("--cores", type=int, default=os.cpu_count(), help="'all cores' (os.cpu_count())")
    parser.add_argument("--set", action="append", default=[], help="extra --set for both sweeps")
    parser.add_argument(
        "--repeat", type=int, default=3, help="pairs of 1-core and forked sweeps in all (median efficiency)"
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sweep_scaling.json"))
    args = parser.parse_args()
    if not Path(args.table).is_file():
        parser.exit(2, f"--table: no such file: {args.table}\n")
    if args.repeat < 1:
        parser.exit(2, f"--repeat: expected a positive number of pairs, got {args.repeat}\n")
    env = child_env()
    sets = [f"evaluator.table={Path(args.table).resolve()}", f"resources.num_cpus={args.cores}", *args.set]
    load = [os.getloadavg()]
    rows = []
    for parallel, way in (("1", "1"), ("default", "forks"), ("all", "ray")):
        row = child(sets, args.seeds, parallel, env)
        cores = 1 if parallel == "1" else args.cores
        rows.append({"way": way, "cores": cores, **row})
        load.append(os.getloadavg())
    rows.append({"way": "plain", "cores": args.cores, **plain_split(sets, args.seeds, args.cores, env)})
    load.append(os.getloadavg())
    one, forks, every, plain = rows
    pairs = [(one, forks)]
    machine = [machine_pair(one["runs_s"], args.cores, first=True)]
    for k in range(1, args.repeat):  # alternating which goes first: neither gets the quieter minutes
        order = ("default", "1") if k % 2 else ("1", "default")
        got = {parallel: child(sets, args.seeds, parallel, env) for parallel in order}
        pairs.append((got["1"], got["default"]))
        machine.append(machine_pair(got["1"]["runs_s"], args.cores, first=k % 2 == 0))
        load.append(os.getloadavg())
    each = [single["runs_s"] / forked["runs_s"] / args.cores for single, forked in pairs]
    machine_each = [single / split / args.cores for single, split in machine]
    efficiency = {
        "forks_runs": one["runs_s"] / forks["runs_s"] / args.cores,
        "forks_command": one["command_s"] / forks["command_s"] / args.cores,
        "runs": one["runs_s"] / every["runs_s"] / args.cores,
        "command": one["command_s"] / every["command_s"] / args.cores,
        "plain_runs": one["runs_s"] / plain["runs_s"] / args.cores,
        "forks_runs_each": each,
        "forks_runs_median": statistics.median(each),
        "forks_runs_of_medians": statistics.median(single["runs_s"] for single, _ in pairs)
        / statistics.median(forked["runs_s"] for _, forked in pairs)
        / args.cores,
        "machine_each": machine_each,
        "machine_median": statistics.median(machine_each),
    }
    print(
        f"{'way':>5} {'cores':>5} {'runs':>5} {'ray s':>6} {'runs s':>7} {'report s':>8} {'command s':>9} "
        f"{'runs/s':>7}"
    )
    for row in rows:
        print(
            f"{row['way']:>5} {row['cores']:>5} {row['runs']:>5} "
            f"{row['ray_start_s'] + row['ray_stop_s']:>6.2f} "
            f"{row['runs_s']:>7.2f} {row['report_s']:>8.2f} {row['command_s']:>9.2f} "
            f"{row['runs'] / row['runs_s']:>7.1f}"
        )
    print(
        f"parallel efficiency with {args.cores} cores: forks (natsray's default) runs "
        f"{efficiency['forks_runs']:.2f}, whole command {efficiency['forks_command']:.2f}; Ray runs "
        f"{efficiency['runs']:.2f}, whole command {efficiency['command']:.2f}; {args.cores} plain processes "
        f"(no Ray): runs {efficiency['plain_runs']:.2f}"
    )
    print(
        f"forks runs efficiency of {len(each)} pairs (1 core / forks, alternating which ran first): "
        f"{', '.join(f'{value:.3f}' for value in each)}; median {efficiency['forks_runs_median']:.3f}; "
        f"of the median times {efficiency['forks_runs_of_medians']:.3f}"
    )
    print(
        f"the machine's own efficiency after each pair (a pure Python loop as long as the pair's 1-core runs "
        f"in 1 process, then split over {args.cores} forked ones): "
        f"{', '.join(f'{value:.3f}' for value in machine_each)}; median {efficiency['machine_median']:.3f}"
    )
    print("load average (1, 5, 15 min) before / after each sweep: " + "; ".join(
        " ".join(f"{value:.2f}" for value in sample) for sample in load
    ))  # fmt: skip
    command = "python benchmarks/sweep_scaling.py " + " ".join(sys.argv[1:])
    pair_rows = [
        {
            "one_runs_s": single["runs_s"],
            "forks_runs_s": forked["runs_s"],
            "machine_one_s": a,
            "machine_split_s": b,
        }
        for (single, forked), (a, b) in zip(pairs, machine, strict=True)
    ]
    write_results(
        args.out,
        command,
        {"rows": rows, "pairs": pair_rows, "parallel_efficiency": efficiency, "load_average": load},
    )


def _loop(n: int) -> int:
    total = 0
    for i in range(n):
        total += i
    return total


def machine_pair(seconds: float, cores: int, *, first: bool) -> tuple[float, float]:
    """The machine's own scaling now: a pure Python loop of about ``seconds`` (at least 0.05 s) in this
    process, and the same loop split over ``cores`` processes forked together (``first``: the single one
    runs first); their wall seconds ``(one, split)``. Not on a system without ``os.fork``: ``(nan, nan)``."""
    if not hasattr(os, "fork"):
        return float("nan"), float("nan")
    start = time.perf_counter()
    _loop(200_000)
    n = max(int(200_000 * max(seconds, 0.05) / (time.perf_counter() - start)), cores)

    def one() -> float:
        start = time.perf_counter()
        _loop(n)
        return time.perf_counter() - start

    def split() -> float:
        start = time.perf_counter()
        children = []
        for _ in range(cores):
            pid = os.fork()
            if pid == 0:  # the child: its share, then out without the parent's handlers (even on Ctrl-C)
                try:
                    _loop(n // cores)
                finally:
                    os._exit(0)
            children.append(pid)
        for pid in children:
            os.waitpid(pid, 0)
        return time.perf_counter() - start

    if first:
        single = one()
        return single, split()
    parts = split()
    return one(), parts


def plain_split(sets: list[str], seeds: int, cores: int, env: dict[str, str]) -> dict[str, Any]:
    """The sweep's seeds split over ``cores`` ``--parallel 1`` processes run together: the summed
    counts, and each phase's time as the slowest process's."""
    bounds = [round(seeds * k / cores) for k in range(cores + 1)]
    ranges = [f"{lo}-{hi - 1}" for lo, hi in itertools.pairwise(bounds) if hi > lo]
    with ThreadPoolExecutor(len(ranges)) as pool:
        parts = list(pool.map(lambda seed_range: child(sets, seed_range, "1", env), ranges))
    return {
        key: (max if key.endswith("_s") else sum)(part[key] for part in parts)
        for key in parts[0]
        if isinstance(parts[0][key], int | float)
    }


if __name__ == "__main__":
    main()
