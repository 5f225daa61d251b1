"""``benchmarks/sample_efficiency.py --merge`` keeps the other strategies' runs (issue 10)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmark_scripts import load_benchmark

ROOT = Path(__file__).resolve().parents[1]


def _script():
    return load_benchmark("sample_efficiency")


def _run(strategy: str, dataset: str, seed: int, hits: int) -> dict:
    return {
        "strategy": strategy,
        "dataset": dataset,
        "seed": seed,
        "evaluations_to_best": hits,
        "run_evaluations": hits,
        "run_seconds_per_evaluation": 0.001,
        "test_accuracy@200": 90.0 + seed,
        "nats_evaluations": 150,
    }


def test_merge_keeps_other_strategies_and_replaces_the_rerun_one(tmp_path: Path, capsys) -> None:
    script = _script()
    datasets = list(script.DATASETS)
    out = tmp_path / "se.json"
    old_runs = [
        _run(s, d, seed, 10)
        for s in ("local_search", "predictor_evolution")
        for d in datasets
        for seed in (0, 1)
    ]
    first = (
        "python benchmarks/sample_efficiency.py --table t.npz --seeds 2 --cap 50 --strategies x --workers 2"
    )
    out.write_text(json.dumps({"command": first, "elapsed_s": 9.0, "runs": old_runs}))
    args = argparse.Namespace(
        table="t.npz",
        seeds=2,
        cap=50,
        strategies="predictor_evolution",
        timing_seeds=0,
        workers=1,
        out=str(out),
    )
    args.kept = script.kept_runs(args, ["predictor_evolution"])
    new_runs = [_run("predictor_evolution", d, seed, 20 + seed) for d in datasets for seed in (0, 1)]
    cells = {d: (7, 1.0, 2.0) for d in datasets}
    script.write(args, cells, ["predictor_evolution"], new_runs, 1.0, quiet=True)
    written = json.loads(out.read_text())
    assert written["kept_command"] == first and written["kept_strategies"] == ["local_search"]
    assert written["command"].endswith("--merge") and written["complete"]
    rows = {(r["strategy"], r["dataset"]): r for r in written["rows"]}
    assert rows["local_search", "cifar10"]["evaluations_to_best_median"] == 10
    assert rows["predictor_evolution", "cifar10"]["evaluations_to_best_median"] == 20.5  # the new runs only
    assert len(written["runs"]) == 4 * len(datasets)
    args.seeds = 3
    with pytest.raises(SystemExit, match="--seeds 3"):
        script.kept_runs(args, ["predictor_evolution"])
