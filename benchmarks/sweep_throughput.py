"""Sweep throughput: a 300-run NATS-protocol sweep against the plain REA loop, measured side by side.

The sweep is ``configs/sweeps/nats-bench-rea-random.yaml`` (REA and random search, 3 datasets, NATS-Bench's
simulated-time budgets) with ``--seeds 0-(N-1)`` (50 seeds: 300 runs), on the compact table and, with
``--archive``, on the archive (``type: benchmark``), each three ways: ``1`` (``--parallel 1``: in the
driver, no Ray), ``default`` (what ``natsray run`` does when not told: on Linux, workers forked from the
driver, one per core; elsewhere the runs start in the driver and a local Ray is started inside
``run_sweep`` only if the runs left would pay for its start-up) and ``all`` (a local Ray started first and
timed apart, all cores). Each sweep runs in a fresh Python process (as the command would; natsray
imported from bytecode compiled first, as an installed natsray is: ``child_env``) that times its phases:
planning, Ray's start-up (``all`` only), ``run_sweep`` and the report (its figures drawn by the plot
process started before the runs, as ``natsray run`` does). The
archive's compact table is exported first into an empty cache directory (``NATSRAY_CACHE_DIR``), timed
on its own: the first archive sweep costs that export once, later ones read the cache.

The reference is ``../shared/bench/bare_rea.py``'s loop (REA P=10 S=3, one dict look-up per evaluation),
run in this process before and after each sweep (median of ``--bare-runs`` runs each side). Ratios:

* ``runs``: the sweep's evaluations / ``run_sweep``'s wall seconds (Ray's start-up and shutdown, timed
  apart as ``ray s``, excluded), over the bare loop's evaluations/s;
* ``command``: the same over the whole child process (Python start, imports, plan, Ray start-up,
  runs, Ray's shutdown, report).

Prints a table and writes ``benchmarks/results/sweep_throughput.json``::

    python benchmarks/sweep_throughput.py --table nats-tss.npz --archive DIR [--seeds 50]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BARE = ROOT.parent / "shared" / "bench" / "bare_rea.py"
CONFIG = ROOT / "configs" / "sweeps" / "nats-bench-rea-random.yaml"
sys.path.insert(0, str(ROOT / "benchmarks"))

from benchmark_json import write_results  # noqa: E402
from throughput import load_bare  # noqa: E402  (the plain loop, loaded as throughput.py does)
from timed_command import run_timed  # noqa: E402

CHILD = r"""
import json, sys, time
start = time.perf_counter()
from pathlib import Path
from natsray.config import read_yaml
from natsray.study.grid import plan_runs, sweep_from_config, write_plan
from natsray.study.report import sweep_report
from natsray.study.sweep import run_sweep
config, out, seeds, parallel = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
sets = json.loads(sys.argv[5])
imported = time.perf_counter()
plan = sweep_from_config(read_yaml(Path(config)), sets, (), seeds, config)
runs = plan_runs(plan, out)
write_plan(plan, out)
planned = time.perf_counter()
from natsray.study.plot_process import PlotProcess
plotter = PlotProcess.start()  # as natsray run does: matplotlib imported on a core the runs leave free
if parallel == "all":  # Ray started here, timed on its own; run_sweep uses it
    from natsray.engine.cluster import connect_ray
    connect_ray(runs[0].config, None)
started = time.perf_counter()
# "default": natsray's own choice (forked workers on Linux; else the driver, and Ray if the runs pay for it)
chosen = None if parallel in ("all", "default") else int(parallel)
outcome = run_sweep(runs, out, parallel=chosen, progress=False,
                    on_cores_free=None if plotter is None else plotter.preload)
swept = time.perf_counter()
if parallel == "all":  # as natsray run stops the Ray it started, timed apart too
    import ray
    ray.shutdown()
stopped = time.perf_counter()
import contextlib, io
with contextlib.redirect_stdout(io.StringIO()):
    sweep_report(out, plotter=plotter)
if plotter is not None:
    plotter.close()
