"""The journal as an Arrow table: fast reader and Python reader agree, CSV cells, odd journals."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from natsray.experiment import journal_table
from natsray.experiment.journal_table import read_table, row_record, write_csv
from natsray.experiment.run_data import load_run
from natsray.search_space import Arch

A, B = Arch.from_code(5), Arch.from_code(4321)


def line(i: int, arch: Arch, value: float | None, **extra) -> dict:
    record = {"candidate_id": i, "arch": arch.to_str(), "status": "ok" if value is not None else "failed"}
    if value is not None:
        record |= {"objectives": {"valid_accuracy": value}, "fitness": [value], "metrics": {"nats_index": i}}
    return record | {"cost_s": 1.5, "parents": list(range(i)), "seed": 2**32 - 1 - i} | extra


def write(path: Path, records: list, tail: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)
    return path


RECORDS = [
    line(0, A, 80.0),
    line(1, B, None, error="boom"),
    line(2, A, 81.25, finish_time=3.5, extra={"node": "n1"}),
    line(3, B, 90.0, metrics={"nats_index": 3, "test_accuracy@200": 88.5}),
]


def test_fast_and_python_readers_give_the_same_flat_table(tmp_path, monkeypatch):
    path = write(tmp_path / "j.jsonl", RECORDS, tail='{"candidate_id": 4, "arch": "|no')
    fast = read_table(path)
    monkeypatch.setattr(journal_table, "_fast", lambda data: None)
    slow = read_table(path)
    assert fast.num_rows == slow.num_rows == 4  # the torn last line left out
    assert sorted(fast.column_names) == sorted(slow.column_names)
    for name in fast.column_names:
        assert fast.column(name).to_pylist() == slow.column(name).to_pylist(), name
    assert "objective.valid_accuracy" in fast.column_names and "metric.test_accuracy@200" in fast.column_names
    assert row_record(fast, 3) == RECORDS[3]
    assert row_record(fast, 1) == RECORDS[1]
    assert fast.column("extra.node").to_pylist() == [None, None, "n1", None]  # any other mapping: a.b


def test_a_field_of_mixed_types_falls_back_and_is_kept_as_text(tmp_path):
    records = [line(0, A, 80.0, note=1), line(1, B, 70.0, note="n/a"), line(2, A, 75.0, note=[1, 2])]
    table = read_table(write(tmp_path / "j.jsonl", records))
    assert table.column("note").to_pylist() == ["1", "n/a", "[1, 2]"]
    assert table.column("objective.valid_accuracy").to_pylist() == [80.0, 70.0, 75.0]


def test_nan_values_are_read(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_text(json.dumps(line(0, A, float("nan")), allow_nan=True) + "\n")
    assert np.isnan(read_table(path).column("objective.valid_accuracy").to_pylist()[0])


def test_corrupt_lines_are_named(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_text(json.dumps(RECORDS[0]) + "\n{oops\n")
    with pytest.raises(ValueError, match=r"j.jsonl: line 2 is not valid JSON"):
        read_table(path)
    path.write_text(json.dumps(RECORDS[0]) + '\n{"arch": "x"}\n')
    with pytest.raises(ValueError, match=r"line 2 is not an evaluation record"):
        read_table(path)
    assert read_table(tmp_path / "missing.jsonl").num_rows == 0


def test_csv_cells(tmp_path):
    write_csv(read_table(write(tmp_path / "j.jsonl", RECORDS)), tmp_path / "e.csv")
    with open(tmp_path / "e.csv", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames[:5] == ["candidate_id", "arch", "canonical", "status", "fitness"]
    assert reader.fieldnames[-3:] == [
        "objective.valid_accuracy",
        "metric.nats_index",
        "metric.test_accuracy@200",
    ]
    assert [row["canonical"] for row in rows] == [A.canonical().to_str(), B.canonical().to_str()] * 2
    assert [row["parents"] for row in rows] == ["", "0", "0;1", "0;1;2"]
    assert [row["fitness"] for row in rows] == ["80", "", "81.25", "90"]
    assert rows[1]["error"] == "boom" and rows[1]["objective.valid_accuracy"] == ""
    assert [int(row["seed"]) for row in rows] == [r["seed"] for r in RECORDS]  # integers stay exact
    assert rows[2]["finish_time"] == "3.5" and rows[0]["finish_time"] == ""
    write_csv(pa.table({}), tmp_path / "empty.csv")
    assert (tmp_path / "empty.csv").read_text() == '"candidate_id","arch","canonical","status"\n'


def test_run_columns_skip_cache_lines_of_old_journals(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    records = [*RECORDS[:2], {**line(9, A, 99.0), "cached": True}, *RECORDS[2:]]
    write(run_dir / "evaluations.jsonl", records)
    run = load_run(run_dir)
    assert run.table.num_rows == 5 and run.evaluated_table.num_rows == 4
    values = run.column("objective.valid_accuracy")
    assert np.isnan(values[1]) and values[[0, 2, 3]].tolist() == [80.0, 81.25, 90.0]
    assert np.isnan(run.column("sim_finish")).all()  # absent: NaN
    with pytest.raises(ValueError, match="'arch' is not numeric"):
        run.column("arch")
    assert [r["candidate_id"] for r in run.evaluated] == [0, 1, 2, 3]


def test_pandas_with_the_arrow_backend_keeps_integer_columns_with_gaps_integer(tmp_path):
    """As docs/results.md says: pandas' default types turn an integer column with an empty cell into
    float; ``dtype_backend="pyarrow"`` keeps it integer, the gap ``<NA>``, and seeds exact."""
    pd = pytest.importorskip("pandas")
    write_csv(read_table(write(tmp_path / "j.jsonl", RECORDS)), tmp_path / "e.csv")
    assert pd.read_csv(tmp_path / "e.csv")["metric.nats_index"].dtype == np.float64
    frame = pd.read_csv(tmp_path / "e.csv", dtype_backend="pyarrow")
    assert str(frame["metric.nats_index"].dtype) == "int64[pyarrow]"
    assert frame["metric.nats_index"].tolist() == [0, pd.NA, 2, 3]
    assert frame["seed"].tolist() == [r["seed"] for r in RECORDS]
    assert frame["parents"].tolist() == [pd.NA, "0", "0;1", "0;1;2"]
