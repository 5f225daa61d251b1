"""BenchmarkEvaluator and the metric vocabulary against a small archive with known numbers."""

from __future__ import annotations

import bz2
import pickle
import sys
from pathlib import Path

import nats_bench
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import archive_factory as factory

from natsray.evaluators import EvaluatorError, evaluator_class
from natsray.evaluators.benchmark import BenchmarkConfig, BenchmarkEvaluator
from natsray.evaluators.metrics import METRICS, parse_metric
from natsray.records import Candidate, Objective, Status
from natsray.search_space import Arch

N_RECORDS = 30
MISSING_VALID = 9  # its hp-200 cifar100 / ImageNet16-120 records lack x-valid
ALL_METRICS = tuple(METRICS)
DATASETS = ("cifar10", "cifar100", "ImageNet16-120")
COSTS = ("params", "flops", "latency")


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("archive")
    archs = factory.write_archive(root, N_RECORDS, missing_valid_200={MISSING_VALID})
    return root, archs


@pytest.fixture(scope="module")
def api(archive: tuple[Path, list[str]]):
    return nats_bench.create(str(archive[0]), "tss", fast_mode=True, verbose=False)


def make(archive: tuple[Path, list[str]], **fields) -> BenchmarkEvaluator:
    evaluator = BenchmarkEvaluator(BenchmarkConfig(archive=str(archive[0]), **fields))
    evaluator.setup()
    return evaluator


def candidate(archs: list[str], index: int, seed: int = 0) -> Candidate:
    return Candidate(index, Arch.from_str(archs[index]), seed=seed)


def valid_run(dataset: str) -> str:
    return "cifar10-valid" if dataset == "cifar10" else dataset


# --- vocabulary and config -------------------------------------------------------------------


def test_parse_metric_names_and_suffixes() -> None:
    assert parse_metric("valid_accuracy") == ("valid_accuracy", None)
    assert parse_metric("test_accuracy@200") == ("test_accuracy", "200")
    assert parse_metric("latency@12") == ("latency", "12")
    assert parse_metric("titan_rtx_256", extra=("titan_rtx_256",)) == ("titan_rtx_256", None)
    for bad in ("valid_acc", "test_accuracy@90", "test_accuracy@", "titan_rtx_256"):
        with pytest.raises(ValueError, match="unknown metric") as info:
            parse_metric(bad)
        assert "valid_accuracy" in str(info.value) and "\n" not in str(info.value)


def test_config_validates_and_normalises_fields() -> None:
    config = BenchmarkConfig(
        archive="x", hp=200, objective=["valid_accuracy", "params:min"], report="latency"
    )
    assert config.hp == "200" and config.report == ("latency",)
    assert config.objectives == (Objective("valid_accuracy", True), Objective("params", False))
    assert evaluator_class("benchmark") is BenchmarkEvaluator and BenchmarkEvaluator.cheap
    for fields, field in [
        ({"dataset": "cifar10-valid"}, "dataset"),
        ({"hp": "90"}, "hp"),
        ({"seed_mode": "best"}, "seed_mode"),
        ({"objective": ("valid_acc",)}, "objective"),
        ({"objective": ("valid_accuracy:up",)}, "objective"),
        ({"objective": ()}, "objective"),
        ({"report": ("test_accuracy@1",)}, "report"),
        ({"archive": ""}, "archive"),
        ({"type": "table"}, "type"),
    ]:
        with pytest.raises(ValueError, match=f"^{field}: "):
            BenchmarkConfig(**{"archive": "x", **fields})
    with pytest.raises(TypeError):
        BenchmarkConfig()  # archive is required


# --- every metric path -----------------------------------------------------------------------


@pytest.mark.parametrize("hp", ["12", "200"])
@pytest.mark.parametrize("dataset", DATASETS)
def test_mean_mode_serves_nats_bench_numbers(archive, api, dataset: str, hp: str) -> None:
    other = "200" if hp == "12" else "12"
    names = (*ALL_METRICS, *(f"{name}@{other}" for name in ALL_METRICS))
    evaluator = make(archive, dataset=dataset, hp=hp, objective=("test_accuracy",), report=names)
    for index in range(N_RECORDS):
        result = evaluator.evaluate([candidate(archive[1], index)])[0]
        assert result.ok, result.error
        assert result.metrics["nats_index"] == index
        assert result.objectives == {"test_accuracy": result.metrics["test_accuracy"]}
        for h, suffix in ((hp, ""), (other, f"@{other}")):
            expected = factory.nats_bench_metrics(api, index, dataset, h)
            # params / FLOPs / latency: one source, the hp-12 record, whatever the schedule
            expected.update(
                {k: v for k, v in factory.nats_bench_metrics(api, index, dataset, "12").items() if k in COSTS}
            )
            got = {name: result.metrics[name + suffix] for name in ALL_METRICS}
            assert got == expected, (index, h)
        if "valid-per-time" in (info := api.get_more_info(index, valid_run(dataset), hp=hp, is_random=False)):
            assert result.cost_s == info["train-all-time"] + info["valid-per-time"]


