"""export_table and TableEvaluator: same results as BenchmarkEvaluator, compact format, CSV join, errors."""

from __future__ import annotations

import sys
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import archive_factory as factory

from natsray.evaluators import EvaluatorError, evaluator_class
from natsray.evaluators.benchmark import BenchmarkConfig, BenchmarkEvaluator
from natsray.evaluators.metrics import METRICS
from natsray.evaluators.table import (
    TABLE_VERSION,
    TableConfig,
    TableEvaluator,
    export_table,
    load_table,
)
from natsray.records import Candidate
from natsray.search_space import NUM_ARCHS, Arch

N_RECORDS = 24
REPORT = (*METRICS, *(f"{name}@200" for name in METRICS), *(f"{name}@12" for name in METRICS))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    root = tmp_path_factory.mktemp("archive")
    archs = factory.write_archive(root, N_RECORDS, missing_valid_200={9})
    table = export_table(root, root.parent / "table.npz", progress=False)
    return root, table, archs


def candidates(archs: list[str], seed: int = 0) -> list[Candidate]:
    # every record, one cell without a record, and a few seeds per cell for random mode
    cells = [*range(N_RECORDS), N_RECORDS]
    return [Candidate(i, Arch.from_str(archs[cell]), seed=seed + i) for i, cell in enumerate(cells)]


def comparable(result):
    return result.status, result.objectives, result.metrics, result.cost_s


def test_load_table_reads_only_the_arrays_asked_for(built, monkeypatch) -> None:
    """``keys`` loads those arrays and the row maps, equal to a full load's; arrays read once are not read
    again (the file is opened for the missing ones only); an array the table lacks is one line."""
    from natsray.evaluators import table as table_module

    path = built[1]
    full = load_table(path)
    table_module._LOADED.clear()
    reads: list[list[str]] = []
    read_arrays = table_module._read_arrays
    monkeypatch.setattr(
        table_module, "_read_arrays", lambda p, f, keys: reads.append(list(keys)) or read_arrays(p, f, keys)
    )
    key = "cifar10-valid/12/x-valid/accuracy"
    part = load_table(path, keys=[key])
    assert list(part) == ["nats_index", "has_record", key]
    for name in part:
        np.testing.assert_array_equal(part[name], full[name])  # NaN where absent, in both
        assert not part[name].flags.writeable
    assert reads[-1] == [key] and not any("arch" in keys for keys in reads)
    count = len(reads)
    assert load_table(path, keys=[key])[key] is part[key] and len(reads) == count
    with pytest.raises(EvaluatorError) as info:  # mistyped names: all named, the closest suggested
        load_table(path, "evaluator.table", keys=["cifar10-valid/12/x-valid/acuracy", "nothing/at/all"])
    assert str(info.value) == (
        f"evaluator.table: {path} has no array 'cifar10-valid/12/x-valid/acuracy', 'nothing/at/all'; "
        "did you mean 'cifar10-valid/12/x-valid/accuracy'?"
    )
    with pytest.raises(TypeError, match="keys: expected a list of array names, got the string 'nats_index'"):
        load_table(path, keys="nats_index")


def test_export_stores_the_numbers_plain_and_gives_the_same_bytes_again(built, tmp_path) -> None:
    """The numeric arrays are stored (read without inflating), the strings deflated; exporting the
    same archive again writes the same bytes (no timestamps)."""
    root, path, _ = built
    with zipfile.ZipFile(path) as archive:
        kinds = {member.filename: member.compress_type for member in archive.infolist()}
    deflated = {name for name, kind in kinds.items() if kind == zipfile.ZIP_DEFLATED}
    assert deflated == {"arch.npy", "format.npy"}  # the strings
    assert {kinds[name] for name in kinds if name not in deflated} == {zipfile.ZIP_STORED}
    assert export_table(root, tmp_path / "again.npz", progress=False).read_bytes() == path.read_bytes()


