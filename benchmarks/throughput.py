"""Engine throughput: evaluations/s of a regularized-evolution run in query mode.

For each evaluator (``table``: a ``.npz`` metric table; ``benchmark``: the nats_bench API on
an archive directory) it times, in the same process and run:

* ``bare``: a plain single-process loop doing the same work (ask, evaluate one, tell),
* ``engine in-process``: :func:`run_experiment` with ``engine.in_process`` (journal, dedup
  bookkeeping, checkpoints, no Ray),
* ``engine ray xN``: :func:`run_experiment` on N Ray actors (``async`` mode, default batching).

Every run uses ``search_space.dedup: none`` so all do the same number of evaluations. The
figure is ``evals/s`` and its ratio to ``bare``. Engine wall time includes starting the
actors. Writes ``benchmarks/results/throughput.json``.

Usage::

    python benchmarks/throughput.py --table TABLE.npz --archive ARCHIVE_DIR [--evaluations 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import ray

from natsray.engine.runner import run_experiment
from natsray.evaluators import evaluator_class
from natsray.evaluators.benchmark import BenchmarkConfig
from natsray.evaluators.table import TableConfig
from natsray.experiment.config import (
    BudgetConfig,
    EngineConfig,
    ExperimentConfig,
    OutputConfig,
    ResourcesConfig,
    SearchSpaceConfig,
)
from natsray.records import Objective, fitness_of
from natsray.strategies.regularized_evolution import RegularizedEvolution, RegularizedEvolutionConfig

OBJECTIVE = ("valid_accuracy",)
STRATEGY = RegularizedEvolutionConfig(population=10, sample_size=3)


def bare_loop(evaluator_config: Any, evaluations: int, seed: int) -> float:
    """Evaluations/s of ask -> evaluate one -> tell in one process, nothing else."""
    cls = evaluator_class(evaluator_config.type)
    evaluator = cls(evaluator_config, cls.prepare_shared(evaluator_config))
    evaluator.setup()
    objectives = [Objective.parse(spec) for spec in evaluator_config.objective]
    strategy = RegularizedEvolution(STRATEGY, seed=seed)
    start = time.perf_counter()
    for _ in range(evaluations):
        candidate = strategy.ask()
        (result,) = evaluator.evaluate([candidate])
        strategy.tell(candidate, fitness_of(result, objectives))
    return evaluations / (time.perf_counter() - start)


def engine_run(evaluator_config: Any, evaluations: int, seed: int, actors: int | None) -> dict[str, Any]:
    """One :func:`run_experiment`; ``actors`` None runs in-process."""
    config = ExperimentConfig(
        strategy=STRATEGY,
        evaluator=evaluator_config,
        budget=BudgetConfig(evaluations=evaluations),
        seed=seed,
        search_space=SearchSpaceConfig(dedup="none"),
        resources=ResourcesConfig(actors=actors or 1, cpus_per_actor=1.0),
        engine=EngineConfig(in_process=actors is None),
        output=OutputConfig(checkpoint_every=500, progress=False),
    )
    with tempfile.TemporaryDirectory() as run_dir:
        summary = run_experiment(config, run_dir)
    return {
        "evaluations": summary.evaluations,
        "wall_seconds": summary.wall_seconds,
        "evals_per_s": summary.evaluations / summary.wall_seconds,
        "ray_calls": summary.ray_calls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", help="metric table .npz (natsray export-table)")
    parser.add_argument("--archive", help="NATS-Bench archive directory")
    parser.add_argument("--evaluations", type=int, default=3000)
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "throughput.json"))
    args = parser.parse_args()
    evaluators = {}
    if args.table:
        evaluators["table"] = TableConfig(table=args.table, objective=OBJECTIVE)
    if args.archive:
        evaluators["benchmark"] = BenchmarkConfig(archive=args.archive, objective=OBJECTIVE)
    if not evaluators:
        parser.error("give --table and/or --archive")
    ray.init(address="local", num_cpus=max(args.actors), include_dashboard=False)
    rows = []
    for name, evaluator_config in evaluators.items():
        bare = bare_loop(evaluator_config, args.evaluations, args.seed)
        rows.append({"evaluator": name, "runner": "bare loop", "evals_per_s": bare, "ratio": 1.0})
        for actors in [None, *args.actors]:
            row = engine_run(evaluator_config, args.evaluations, args.seed, actors)
            runner = "engine in-process" if actors is None else f"engine ray x{actors}"
            rows.append({"evaluator": name, "runner": runner, **row, "ratio": row["evals_per_s"] / bare})
    ray.shutdown()
    print(f"{'evaluator':<10} {'runner':<18} {'evals/s':>10} {'ratio':>7} {'ray calls':>9}")
    for row in rows:
        calls = row.get("ray_calls", "")
        rate, ratio = row["evals_per_s"], row["ratio"]
        print(f"{row['evaluator']:<10} {row['runner']:<18} {rate:>10.0f} {ratio:>7.2f} {calls:>9}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    out.write_text(
        json.dumps({"evaluations": args.evaluations, "machine": machine, "rows": rows}, indent=1) + "\n"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