def test_known_numbers_final_epoch_and_seed_mean(archive) -> None:
    # index 4: even (accuracies at every epoch, the final one must be read), hp 200 has 2 trials
    index, epochs = 4, 200
    seeds = factory.seeds_of(index, "cifar10-valid", "200")
    assert seeds == [777, 888]
    report = ("valid_loss", "test_accuracy", "train_time", "epoch_time", "params", "latency")
    result = make(archive, hp="200", report=report).evaluate([candidate(archive[1], index)])[0]
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    assert result.objectives["valid_accuracy"] == mean(
        [factory.accuracy(index, "cifar10-valid", "200", s, "x-valid", epochs - 1) for s in seeds]
    )
    assert result.metrics["valid_loss"] == mean(
        [factory.loss(index, "cifar10-valid", "200", s, "x-valid", epochs - 1) for s in seeds]
    )
    assert result.metrics["test_accuracy"] == mean(  # cifar10 test = the cifar10 run's ori-test
        [factory.accuracy(index, "cifar10", "200", s, "ori-test", epochs - 1) for s in seeds]
    )
    train = [
        sum(factory.train_epoch_time(index, "cifar10-valid", "200", s, e) for e in range(epochs))
        for s in seeds
    ]
    assert result.metrics["train_time"] == pytest.approx(mean(train), rel=1e-12)
    assert result.metrics["epoch_time"] == pytest.approx(mean(train) / epochs, rel=1e-12)
    valid = [
        sum(factory.eval_epoch_time(index, "cifar10-valid", "200", s, "x-valid", e) for e in range(epochs))
        for s in seeds
    ]
    assert result.cost_s == pytest.approx(mean(train) + mean(valid) / epochs, rel=1e-12)
    assert result.metrics["params"] == factory.params(index, "cifar10")
    assert result.metrics["latency"] == factory.latency(index, "cifar10")


def test_cost_equals_simulate_train_eval(archive, api) -> None:
    for dataset in DATASETS:
        for hp in ("12", "200"):
            evaluator = make(archive, dataset=dataset, hp=hp)
            for index in (2, 5, 8, 11):  # index % 3 == 2: one trial per run, nats_bench's random pick is moot
                result = evaluator.evaluate([candidate(archive[1], index)])[0]
                valid_acc, _, time_cost, _ = api.simulate_train_eval(
                    index, dataset, hp=hp, account_time=False
                )
                assert (result.objectives["valid_accuracy"], result.cost_s) == (valid_acc, time_cost)


def test_random_mode_reads_one_reproducible_trial(archive, api) -> None:
    report = ("test_accuracy", "train_time")
    evaluator = make(archive, hp="200", seed_mode="random", report=report)
    other = make(archive, hp="200", seed_mode="random", report=report)
    index = 3  # three trials on every run at hp 200
    trials = {
        seed: api.get_more_info(index, "cifar10-valid", hp="200", is_random=seed) for seed in (777, 888, 999)
    }
    seen = set()
    for seed in range(40):
        result = evaluator.evaluate([candidate(archive[1], index, seed)])[0]
        again = other.evaluate([candidate(archive[1], index, seed)])[0]
        assert (again.objectives, again.metrics, again.cost_s) == (
            result.objectives,
            result.metrics,
            result.cost_s,
        )
        trial = [
            s for s, info in trials.items() if info["valid-accuracy"] == result.objectives["valid_accuracy"]
        ]
        assert len(trial) == 1  # one real trial, not a mean
        info = trials[trial[0]]
        assert result.cost_s == info["train-all-time"] + info["valid-per-time"]  # the same trial's cost
        assert result.metrics["train_time"] == info["train-all-time"]
        test = api.get_more_info(index, "cifar10", hp="200", is_random=trial[0])
        assert result.metrics["test_accuracy"] == test["test-accuracy"]  # one trial seed per candidate
        seen.add(trial[0])
    assert seen == {777, 888, 999}
    mean = make(archive, hp="200").evaluate([candidate(archive[1], index)])[0]
    assert mean.objectives["valid_accuracy"] not in {info["valid-accuracy"] for info in trials.values()}


