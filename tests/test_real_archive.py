"""Benchmark and table evaluators on real NATS-Bench data from ``../shared/nats-tss`` (skipped if absent).

* ``real-records/`` is itself a fast-mode archive: the official meta plus the complete
  official records 0, 11, 284 (all seeds, all epochs).
* The full generated archive (``make_archive.py``, ~2 minutes) is built once per session in a
  temporary directory; set ``NATSRAY_TEST_ARCHIVE`` to an already built one to skip that.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import nats_bench
import numpy as np
import pytest
from archive_factory import nats_bench_metrics

from natsray.evaluators.benchmark import BenchmarkConfig, BenchmarkEvaluator
from natsray.evaluators.metrics import METRICS
from natsray.evaluators.table import TableConfig, TableEvaluator, export_table, load_table
from natsray.records import Candidate
from natsray.search_space import NUM_ARCHS, Arch

SHARED = Path(__file__).resolve().parents[2] / "shared" / "nats-tss"
REAL = SHARED / "real-records"
REAL_INDICES = (0, 11, 284)
DATASETS = ("cifar10", "cifar100", "ImageNet16-120")
ALL = (*METRICS, *(f"{name}@200" for name in METRICS), *(f"{name}@12" for name in METRICS))

pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason="../shared/nats-tss is absent")


@pytest.fixture(scope="module")
def real_api():
    return nats_bench.create(str(REAL), "tss", fast_mode=True, verbose=False)


@pytest.fixture(scope="module")
def real_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_table(REAL, tmp_path_factory.mktemp("real") / "real.npz", progress=False)


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = os.environ.get("NATSRAY_TEST_ARCHIVE")
    out = tmp_path_factory.mktemp("generated")
    if root is None:
        root = out / "archive"
        subprocess.run(
            [sys.executable, str(SHARED / "make_archive.py"), str(root)], check=True, capture_output=True
        )
    return Path(root), export_table(root, out / "table.npz", progress=False)


def evaluators(archive: Path, table: Path, **fields) -> tuple[BenchmarkEvaluator, TableEvaluator]:
    benchmark = BenchmarkEvaluator(BenchmarkConfig(archive=str(archive), **fields))
    table_evaluator = TableEvaluator(TableConfig(table=str(table), **fields))
    benchmark.setup()
    table_evaluator.setup()
    return benchmark, table_evaluator


def cell(api, index: int, seed: int = 0) -> Candidate:
    return Candidate(index, Arch.from_str(api.meta_archs[index]), seed=seed)


def comparable(result):
    return result.status, result.objectives, result.metrics, result.cost_s


@pytest.mark.parametrize("hp", ["12", "200"])
@pytest.mark.parametrize("dataset", DATASETS)
def test_official_records_serve_nats_bench_numbers(real_api, real_table, dataset: str, hp: str) -> None:
    benchmark, table = evaluators(REAL, real_table, dataset=dataset, hp=hp, report=ALL)
    valid_run = "cifar10-valid" if dataset == "cifar10" else dataset
    for index in REAL_INDICES:
        result = benchmark.evaluate([cell(real_api, index)])[0]
        assert result.ok, result.error
        assert comparable(table.evaluate([cell(real_api, index)])[0]) == comparable(result)
        for h in ("12", "200"):
            expected = nats_bench_metrics(real_api, index, dataset, h)
            # params / FLOPs / latency: one source, the hp-12 record, whatever the schedule
            hp12 = nats_bench_metrics(real_api, index, dataset, "12")
            expected.update({name: hp12[name] for name in ("params", "flops", "latency")})
            valid = real_api.get_more_info(index, valid_run, hp=h, is_random=False)
            assert {name: result.metrics[f"{name}@{h}"] for name in METRICS} == expected
            if h == hp:
                assert result.cost_s == valid["train-all-time"] + valid["valid-per-time"]
                assert result.objectives["valid_accuracy"] == expected["valid_accuracy"]


def test_official_records_random_mode_reads_real_trials(real_api, real_table) -> None:
    benchmark, table = evaluators(REAL, real_table, hp="200", seed_mode="random", report=("test_accuracy",))
    trials = {s: real_api.get_more_info(11, "cifar10-valid", hp="200", is_random=s) for s in (777, 888, 999)}
    seen = set()
    for seed in range(30):
        result = benchmark.evaluate([cell(real_api, 11, seed)])[0]
        assert comparable(table.evaluate([cell(real_api, 11, seed)])[0]) == comparable(result)
        (trial,) = [
            s for s, info in trials.items() if info["valid-accuracy"] == result.objectives["valid_accuracy"]
        ]
        assert result.cost_s == trials[trial]["train-all-time"] + trials[trial]["valid-per-time"]
        seen.add(trial)
    assert seen == {777, 888, 999}


@pytest.mark.slow
def test_generated_archive_full_export(generated) -> None:
    root, path = generated
    table = load_table(path)
    assert table["has_record"].all() and sorted(table["nats_index"].tolist()) == list(range(NUM_ARCHS))
    api = nats_bench.create(str(root), "tss", fast_mode=True, verbose=False)
    rows = [Arch.from_str(arch).code for arch in api.meta_archs]
    hp12 = table["cifar10-valid/12/x-valid/accuracy"][rows, 0]
    best = int(np.argmax(table["cifar10-valid/200/x-valid/accuracy"][rows, 0]))
    assert best == 6111 and not np.isnan(hp12).any()  # README: best cifar10-valid x-valid at hp 200 is 6111
    sample = random.Random(0).sample(range(NUM_ARCHS), 150)
    for dataset in DATASETS:
        for hp in ("12", "200"):
            objective = ("valid_accuracy",) if hp == "12" or dataset == "cifar10" else ("test_accuracy",)
            benchmark, table_evaluator = evaluators(
                root,
                path,
                dataset=dataset,
                hp=hp,
                objective=objective,
                report=("test_accuracy@200", "train_time"),
            )
            batch = [cell(api, index, seed) for seed, index in enumerate(sample)]
            expected = benchmark.evaluate(batch)
            assert all(r.ok for r in expected)
            assert [comparable(r) for r in table_evaluator.evaluate(batch)] == [
                comparable(r) for r in expected
            ]


def generated_metrics(dataset: str) -> tuple[str, ...]:
    """What the generated archive holds (its README's table), as natsray metric names."""
    names = ["valid_accuracy@12", "test_accuracy@12", "test_accuracy@200", "params", "flops"]
    names += [f"{name}@{hp}" for name in ("train_time", "epoch_time") for hp in ("12", "200")]
    if dataset == "cifar10":
        names += ["valid_accuracy@200", "valid_loss@200", "train_accuracy@200", "train_loss@200"]
    return tuple(names)


@pytest.mark.slow
def test_generated_archive_matches_real_records(generated, real_api, real_table) -> None:
    path = generated[1]
    for dataset in DATASETS:
        report = generated_metrics(dataset)
        for hp in ("12", "200"):
            objective = ("valid_accuracy",) if hp == "12" or dataset == "cifar10" else ("test_accuracy",)
            fields = {"dataset": dataset, "hp": hp, "objective": objective, "report": report}
            real = TableEvaluator(TableConfig(table=str(real_table), **fields))
            ours = TableEvaluator(TableConfig(table=str(path), **fields))
            for index in REAL_INDICES:
                want = real.evaluate([cell(real_api, index)])[0]
                got = ours.evaluate([cell(real_api, index)])[0]
                assert got.ok and want.ok and set(got.metrics) == set(want.metrics)
                for name in report:  # accuracies to 1e-10, losses and times to ~1e-9 (README)
                    assert got.metrics[name] == pytest.approx(want.metrics[name], rel=1e-8), (
                        dataset,
                        index,
                        name,
                    )
                for name in objective:
                    assert got.objectives[name] == pytest.approx(want.objectives[name], rel=1e-10)
                if hp == "12" or dataset == "cifar10":  # both sides charge the x-valid pass
                    assert got.cost_s == pytest.approx(want.cost_s, rel=1e-8)
