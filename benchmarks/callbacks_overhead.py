"""What a callback costs a query-mode run: the same in-process search without one, with a no-op one, and
with the TensorBoard and MLflow loggers, measured side by side.

Protocol: REA P=10 S=3, table evaluator (cifar10, hp 12, objective ``valid_accuracy``, report
``test_accuracy@200``: two logged values per evaluation), ``dedup: none``, ``engine.in_process``,
``--evaluations`` evaluations (default 20,000), seed 0. Each repeat runs every variant once in turn;
a variant's ratio is its wall seconds over the no-callback run of the same repeat (noise on a shared
machine hits both alike). The wall seconds are :func:`run_experiment`'s (imports and the MLflow store's
creation, done before, excluded); the loggers write to a temporary directory (MLflow: a
``sqlite:///`` store, its default kind). A logger whose extra is not installed is skipped.

Prints a table and writes ``benchmarks/results/callbacks_overhead.json``.

Usage::

    python benchmarks/callbacks_overhead.py --table TABLE.npz [--evaluations 20000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("none", "no-op callback", "tensorboard", "mlflow")
EXTRA = {"tensorboard": "tensorboard", "mlflow": "mlflow"}


def experiment(table: str, evaluations: int) -> Any:
    from natsray.config import config_from_dict

    return config_from_dict(
        {
            "seed": 0,
            "search_space": {"dedup": "none"},
            "strategy": {"name": "regularized_evolution", "population": 10, "sample_size": 3},
            "evaluator": {
                "type": "table",
                "table": table,
                "dataset": "cifar10",
                "hp": "12",
                "objective": ["valid_accuracy"],
                "report": ["test_accuracy@200"],
            },
            "budget": {"evaluations": evaluations},
            # fail_fast 0: a table that lacks cells (a partial archive's) still runs its whole budget
            "engine": {"in_process": True, "fail_fast": 0},
            "output": {"progress": False, "checkpoint_every": 10**9, "checkpoint_seconds": 3600},
        }
    )


def callbacks(variant: str, store: Path) -> list[Any]:
    from natsray.callbacks import Callback

    if variant == "none":
        return []
    if variant == "no-op callback":
        return [Callback()]
    if variant == "tensorboard":
        from natsray.callbacks.tensorboard import TensorBoardLogger

        return [TensorBoardLogger()]
    from natsray.callbacks.mlflow import MLflowLogger

    uri = f"sqlite:///{store / 'mlflow.db'}"
    return [MLflowLogger(tracking_uri=uri, artifact_location=str(store / "artifacts"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", required=True, help="metric table .npz (natsray export-table)")
    parser.add_argument("--evaluations", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "callbacks_overhead.json"))
    args = parser.parse_args()

    from natsray.engine.runner import run_experiment

    variants = [v for v in VARIANTS if v not in EXTRA or importlib.util.find_spec(EXTRA[v]) is not None]
    config = experiment(str(Path(args.table).resolve()), args.evaluations)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp)
        if "mlflow" in variants:  # the store's creation (schema migrations) is not part of a run
            from mlflow.tracking import MlflowClient

            MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}").search_experiments()
        print(f"{'callback':<16} {'repeat':>6} {'wall s':>8} {'evals/s':>9} {'ratio':>6}")
        for repeat in range(1, args.repeats + 1):
            base = None
            for variant in variants:
                hooks = callbacks(variant, store)
                run_dir = store / f"{variant.replace(' ', '-')}-{repeat}"
                start = time.perf_counter()
                summary = run_experiment(config, run_dir, callbacks=hooks)
                wall = time.perf_counter() - start
                base = wall if variant == "none" else base
                row = {
                    "callback": variant,
                    "repeat": repeat,
                    "evaluations": summary.evaluations,
                    "wall_seconds": wall,
                    "evals_per_s": summary.evaluations / wall,
                    "ratio_to_none": wall / base,
                }
                rows.append(row)
                rate, ratio = row["evals_per_s"], row["ratio_to_none"]
                print(f"{variant:<16} {repeat:>6} {wall:>8.2f} {rate:>9.0f} {ratio:>6.2f}")
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} CPUs")
    result = {
        "protocol": "REA P=10 S=3, table cifar10 hp 12, valid_accuracy + test_accuracy@200, in-process",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_average": list(load)},
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
