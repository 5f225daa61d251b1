"""Run-directory reading, per-run outputs (CSV, best arch, plots) and multi-run reports."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from natsray import load_arch
from natsray.experiment.plots import curves
from natsray.experiment.report import aggregate_runs, finalize_run, load_run, report
from natsray.search_space import Arch

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ARCHS = [Arch.from_code(code) for code in (5, 777, 1234, 9999, 15000, 3)]


def record(i: int, value: float | None, **extra: Any) -> dict[str, Any]:
    """A journal record as the runner writes it (``value`` None: a failed evaluation)."""
    arch = ARCHS[i % len(ARCHS)]
    ok = value is not None
    data = {
        "candidate_id": i,
        "arch": arch.to_str(),
        "canonical": arch.canonical().to_str(),
        "nats_index": 100 + i,
        "status": "ok" if ok else "failed",
        "objectives": {"valid_accuracy": value} if ok else {},
        "fitness": [value] if ok else None,
        "metrics": {"test_accuracy@200": value - 1.0} if ok else {},
        "cost_s": 10.0 * (i + 1),
        "wall_s": 0.01,
        "worker": f"node{i % 2}:{1000 + i}",
        "submit_time": 1000.0 + i,
        "start_time": 1000.5 + i,
        "finish_time": 1001.0 + i,
        "parents": [i - 1] if i else [],
        "seed": 42 + i,
        "cached": False,
    }
    data.update(extra)
    return data


def config(seed: int, strategy: str = "regularized_evolution", objective: Any = "valid_accuracy") -> dict:
    return {
        "seed": seed,
        "strategy": {"name": strategy, "population": 10},
        "evaluator": {"type": "table", "dataset": "cifar10-valid", "objective": objective},
        "budget": {"evaluations": 6},
        "output": {"dir": f"runs/seed-{seed}"},
    }


def write_run(
    path: Path, records: list[dict], *, cfg: dict | None = None, summary: dict | None = None, tail: str = ""
) -> Path:
    path.mkdir(parents=True)
    text = "".join(json.dumps(r) + "\n" for r in records) + tail
    (path / "evaluations.jsonl").write_text(text, encoding="utf-8")
    if cfg is not None:
        (path / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    if summary is not None:
        (path / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return path


VALUES = [80.0, None, 85.0, 83.0, 90.0, 88.0]


def test_load_run_skips_torn_last_line_and_tolerates_missing_fields(tmp_path: Path) -> None:
    minimal = {"arch": ARCHS[0].to_str(), "status": "ok", "objectives": {"valid_accuracy": 70.0}}
    run_dir = write_run(tmp_path / "r", [record(0, 80.0), minimal], tail='{"id": 2, "arch": "|nor')
    before = (run_dir / "evaluations.jsonl").read_bytes()
    run = load_run(run_dir)
    assert len(run.records) == 2
    assert run.summary is None and run.config is None
    assert [str(o) for o in run.objectives] == ["valid_accuracy:max"]
    assert (run_dir / "evaluations.jsonl").read_bytes() == before  # a reader never truncates
    finalize_run(run_dir)  # no summary, no config, no times on one record: still works
    with open(run_dir / "evaluations.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(row["objective.valid_accuracy"]) for row in rows] == [80.0, 70.0]
    assert rows[1]["worker"] == "" and rows[1]["candidate_id"] == ""
    assert rows[0]["candidate_id"] == "0" and rows[0]["seed"] == str(
        record(0, 80.0)["seed"]
    )  # ints stay ints


def test_load_run_rejects_corrupt_interior_line_in_one_line(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / "evaluations.jsonl").write_text(json.dumps(record(0, 1.0)) + "\nnot json\n{}\n")
    with pytest.raises(ValueError, match=r"evaluations.jsonl: line 2 is not valid JSON"):
        load_run(run_dir)
    (run_dir / "evaluations.jsonl").write_text("{}\n")
    with pytest.raises(ValueError, match=r"line 1 is not an evaluation record"):
        load_run(run_dir)
    with pytest.raises(ValueError, match=r"no such run directory"):
        load_run(tmp_path / "missing")


def test_best_so_far_curves_exact(tmp_path: Path) -> None:
    records = [record(i, v) for i, v in enumerate(VALUES)]
    records.append(record(6, 99.0, cached=True))  # a cache hit is not an evaluation
    run = load_run(write_run(tmp_path / "r", records, cfg=config(0)))
    data = curves(run)
    assert data["evaluations"].tolist() == [1, 2, 3, 4, 5, 6]
    assert data["best"].tolist() == [80.0, 80.0, 85.0, 85.0, 90.0, 90.0]
    assert data["clock"] == "wall seconds"
    assert data["times"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]  # since the first submit
    # a minimised objective with simulated times that finish out of journal order
    loss = [
        record(i, None, sim_finish=t) if v is None else
        record(i, None, status="ok", objectives={"valid_loss": v}, fitness=[-v], sim_finish=t)
        for i, (v, t) in enumerate([(2.0, 50.0), (None, 5.0), (1.5, 30.0), (1.8, 10.0)])
    ]  # fmt: skip
    run = load_run(write_run(tmp_path / "m", loss, cfg=config(0, objective="valid_loss")))
    data = curves(run)
    assert [str(o) for o in run.objectives] == ["valid_loss:min"]
    assert data["best"].tolist() == [2.0, 2.0, 1.5, 1.5]
    assert data["clock"] == "simulated seconds"
    assert data["times"].tolist() == [5.0, 10.0, 30.0, 50.0]
    assert np.isnan(data["best_by_time"][0]) and data["best_by_time"][1:].tolist() == [1.8, 1.5, 1.5]


def test_finalize_run_writes_csv_best_arch_and_plots(tmp_path: Path) -> None:
    records = [record(i, v) for i, v in enumerate(VALUES)]
    summary = {"best_candidate_id": 4, "objectives": ["valid_accuracy:max"], "evaluations": 6}
    run_dir = write_run(tmp_path / "r", records, cfg=config(3), summary=summary)
    finalize_run(run_dir)
    with open(run_dir / "evaluations.csv", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames[:5] == ["candidate_id", "arch", "canonical", "nats_index", "status"]
    assert "objective.valid_accuracy" in reader.fieldnames and "metric.test_accuracy@200" in reader.fieldnames
    assert [row["status"] for row in rows] == ["ok", "failed", "ok", "ok", "ok", "ok"]
    assert (
        float(rows[4]["objective.valid_accuracy"]) == 90.0
        and float(rows[4]["metric.test_accuracy@200"]) == 89.0
    )
    assert rows[1]["objective.valid_accuracy"] == "" and rows[1]["fitness"] == ""
    assert rows[3]["parents"] == "2" and rows[0]["parents"] == ""
    best = yaml.safe_load((run_dir / "best_arch.yaml").read_text())
    assert load_arch(run_dir / "best_arch.yaml") == ARCHS[4]
    assert best["nats_index"] == 104 and best["dataset"] == "cifar10-valid"
    for name in ("best_so_far.png", "fitness.png"):
        data = (run_dir / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) < 150_000, name
    assert not (run_dir / "pareto_front.png").exists()


def test_finalize_run_multi_objective_draws_pareto_front(tmp_path: Path) -> None:
    points = [(90.0, 1.0), (85.0, 0.5), (80.0, 0.8), (91.0, 1.4), (70.0, 0.2)]
    records = [
        record(i, None, status="ok", objectives={"valid_accuracy": a, "params": p}, fitness=[a, -p])
        for i, (a, p) in enumerate(points)
    ]
    cfg = config(0, strategy="nsga2", objective=["valid_accuracy:max", "params:min"])
    run_dir = write_run(tmp_path / "r", records, cfg=cfg)
    finalize_run(run_dir)
    assert (run_dir / "pareto_front.png").read_bytes().startswith(PNG_MAGIC)
    # no summary: the best record is the lexicographic max of fitness
    assert load_arch(run_dir / "best_arch.yaml") == ARCHS[3]


def seeded_runs(root: Path) -> list[Path]:
    """Three seeds of one config (best 90, 92, 94) and one run of another strategy."""
    dirs = []
    for seed, top in enumerate((90.0, 92.0, 94.0)):
        records = [record(i, v) for i, v in enumerate([top - 5, top, top - 2])]
        summary = {
            "best_candidate_id": 1,
            "best_objectives": {"valid_accuracy": top},
            "best_metrics": {"test_accuracy@200": top - 1, "missing": None},
            "evaluations": 3,
            "failed": 0,
            "simulated_seconds": 100.0 * (seed + 1),
            "wall_seconds": 1.0,
            "objectives": ["valid_accuracy:max"],
            "stop_reason": "budget: evaluations",
        }
        dirs.append(write_run(root / "re" / f"seed-{seed}", records, cfg=config(seed), summary=summary))
    dirs.append(write_run(root / "rand", [record(0, 50.0)], cfg=config(0, strategy="random")))
    return dirs


def test_aggregate_runs_mean_std_across_seeds(tmp_path: Path) -> None:
    dirs = seeded_runs(tmp_path)[:3]
    result = aggregate_runs(dirs, tmp_path / "aggregate.json")
    assert json.loads((tmp_path / "aggregate.json").read_text()) == result
    assert result["seeds"] == [0, 1, 2]
    best = result["metrics"]["best.valid_accuracy"]
    assert best == {"mean": 92.0, "std": 2.0, "min": 90.0, "max": 94.0, "n": 3}
    assert result["metrics"]["best_metric.test_accuracy@200"]["mean"] == 91.0
    assert result["metrics"]["simulated_seconds"]["mean"] == 200.0
    assert result["metrics"]["evaluations"] == {"mean": 3.0, "std": 0.0, "min": 3.0, "max": 3.0, "n": 3}
    assert "best_metric.missing" not in result["metrics"]


def test_report_groups_seeds_and_writes_tables_and_plots(tmp_path: Path, capsys) -> None:
    dirs = seeded_runs(tmp_path)
    out = tmp_path / "cmp"
    result = report(dirs, out)
    assert json.loads((out / "report.json").read_text()) == result
    groups = {group["name"]: group for group in result["groups"]}
    rea, rand = "strategy=regularized_evolution", "strategy=random"  # what differs between the groups
    assert set(groups) == {rea, rand}
    assert len(groups[rea]["runs"]) == 3
    assert groups[rea]["metrics"]["best.valid_accuracy"]["std"] == 2.0
    assert groups[rand]["metrics"]["best.valid_accuracy"]["mean"] == 50.0
    with open(out / "report.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["group"] for row in rows] == [rea] * 3 + [rand]
    assert [float(row["best.valid_accuracy"]) for row in rows] == [90.0, 92.0, 94.0, 50.0]
    for name in ("best_so_far.png", "best_so_far_seeds.png"):
        assert (out / name).read_bytes().startswith(PNG_MAGIC)
    printed = capsys.readouterr().out
    assert f"{rea}: 3 runs" in printed and "94" in printed


def test_report_default_out_dir_and_same_label_different_config(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", [record(0, 1.0)], cfg=config(0))
    other = config(0)
    other["strategy"]["population"] = 20  # same strategy/evaluator label, different config
    b = write_run(tmp_path / "b", [record(0, 2.0)], cfg=other)
    result = report([a, b])
    assert (tmp_path / "report" / "report.json").is_file()
    # named by what differs (before: "regularized_evolution/table" and "regularized_evolution/table #2")
    assert [g["name"] for g in result["groups"]] == ["population=10", "population=20"]
    assert not math.isnan(result["runs"][1]["best.valid_accuracy"])


def test_report_reads_real_engine_runs(tmp_path: Path) -> None:
    from toy_evaluator import make_config

    from natsray.config import BudgetConfig, EngineConfig, dump_config
    from natsray.engine.runner import run_experiment

    dirs, summaries = [], []
    for seed in (1, 2):
        config = make_config(
            engine=EngineConfig(mode="simulated", simulated_workers=2),
            budget=BudgetConfig(evaluations=30),
            seed=seed,
        )
        run_dir = tmp_path / "toy" / f"seed-{seed}"
        run_dir.mkdir(parents=True)
        dump_config(config, run_dir / "config.yaml")
        summary = run_experiment(config, run_dir)
        finalize_run(run_dir)
        journal = (run_dir / "evaluations.jsonl").read_text().splitlines()
        with open(run_dir / "evaluations.csv", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        assert [row["candidate_id"] for row in rows] == [
            str(json.loads(line)["candidate_id"]) for line in journal
        ]
        assert load_arch(run_dir / "best_arch.yaml") == Arch.from_str(summary.best_arch)
        data = curves(load_run(run_dir))
        assert data["clock"] == "simulated seconds"
        assert data["best"][-1] == summary.best_objectives["score"]
        assert data["times"][-1] <= summary.simulated_seconds
        assert (run_dir / "best_so_far.png").is_file() and (run_dir / "fitness.png").is_file()
        dirs.append(run_dir)
        summaries.append(summary)
    aggregate = aggregate_runs(dirs)
    expected = np.mean([s.best_objectives["score"] for s in summaries])
    assert aggregate["metrics"]["best.score"]["mean"] == pytest.approx(expected)
    result = report(dirs, tmp_path / "cmp")
    assert [len(group["runs"]) for group in result["groups"]] == [2]  # seeds of one config


def test_output_plots_false_writes_the_table_but_no_png(tmp_path: Path) -> None:
    from toy_evaluator import ToyConfig

    from natsray.config import (
        BudgetConfig,
        EngineConfig,
        ExperimentConfig,
        OutputConfig,
        dump_config,
    )
    from natsray.engine.runner import run_experiment
    from natsray.experiment.report import finalize_run
    from natsray.strategies.random_search import RandomSearchConfig

    for plots in (True, False):
        run_dir = tmp_path / f"plots-{plots}"
        config = ExperimentConfig(
            strategy=RandomSearchConfig(),
            evaluator=ToyConfig(),
            budget=BudgetConfig(evaluations=12),
            engine=EngineConfig(in_process=True),
            output=OutputConfig(progress=False, plots=plots),
        )
        run_experiment(config, run_dir)
        dump_config(config, run_dir / "config.yaml")
        finalize_run(run_dir)
        assert (run_dir / "evaluations.csv").is_file() and (run_dir / "best_arch.yaml").is_file()
        assert sorted(p.name for p in run_dir.glob("*.png")) == (
            ["best_so_far.png", "fitness.png"] if plots else []
        )


def test_a_stale_summary_gives_way_to_the_journal(tmp_path: Path, capsys) -> None:
    """A run killed after its last checkpoint: its summary counts fewer evaluations than the journal."""
    records = [record(i, v) for i, v in enumerate(VALUES)]
    stale = {"best_candidate_id": 2, "objectives": ["valid_accuracy:max"], "evaluations": 3, "failed": 1}
    stale |= {"best_objectives": {"valid_accuracy": 85.0}, "stop_reason": None}
    run_dir = write_run(tmp_path / "r", records, cfg=config(0), summary=stale)
    run = load_run(run_dir)
    assert run.summary is None  # stale
    result = report([run_dir], tmp_path / "cmp")
    (row,) = result["runs"]
    assert row["evaluations"] == 6 and row["failed"] == 1 and row["stop_reason"] == "unfinished"
    assert row["best.valid_accuracy"] == 90.0 and row["best_arch"] == ARCHS[4].to_str()  # found after it
    fresh = dict(stale, evaluations=6, best_candidate_id=4, best_objectives={"valid_accuracy": 90.0})
    (run_dir / "summary.json").write_text(json.dumps(fresh | {"stop_reason": "budget: evaluations"}))
    assert load_run(run_dir).summary["evaluations"] == 6


def test_report_refuses_a_directory_that_is_not_a_run(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    with pytest.raises(ValueError, match=r"notes: not a run directory \(no evaluations.jsonl"):
        load_run(tmp_path / "notes")


def test_a_bad_cell_in_a_valid_line_is_named_with_file_and_line(tmp_path: Path) -> None:
    records = [{k: v for k, v in record(i, v).items() if k != "canonical"} for i, v in enumerate(VALUES)]
    records[3]["arch"] = "|nor_conv_3x3~0|+|bogus~0|none~1|+|none~0|none~1|none~2|"  # as the engine writes
    run_dir = write_run(tmp_path / "r", records, cfg=config(0))
    with pytest.raises(ValueError, match=r"evaluations.jsonl: line 4: .*bogus"):
        finalize_run(run_dir)


def test_an_empty_journal_writes_a_csv_with_a_header(tmp_path: Path) -> None:
    import pandas as pd

    run_dir = write_run(tmp_path / "r", [], cfg=config(0))
    finalize_run(run_dir)
    frame = pd.read_csv(run_dir / "evaluations.csv")
    assert frame.empty and list(frame.columns) == ["candidate_id", "arch", "canonical", "status"]


def test_cli_report_of_seed_runs_prints_a_mean_std_line(tmp_path: Path, capsys) -> None:
    """README's `natsray report runs/rea-c10/seed-*`: per-run rows, then mean ± std over the seeds."""
    from natsray.cli import main

    dirs = seeded_runs(tmp_path)[:3]
    assert main(["report", *map(str, dirs), "--out", str(tmp_path / "cmp")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert (
        "regularized_evolution/table: 3 runs, mean ± std: valid_accuracy 92 ± 2, test_accuracy@200 91 ± 2"
        in lines
    )


def test_runs_compared_never_average_nats_index_but_give_the_most_frequent_best_cell(
    tmp_path: Path, capsys
) -> None:
    """As a sweep's report does (the same code): a group's most frequent best ``nats_index``, a tie
    going to the better mean report metric; the per-run rows keep each run's own index."""
    from natsray.cli import main

    def run(name: str, seed: int, strategy: str, index: int, test: float, report: bool = True) -> Path:
        summary = {
            "best_candidate_id": 0,
            "best_objectives": {"valid_accuracy": test - 10},
            "best_metrics": {"nats_index": index, **({"test_accuracy@200": test} if report else {})},
            "evaluations": 1,
            "objectives": ["valid_accuracy:max"],
            "stop_reason": "budget: evaluations",
        }
        records = [record(0, test - 10, nats_index=index)]
        return write_run(tmp_path / name, records, cfg=config(seed, strategy), summary=summary)

    dirs = [
        run("hill-0", 0, "random", 9000, 90.0),
        run("hill-1", 1, "random", 20, 95.0),  # a tie of 1 seed each: the better test accuracy wins
        run("rea-0", 0, "regularized_evolution", 7000, 99.0),
        run("rea-1", 1, "regularized_evolution", 300, 91.0),
        run("rea-2", 2, "regularized_evolution", 300, 92.0),  # found by 2 of 3 seeds
    ]
    assert main(["report", *map(str, dirs), "--out", str(tmp_path / "cmp")]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert (
        "strategy=random: 2 runs, mean ± std: valid_accuracy 82.5 ± 3.5, test_accuracy@200 92.5 ± 3.5; "
        "most frequent best nats_index 20 (1 of 2 seeds)" in printed
    )
    assert any(line.endswith("; most frequent best nats_index 300 (2 of 3 seeds)") for line in printed)
    assert not any("nats_index 4" in line or "nats_index 2.5" in line for line in printed)
    result = json.loads((tmp_path / "cmp" / "report.json").read_text())
    metrics = {group["name"]: group["metrics"] for group in result["groups"]}
    assert metrics["strategy=random"]["most frequent best nats_index"] == {"value": 20, "seeds": 1, "of": 2}
    assert all("best_metric.nats_index" not in found for found in metrics.values())
    assert [row["best_metric.nats_index"] for row in result["runs"]] == [9000, 20, 7000, 300, 300]
    aggregated = aggregate_runs(dirs[2:])["metrics"]
    assert aggregated["most frequent best nats_index"] == {"value": 300, "seeds": 2, "of": 3}
    assert "best_metric.nats_index" not in aggregated
    # no report metric (a config without report:): a tie goes to the better best objective
    plain = [
        run("plain-0", 0, "random", 20, 90.0, report=False),
        run("plain-1", 1, "random", 9000, 95.0, report=False),
    ]
    assert aggregate_runs(plain)["metrics"]["most frequent best nats_index"] == {
        "value": 9000,
        "seeds": 1,
        "of": 2,
    }


def test_group_names_say_what_differs_and_leave_out_what_it_implies() -> None:
    """A sweep-like set of configs: a strategy's parameters go with its name, a dataset's budget with the
    dataset; what is left is named, keys shortened while unique (before: ``regularized_evolution/table``,
    ``... #2``, ``#3``...)."""
    from natsray.experiment.group_names import config_settings, group_names

    def config(strategy: dict[str, Any], dataset: str) -> dict[str, Any]:
        budget = {"cifar10": 20000, "cifar100": 40000}[dataset]
        evaluator = {"type": "table", "dataset": dataset, "objective": ["valid_accuracy"]}
        return {
            "seed": 3,
            "strategy": strategy,
            "evaluator": evaluator,
            "budget": {"simulated_seconds": budget},
        }

    strategies = [{"name": "regularized_evolution", "population": p, "sample_size": 3} for p in (10, 20)]
    configs = [config(s, d) for s in [*strategies, {"name": "random"}] for d in ("cifar10", "cifar100")]
    assert group_names([config_settings(c) for c in configs], ["x"] * 6) == [
        "strategy=regularized_evolution, population=10, dataset=cifar10",
        "strategy=regularized_evolution, population=10, dataset=cifar100",
        "strategy=regularized_evolution, population=20, dataset=cifar10",
        "strategy=regularized_evolution, population=20, dataset=cifar100",
        "strategy=random, dataset=cifar10",
        "strategy=random, dataset=cifar100",
    ]
    assert group_names([config_settings(configs[0])] * 2, ["rea/table"] * 2) == ["rea/table", "rea/table #2"]
    # two groups that differ in more than the strategy: each difference is named (a new user's REA with 12
    # evaluations against random with 150 read "REA 78.9 vs random 83.9")
    rea = {**configs[0], "budget": {"evaluations": 12}}
    random = {**configs[4], "budget": {"evaluations": 150}}
    assert group_names([config_settings(rea), config_settings(random)], ["x"] * 2) == [
        "strategy=regularized_evolution, evaluations=12",
        "strategy=random, evaluations=150",
    ]
    params = {**configs[4], "evaluator": {**configs[4]["evaluator"], "objective": ["params"]}}
    assert group_names([config_settings(configs[0]), config_settings(params)], ["x"] * 2) == [
        "strategy=regularized_evolution, objective=[valid_accuracy]",
        "strategy=random, objective=[params]",
    ]
