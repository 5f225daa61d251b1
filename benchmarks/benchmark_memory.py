"""Resident memory of one evaluator process over a full sweep of the 15,625 NATS-TSS cells.

Measures, each in a fresh Python process: (a) a bare nats_bench API (fast mode) queried for
every cell, (b) :class:`BenchmarkEvaluator`, (c) :class:`TableEvaluator`. Prints a table and
writes ``benchmarks/results/memory.json``.

    python benchmarks/benchmark_memory.py --archive /tmp/nats-archive --make-archive

``--make-archive`` builds the archive with ``../shared/nats-tss/make_archive.py`` when the
directory does not exist yet; ``--table`` reuses an exported table (else one is exported
to a temporary file and its export time and size are reported too).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MAKE_ARCHIVE = ROOT.parent / "shared" / "nats-tss" / "make_archive.py"
MODES = ("nats_bench", "benchmark", "table")
REPORT = ("test_accuracy@200", "train_time", "params")


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MiB."""
    values = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def sweep(mode: str, archive: str, table: str, limit: int | None) -> dict[str, Any]:
    """Query every cell once in this process; memory before (after setup) and after."""
    from natsray.records import Candidate
    from natsray.search_space import Arch

    start = time.perf_counter()
    if mode == "nats_bench":
        import nats_bench

        api = nats_bench.create(archive, "tss", fast_mode=True, verbose=False)
        archs = list(api.meta_archs)
    elif mode == "benchmark":
        from natsray.evaluators.benchmark import BenchmarkConfig, BenchmarkEvaluator

        evaluator = BenchmarkEvaluator(BenchmarkConfig(archive=archive, report=REPORT))
        evaluator.setup()
        archs = list(evaluator._api.meta_archs)
    else:
        from natsray.evaluators.table import TableConfig, TableEvaluator

        evaluator = TableEvaluator(TableConfig(table=table, report=REPORT))
        evaluator.setup()
        archs = [Arch.from_code(code).to_str() for code in range(15625)]
    archs = archs[:limit]
    setup_s = time.perf_counter() - start
    before, _ = rss_mb()
    start = time.perf_counter()
    failed = 0
    for index, arch in enumerate(archs):
        if mode == "nats_bench":
            api.get_more_info(index, "cifar10-valid", hp="12", is_random=False)
        else:
            failed += not evaluator.evaluate([Candidate(index, Arch.from_str(arch))])[0].ok
    sweep_s = time.perf_counter() - start
    after, peak = rss_mb()
    return {
        "mode": mode,
        "cells": len(archs),
        "failed": failed,
        "setup_s": round(setup_s, 2),
        "sweep_s": round(sweep_s, 2),
        "rss_before_mb": round(before, 1),
        "rss_after_mb": round(after, 1),
        "rss_peak_mb": round(peak, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", required=True, help="NATS-Bench TSS archive directory")
    parser.add_argument("--make-archive", action="store_true", help="build --archive if it does not exist")
    parser.add_argument("--table", help="an exported table (default: export one to a temporary file)")
    parser.add_argument("--limit", type=int, help="sweep only the first N cells")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "memory.json"))
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(sweep(args.child, args.archive, args.table, args.limit)))
        return

    archive = Path(args.archive)
    if not archive.is_dir():
        if not args.make_archive:
            parser.error(f"--archive {archive}: no such directory (add --make-archive to build it)")
        print(f"building {archive} with {MAKE_ARCHIVE} ...", flush=True)
        subprocess.run([sys.executable, str(MAKE_ARCHIVE), str(archive)], check=True)
    results: dict[str, Any] = {"archive": str(archive), "python": sys.version.split()[0], "runs": []}
    with tempfile.TemporaryDirectory() as scratch:
        table = args.table
        if table is None:
            from natsray.evaluators.table import export_table

            start = time.perf_counter()
            table = str(export_table(archive, Path(scratch) / "table.npz", progress=False))
            results["export_s"] = round(time.perf_counter() - start, 1)
            results["table_mb"] = round(Path(table).stat().st_size / 2**20, 2)
        for mode in MODES:
            command = [sys.executable, __file__, "--child", mode, "--archive", str(archive), "--table", table]
            if args.limit:
                command += ["--limit", str(args.limit)]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results["runs"].append(json.loads(output.strip().splitlines()[-1]))
    print(f"{'mode':<12}{'cells':>7}{'setup s':>9}{'sweep s':>9}{'RSS before MB':>15}{'RSS after MB':>14}")
    for run in results["runs"]:
        print(
            f"{run['mode']:<12}{run['cells']:>7}{run['setup_s']:>9}{run['sweep_s']:>9}"
            f"{run['rss_before_mb']:>15}{run['rss_after_mb']:>14}"
        )
    if "export_s" in results:
        print(f"export-table: {results['export_s']} s, {results['table_mb']} MB")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