def test_export_format(built) -> None:
    root, path, archs = built
    assert path == root.parent / "table.npz" and path.is_file()
    table = load_table(path)
    assert str(table["format"]) == "natsray-table" and int(table["version"]) == TABLE_VERSION
    assert table["arch"].dtype.kind == "U" and table["arch"].shape == (NUM_ARCHS,)
    assert all(table[key].dtype != object for key in table)
    codes = [Arch.from_str(arch).code for arch in archs]
    assert (table["nats_index"][codes] == np.arange(NUM_ARCHS)).all()
    assert [Arch.from_code(c).to_str() for c in codes[:5]] == [str(table["arch"][c]) for c in codes[:5]]
    assert table["has_record"].sum() == N_RECORDS and table["has_record"][codes[:N_RECORDS]].all()
    seeds = table["cifar10-valid/200/seeds"]
    assert seeds.shape == (NUM_ARCHS, 3)
    assert seeds[codes[4]].tolist() == [777, 888, -1]  # -1 padded beyond a cell's trials
    accuracy = table["cifar10-valid/200/x-valid/accuracy"]
    assert accuracy[codes[4], 0] == factory.accuracy(4, "cifar10-valid", "200", 777, "x-valid", 199)
    assert np.isnan(accuracy[codes[4], 2]) and np.isnan(accuracy[codes[N_RECORDS]]).all()
    assert np.isnan(table["cifar100/200/x-valid/accuracy"][codes[9]]).all()  # absent in the archive
    assert table["cifar10/12/cost/params"][codes[4]] == factory.params(4, "cifar10")
    assert sum(a.nbytes for a in table.values()) < 12 * NUM_ARCHS * 8 * 60  # float64, a few dozen columns


@pytest.mark.parametrize("seed_mode", ["mean", "random"])
@pytest.mark.parametrize("dataset", ["cifar10", "cifar100", "ImageNet16-120"])
def test_table_equals_benchmark_result_for_result(built, dataset: str, seed_mode: str) -> None:
    root, path, archs = built
    batch = [c for seed in (0, 1000) for c in candidates(archs, seed)]
    for hp in ("12", "200"):
        fields = {"dataset": dataset, "hp": hp, "seed_mode": seed_mode, "objective": ("test_accuracy",)}
        benchmark = BenchmarkEvaluator(BenchmarkConfig(archive=str(root), report=REPORT, **fields))
        table = TableEvaluator(TableConfig(table=str(path), report=REPORT, **fields))
        benchmark.setup()
        table.setup()
        expected, got = benchmark.evaluate(batch), table.evaluate(batch)
        assert [comparable(r) for r in got] == [comparable(r) for r in expected]
        assert sum(r.ok for r in got) == 2 * N_RECORDS
        assert "no record for NATS index 24" in got[N_RECORDS].error


def test_prepare_shared_gives_actors_read_only_arrays(built) -> None:
    _, path, archs = built
    config = TableConfig(table=str(path), hp="200", seed_mode="random", report=("train_time", "params"))
    shared = TableEvaluator.prepare_shared(config)
    for array in shared.values():
        array.flags.writeable = False  # what ray.get hands out for object-store arrays
    assert set(shared) >= {"nats_index", "has_record", "cifar10-valid/200/x-valid/accuracy"}
    assert not any(key.startswith("cifar100/") for key in shared)  # only what this config reads
    actor = TableEvaluator(config, shared)
    actor.setup()
    plain = TableEvaluator(config)
    plain.setup()
    batch = candidates(archs)
    assert [comparable(r) for r in actor.evaluate(batch)] == [comparable(r) for r in plain.evaluate(batch)]
    assert evaluator_class("table") is TableEvaluator and TableEvaluator.cheap


def test_one_evaluation_takes_microseconds(built) -> None:
    _, path, archs = built
    evaluator = TableEvaluator(TableConfig(table=str(path), report=("test_accuracy@200", "params")))
    evaluator.setup()
    batch = [c for c in candidates(archs) if c.id < N_RECORDS] * 40
    start = time.perf_counter()
    results = evaluator.evaluate(batch)
    per_call = (time.perf_counter() - start) / len(batch)
    assert all(r.ok for r in results) and per_call < 1e-3, per_call


# --- extra CSV columns -----------------------------------------------------------------------