reported = time.perf_counter()
print(json.dumps({
    "runs": len(runs), "failed": len(outcome.failed),
    "evaluations": sum(r.evaluations or 0 for r in outcome.runs),
    "runs_on_ray": sum(r.node is not None for r in outcome.runs),
    "import_s": imported - start, "plan_s": planned - imported, "ray_start_s": started - planned,
    "runs_s": swept - started, "ray_stop_s": stopped - swept, "report_s": reported - stopped,
}))
"""


def bare_rate(bare: Any, table: dict, runs: int) -> float:
    """Median evaluations/s of ``runs`` runs of the plain loop (100,000 evaluations each)."""
    return statistics.median(bare.bare_rea(table, 100_000, seed)[0] for seed in range(runs))


def child(sets: list[str], seeds: int | str, parallel: str, env: dict[str, str]) -> dict[str, Any]:
    """One sweep in a fresh process: its phase timings and the process's whole wall time.

    ``seeds``: seeds per grid point (``0 .. seeds - 1``), or a ``--seeds`` range such as ``"25-49"``.
    """
    seed_range = seeds if isinstance(seeds, str) else f"0-{seeds - 1}"
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable, "-c", CHILD, str(CONFIG), str(Path(tmp) / "sweep"), seed_range,
            parallel, json.dumps(sets),
        ]  # fmt: skip
        done, wall = run_timed(command, "sweep", env=env)
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "command_s": wall}


def child_env() -> dict[str, str]:
    """The sweep children's environment: natsray from this checkout (``PYTHONPATH``), imported from
    bytecode as an installed natsray is (pip compiles it at install), compiled here first.

    Where ``PYTHONDONTWRITEBYTECODE`` is set (as on the development machine), Python would otherwise
    compile each of natsray's modules from source in every child: about 25 ms more before a sweep's
    runs start, a serial part that lowers the parallel efficiency of a 1-2 s sweep by a few points.
    The bytecode goes where Python puts it, ``__pycache__`` beside each module (git ignores it).
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "natsray")], env=env, check=True)
    return env


def export_seconds(archive: str, env: dict[str, str]) -> float:
    """Seconds to export the archive's table into the (empty) cache, in a fresh process."""
    code = "import sys; from natsray.evaluators.table_cache import cached_table; cached_table(sys.argv[1])"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, archive], check=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", required=True, help="table from natsray export-table")
    parser.add_argument("--archive", help="the archive the table came from (archive sweeps)")
    parser.add_argument("--seeds", type=int, default=50, help="seeds per grid point (6 points)")
    parser.add_argument(
        "--parallel", default="1,default,all", help="comma-separated: 1, default (natsray chooses), all (Ray)"
    )
    parser.add_argument("--bare-runs", type=int, default=3)
    parser.add_argument("--bare", default=str(BARE), help="the reference loop (bare_rea.py)")
    parser.add_argument("--set", action="append", default=[], help="extra --set for every sweep")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sweep_throughput.json"))
    args = parser.parse_args()
    if not Path(args.table).is_file():
        parser.exit(2, f"--table: no such file: {args.table}\n")
    if args.archive and not Path(args.archive).is_dir():
        parser.exit(2, f"--archive: no such directory: {args.archive}\n")
    if not Path(args.bare).is_file():
        parser.exit(2, f"--bare: no such file: {args.bare}\n")
    bare = load_bare(Path(args.bare))
    reference = bare.load("cifar10")
    env = child_env()
    sources = {"table": [f"evaluator.table={Path(args.table).resolve()}"]}
    export = None
    with tempfile.TemporaryDirectory() as cache:
        if args.archive:
            env["NATSRAY_CACHE_DIR"] = cache
            export = export_seconds(str(Path(args.archive).resolve()), env)
            evaluator = {"type": "benchmark", "archive": str(Path(args.archive).resolve()), "hp": "12",
                         "objective": ["valid_accuracy"], "report": ["test_accuracy@200"]}  # fmt: skip
            sources["archive"] = [f"evaluator={json.dumps(evaluator)}"]
        rows = []
        for source, sets in sources.items():
            for parallel in args.parallel.split(","):
                before = bare_rate(bare, reference, args.bare_runs)
                timing = child(sets + args.set, args.seeds, parallel, env)
                after = bare_rate(bare, reference, args.bare_runs)
                rate = (before + after) / 2
                rows.append({
                    "source": source, "parallel": parallel, **timing, "bare_evals_per_s": [before, after],
                    "runs_ratio": timing["evaluations"] / timing["runs_s"] / rate,
                    "command_ratio": timing["evaluations"] / timing["command_s"] / rate,
                })  # fmt: skip
    header = f"{'source':<8} {'parallel':>8} {'runs':>5} {'evals':>7} {'ray s':>6} {'runs s':>7} "
    header += f"{'report s':>8} {'command s':>9} {'bare evals/s':>12} {'runs ratio':>10} "
    header += f"{'command ratio':>13}"
    print(header)
    for row in rows:
        print(
            f"{row['source']:<8} {row['parallel']:>8} {row['runs']:>5} {row['evaluations']:>7} "
            f"{row['ray_start_s'] + row['ray_stop_s']:>6.2f} {row['runs_s']:>7.2f} {row['report_s']:>8.2f} "
            f"{row['command_s']:>9.2f} "
            f"{statistics.mean(row['bare_evals_per_s']):>12,.0f} {row['runs_ratio']:>10.3f} "
            f"{row['command_ratio']:>13.3f}"
        )
    if export is not None:
        print(f"archive table export (first read, once): {export:.1f} s")
    load = os.getloadavg()
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    command = "python benchmarks/sweep_throughput.py " + " ".join(sys.argv[1:])
    write_results(
        args.out, command, {"rows": rows, "export_s": export, "seeds": args.seeds, "load_average": load}
    )


if __name__ == "__main__":
    main()
