"""Sweep scaling: the NATS protocol (REA, cifar10, 20,000 simulated s) for N seeds with 1 and all cores.

Runs ``natsray run configs/rea-cifar10.yaml --seeds 0-(N-1)`` as a sweep twice (``output.plots=false``,
as the reproduction sweep: per-run PNGs would dominate), on a fresh local Ray with ``resources.num_cpus=1``
and with all cores, and prints wall time, runs/s and parallel efficiency
``(T1 / Tall) / cores``; writes ``benchmarks/results/sweep_scaling.json``. Run it on a quiet machine::

    python benchmarks/sweep_scaling.py --table nats-tss.npz --seeds 200
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sweep(table: str, seeds: int, cpus: int, out: Path) -> float:
    """Wall seconds of one sweep command (Ray start-up, runs, report included)."""
    command = [
        sys.executable, "-c", "import sys; from natsray.cli import main; sys.exit(main())",
        "run", str(ROOT / "configs" / "rea-cifar10.yaml"),
        "--set", "evaluator={type: table, table: " + table + ", dataset: cifar10, hp: '12', "
        "objective: [valid_accuracy], report: ['test_accuracy@200']}",
        "--set", f"resources.num_cpus={cpus}", "--set", "output.progress=false",
        "--set", "output.plots=false",
        "--seeds", f"0-{seeds - 1}", "--out", str(out), "--no-progress",
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(
        command, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", required=True, help="table from natsray export-table")
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument(
        "--cores", type=int, default=os.cpu_count(), help="'all cores' (default: os.cpu_count())"
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sweep_scaling.json"))
    args = parser.parse_args()
    table = str(Path(args.table).resolve())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for cpus in (1, args.cores):
            wall = sweep(table, args.seeds, cpus, Path(tmp) / f"cpus-{cpus}")
            rows.append({"cpus": cpus, "runs": args.seeds, "wall_s": wall, "runs_per_s": args.seeds / wall})
    efficiency = rows[0]["wall_s"] / rows[1]["wall_s"] / args.cores
    print(f"{'cpus':>5} {'runs':>5} {'wall s':>8} {'runs/s':>8}")
    for row in rows:
        print(f"{row['cpus']:>5} {row['runs']:>5} {row['wall_s']:>8.1f} {row['runs_per_s']:>8.2f}")
    print(f"parallel efficiency with {args.cores} cores: {efficiency:.2f}")
    result = {"rows": rows, "parallel_efficiency": efficiency, "machine": platform.platform(),
              "cpu_count": os.cpu_count(), "command": " ".join(sys.argv)}  # fmt: skip
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