def write_csv(path: Path, header: str, rows: list[str]) -> str:
    path.write_text("\n".join([header, *rows]) + "\n")
    return str(path)


def test_extra_csv_by_arch_and_by_index(built, tmp_path: Path) -> None:
    _, path, archs = built
    by_index = write_csv(
        tmp_path / "i.csv", "index,gpu_ms,cpu_ms", [f"{i},{i + 0.5},{2 * i}" for i in range(10)]
    )
    by_arch = write_csv(tmp_path / "a.csv", "gpu_ms,arch", [f"{i + 0.5},{archs[i]}" for i in range(10)])
    batch = [c for c in candidates(archs) if c.id < 12]
    for csv_path, key in ((by_index, "index"), (by_arch, "arch")):
        config = TableConfig(
            table=str(path), extra_csv=csv_path, extra_key=key, objective=("valid_accuracy", "gpu_ms:min")
        )
        results = TableEvaluator(config).evaluate(batch)
        assert [r.objectives.get("gpu_ms") for r in results[:10]] == [i + 0.5 for i in range(10)]
        assert (
            not results[10].ok
            and "objective 'gpu_ms': the evaluator's extra_csv has no value for this cell"
            in results[10].error
        )
    config = TableConfig(table=str(path), extra_csv=by_index, extra_key="index", report=("cpu_ms",))
    results = TableEvaluator(config).evaluate(batch)
    assert results[3].metrics["cpu_ms"] == 6.0 and results[11].ok and results[11].metrics["cpu_ms"] is None


def test_real_latency_csv_joins_by_index(built) -> None:
    latency = Path(__file__).resolve().parents[2] / "shared" / "nats-tss" / "latency" / "latency_ms.csv"
    if not latency.is_file():
        pytest.skip("../shared/nats-tss is absent")
    _, path, archs = built
    config = TableConfig(
        table=str(path), extra_csv=str(latency), extra_key="index", report=("titan_rtx_256",)
    )
    result = TableEvaluator(config).evaluate(candidates(archs)[:1])[0]
    with open(latency) as handle:
        header = handle.readline().strip().split(",")
        row0 = handle.readline().strip().split(",")
    assert result.metrics["titan_rtx_256"] == float(row0[header.index("titan_rtx_256")])


@pytest.mark.parametrize(
    ("header", "rows", "key", "words"),
    [
        ("arch,gpu_ms", ["0,1.0"], "index", "has no 'index' column"),
        ("index,gpu_ms", ["0,fast"], "index", "line 2 column 'gpu_ms': 'fast' is not a number"),
        ("index,gpu_ms", ["99999,1"], "index", "line 2: NATS index 99999 is not in the table"),
        ("index,gpu_ms", ["x,1"], "index", "line 2: index 'x' is not an integer"),
        ("arch,gpu_ms", ["|conv~0|+|,1"], "arch", "line 2: unknown arch"),
        ("index,gpu_ms", ["1,1", "1,2"], "index", "line 3: '1' appears twice"),
        ("index,gpu_ms", ["1,1,3"], "index", "line 2 has 3 fields, expected 2"),
        ("index,params", ["1,1"], "index", "column 'params' clashes with a built-in metric"),
    ],
)
def test_bad_extra_csv_is_a_one_line_error(built, tmp_path: Path, header, rows, key, words) -> None:
    csv_path = write_csv(tmp_path / "x.csv", header, rows)
    config = TableConfig(table=str(built[1]), extra_csv=csv_path, extra_key=key)
    with pytest.raises(EvaluatorError) as info:
        TableEvaluator.prepare_shared(config)
    assert str(info.value).startswith(f"extra_csv: {csv_path}") and words in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_extra_metric_names_the_columns(built, tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "x.csv", "index,gpu_ms", ["1,1"])
    config = TableConfig(table=str(built[1]), extra_csv=csv_path, extra_key="index", report=("tpu_ms",))
    with pytest.raises(EvaluatorError, match=r"unknown metric 'tpu_ms'.*gpu_ms"):
        TableEvaluator.prepare_shared(config)
    with pytest.raises(ValueError, match=r"^report: unknown metric 'tpu_ms'"):
        TableConfig(table="t.npz", report=("tpu_ms",))  # no CSV: checked at once
    with pytest.raises(ValueError, match=r"^extra_key: "):
        TableConfig(table="t.npz", extra_key="name")


