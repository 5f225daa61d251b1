"""Shipped configs that run on an exported table, as their headers say (a generated full table stands in)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import archive_factory as factory

from natsray.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_nsga2_screen_table_runs_on_an_exported_table(tmp_path: Path, capsys, monkeypatch) -> None:
    """configs/nsga2-screen-table.yaml as its header says, past generation 0 so the screening runs."""
    monkeypatch.chdir(tmp_path)
    factory.write_full_table(tmp_path).rename(tmp_path / "t.npz")
    config = str(ROOT / "configs/nsga2-screen-table.yaml")
    small = ["--set", "evaluator.table=t.npz", "--set", "budget.evaluations=45", "--no-progress"]
    assert main(["validate", config, "--set", "evaluator.table=t.npz"]) == 0, capsys.readouterr().err
    assert main(["run", config, *small]) == 0
    run = tmp_path / "runs/nsga2-screen-table"
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["evaluations"], summary["failed"]) == (45, 0)
    state = json.loads((run / "checkpoint.json").read_text())["strategy"]["strategy"]["population"]
    assert state["screened"] >= 1


def test_predictor_evolution_config_runs_on_a_table_as_its_header_says(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """The table variant in the header of configs/predictor-evolution-cifar10.yaml: evaluator replaced."""
    monkeypatch.chdir(tmp_path)
    factory.write_full_table(tmp_path).rename(tmp_path / "nats-tss.npz")
    header = (ROOT / "configs/predictor-evolution-cifar10.yaml").read_text().splitlines()
    start = next(i for i, line in enumerate(header) if "--set 'evaluator={type: table" in line)
    evaluator = (header[start].split("--set '", 1)[1] + " " + header[start + 1].lstrip("#").strip()).rstrip(
        "'"
    )
    config = str(ROOT / "configs/predictor-evolution-cifar10.yaml")
    small = ["--set", "budget.simulated_seconds=3000", "--no-progress"]
    assert main(["run", config, "--set", evaluator, *small]) == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "runs/predictor-evolution-cifar10/summary.json").read_text())
    assert summary["evaluations"] > 10 and summary["failed"] == 0


def test_train_digits_topk_demo_trains_networks_that_learn(tmp_path: Path, capsys, monkeypatch) -> None:
    """configs/train-digits-topk.yaml (issue 19: its best network ended at 29 % validation accuracy):
    already its first 4 networks reach 80 %+, and its top-k weights are kept."""
    monkeypatch.chdir(tmp_path)
    config = str(ROOT / "configs/train-digits-topk.yaml")
    assert main(["run", config, "--set", "budget.evaluations=4", "--no-progress"]) == 0, (
        capsys.readouterr().err
    )
    run = tmp_path / "runs/train-digits-topk"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["failed"] == 0 and summary["best_objectives"]["valid_accuracy"] >= 80.0
    assert (run / "weights" / "top_k.json").is_file()