# --- absent metrics, missing records, bad archives -------------------------------------------


def test_metric_absent_from_one_record_fails_only_that_candidate(archive) -> None:
    evaluator = make(archive, dataset="cifar100", hp="200", report=("test_accuracy",))
    results = evaluator.evaluate([candidate(archive[1], i) for i in (8, MISSING_VALID, 10)])
    assert [r.status for r in results] == [Status.OK, Status.FAILED, Status.OK]
    error = results[1].error
    assert (
        "valid_accuracy" in error
        and "cifar100" in error
        and "hp 200" in error
        and "not in this archive" in error
    )
    # report-only metrics absent in a record are reported as None; the cost falls back to x-test time
    evaluator = make(
        archive, dataset="cifar100", hp="200", objective=("test_accuracy",), report=("valid_loss",)
    )
    result = evaluator.evaluate([candidate(archive[1], MISSING_VALID)])[0]
    assert result.ok and result.metrics["valid_loss"] is None and result.cost_s > 0


def test_metric_absent_from_archive_is_caught_at_setup(tmp_path: Path) -> None:
    factory.write_archive(tmp_path, 2, missing_valid_200={0, 1}, with_latency=False)
    config = BenchmarkConfig(
        archive=str(tmp_path), dataset="ImageNet16-120", hp="12", report=("valid_accuracy@200",)
    )
    with pytest.raises(
        EvaluatorError, match=r"report 'valid_accuracy@200' \(ImageNet16-120, hp 200\).*record 000000"
    ):
        BenchmarkEvaluator(config).setup()
    config = BenchmarkConfig(archive=str(tmp_path), objective=("latency:min",))
    with pytest.raises(EvaluatorError, match=r"objective 'latency' .*not in archive"):
        BenchmarkEvaluator(config).setup()


def test_missing_record_and_unknown_arch_fail_the_candidate(archive) -> None:
    evaluator = make(archive)
    results = evaluator.evaluate([candidate(archive[1], N_RECORDS), candidate(archive[1], 0)])
    assert not results[0].ok and f"no record for NATS index {N_RECORDS}" in results[0].error
    assert results[1].ok


def test_meta_without_the_arch(tmp_path: Path, archive) -> None:
    shutil_copy = (archive[0] / "000000.pickle.pbz2").read_bytes()
    (tmp_path / "000000.pickle.pbz2").write_bytes(shutil_copy)
    with bz2.open(tmp_path / "meta.pickle.pbz2", "wb") as handle:
        pickle.dump({"meta_archs": archive[1][:1]}, handle)
    evaluator = make((tmp_path, archive[1]))
    result = evaluator.evaluate([candidate(archive[1], 1)])[0]
    assert not result.ok and "not in the archive's meta file" in result.error


def test_bad_archive_paths_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "badmeta").mkdir()
    (tmp_path / "badmeta" / "meta.pickle.pbz2").write_bytes(b"not bz2")
    (tmp_path / "badmeta" / "000000.pickle.pbz2").write_bytes(b"")
    (tmp_path / "norecords").mkdir()
    with bz2.open(tmp_path / "norecords" / "meta.pickle.pbz2", "wb") as handle:
        pickle.dump({"meta_archs": ["|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"]}, handle)
    for name, words in [
        ("missing", "does not exist"),
        ("file", "is a file"),
        ("empty", "has no meta.pickle.pbz2"),
        ("badmeta", "is not a NATS-Bench meta file"),
        ("norecords", "holds no NNNNNN.pickle.pbz2 records"),
    ]:
        with pytest.raises(EvaluatorError) as info:
            BenchmarkEvaluator(BenchmarkConfig(archive=str(tmp_path / name))).setup()
        message = str(info.value)
        assert message.startswith("evaluator.archive: ") and words in message and "\n" not in message
        assert str(tmp_path / name) in message and "meta.pickle.pbz2 and NNNNNN.pickle.pbz2" in message


def test_loaded_records_are_dropped_from_nats_bench(archive) -> None:
    evaluator = make(archive)
    results = evaluator.evaluate([candidate(archive[1], i) for i in range(N_RECORDS)])
    assert all(r.ok for r in results)
    assert len(evaluator._api.arch2infos_dict) == 0 and not evaluator._api.evaluated_indexes
    cached = evaluator._records[0]
    assert set(cached) <= set(evaluator._query.keys) and len(cached) <= 8