def test_an_extra_column_no_row_has_names_the_csv(built, tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "header-only.csv", "index,gpu_ms,cpu_ms", [])
    config = TableConfig(
        table=str(built[1]), extra_csv=csv_path, extra_key="index", objective=("gpu_ms",), report=("cpu_ms",)
    )
    with pytest.raises(EvaluatorError) as info:
        TableEvaluator.prepare_shared(config)
    assert str(info.value) == (
        f"evaluator: objective 'gpu_ms', report 'cpu_ms' not in extra_csv {csv_path} "
        "(no row has a value in that column)"
    )


# --- table errors ----------------------------------------------------------------------------


def test_bad_table_files_are_one_line_errors(built, tmp_path: Path) -> None:
    text = tmp_path / "text.npz"
    text.write_text("hello")
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.arange(3))
    table = load_table(built[1])
    old = tmp_path / "old.npz"
    np.savez(old, **{**table, "version": np.array(TABLE_VERSION + 1)})
    partial = tmp_path / "partial.npz"
    np.savez(partial, **{k: v for k, v in table.items() if k != "cifar10-valid/12/seeds"})
    for path, words in [
        (tmp_path / "missing.npz", "does not exist"),
        (text, "is not a natsray table (.npz)"),
        (foreign, "is not a natsray table (no format="),
        (old, f"is table version {TABLE_VERSION + 1}"),
        (partial, "is not a complete natsray table"),
    ]:
        with pytest.raises(EvaluatorError) as info:
            TableEvaluator(TableConfig(table=str(path))).setup()
        message = str(info.value)
        assert message.startswith(f"evaluator.table: {path}") and words in message and "\n" not in message


def test_metric_no_row_has_is_caught_at_setup(tmp_path: Path) -> None:
    factory.write_archive(tmp_path / "a", 3, missing_valid_200={0, 1, 2}, with_latency=False)
    path = export_table(tmp_path / "a", tmp_path / "t.npz", progress=False)
    config = TableConfig(table=str(path), dataset="cifar100", hp="200", report=("latency",))
    with pytest.raises(EvaluatorError) as info:
        TableEvaluator(config).setup()
    message = str(info.value)
    assert "objective 'valid_accuracy' (cifar100, hp 200)" in message and "report 'latency'" in message
    assert "no row has it" in message
    ok = TableEvaluator(replace(config, objective=("test_accuracy",), report=()))
    ok.setup()  # cost falls back to the equal-size x-test pass


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_vectorised_mean_scores_equal_per_record_scores(built, dataset: str) -> None:
    """``seed_mode: mean`` scores come from columns computed for all cells at once
    (``MetricQuery.mean_columns``); each equals the per-record score to the bit, errors included
    (cifar100's cell 9 has no hp-200 validation record: its objective is absent)."""
    _, path, archs = built
    config = TableConfig(
        table=str(path), dataset=dataset, hp="200", objective=("valid_accuracy", "params:min"), report=REPORT
    )
    fast, slow = TableEvaluator(config), TableEvaluator(config)
    fast.setup()
    slow.setup()
    slow._mean_score = lambda row, index: None  # the per-record path
    batch = [Candidate(i, Arch.from_str(arch)) for i, arch in enumerate(archs[: N_RECORDS + 1])]
    expected, got = slow.evaluate(batch), fast.evaluate(batch)
    assert [comparable(r) for r in got] == [comparable(r) for r in expected]
    assert [list(r.metrics) for r in got] == [list(r.metrics) for r in expected]  # same field order
    assert fast._mean is not None  # the columns were used
    assert sum(not r.ok for r in got) == (2 if dataset == "cifar100" else 1)
    bits = [(r.objectives, r.metrics, r.cost_s) for r in got if r.ok]
    assert repr(bits) == repr([(r.objectives, r.metrics, r.cost_s) for r in expected if r.ok])
