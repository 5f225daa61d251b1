"""The sweep store: Arrow streams claimed by summary lines, torn tails ignored, old JSON-lines stores read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from natsray.engine.journal_record import RecordEncoder, evaluation_columns
from natsray.experiment.journal_table import table_from_columns
from natsray.records import Candidate, Objective, Result, Status
from natsray.search_space import Arch
from natsray.study.store import STORE_DIR, StoreWriter, journal_lines, read_stored_tables, stored_runs


def evaluations(n: int, offset: int = 0) -> tuple[list, RecordEncoder]:
    encoder = RecordEncoder([Objective("valid_accuracy")])
    entries = []
    for i in range(n):
        arch = Arch.from_code(i + offset)
        result = Result(i, Status.OK, {"valid_accuracy": 80.0 + i + offset}, {"nats_index": i}, 10.0, 1e-5)
        candidate = Candidate(i, arch, (i - 1,) if i else (), 7 + i)
        entries.append(
            (candidate, arch.to_str(), result, encoder.fitness(result), {"sim_finish": 10.0 * i}, 0)
        )
    return entries, encoder


def table(entries: list) -> object:
    return table_from_columns(evaluation_columns(entries))


def test_runs_are_read_back_as_committed_and_a_torn_tail_is_ignored(tmp_path: Path) -> None:
    writer = StoreWriter(tmp_path)
    stored = {}
    for name, n in (("seed-0", 3), ("seed-1", 5)):
        entries, encoder = evaluations(n, offset=len(stored) * 100)
        stored[name] = (entries, encoder)
        writer.commit(
            name, table_from_columns(evaluation_columns(entries)), {"evaluations": n}, {"finished": True}
        )
    writer.close()
    arrows = next((tmp_path / STORE_DIR).glob("*.evaluations.arrows"))
    with open(arrows, "ab") as handle:  # a third run's stream, torn by a kill before its summary line
        handle.write(arrows.read_bytes()[:100])
    runs = stored_runs(tmp_path)
    assert sorted(runs) == ["seed-0", "seed-1"] and runs["seed-1"].summary == {"evaluations": 5}
    assert runs["seed-1"].checkpoint == {"finished": True}  # stored apart, read when asked for
    tables = read_stored_tables(runs)
    assert tables["seed-1"].column("objective.valid_accuracy").to_pylist() == [
        180.0,
        181.0,
        182.0,
        183.0,
        184.0,
    ]
    for name, (entries, encoder) in stored.items():
        lines = journal_lines(runs[name]).decode().splitlines(keepends=True)
        assert lines == [encoder.line(entry) for entry in entries]  # the journal the run would have written


def test_a_run_whose_stream_does_not_match_its_summary_is_named(tmp_path: Path) -> None:
    writer = StoreWriter(tmp_path)
    entries, _ = evaluations(4)
    writer.commit("seed-0", table(entries), {}, None)
    writer.close()
    runs_file = next((tmp_path / STORE_DIR).glob("*.runs.jsonl"))
    record = json.loads(runs_file.read_text())
    runs_file.write_text(json.dumps(record | {"lines": 5}) + "\n")
    with pytest.raises(ValueError, match=r"run seed-0 has 4 lines, its summary counts 5"):
        read_stored_tables(stored_runs(tmp_path))
    runs_file.write_text(json.dumps(record | {"length": 10}) + "\n")
    with pytest.raises(ValueError, match=r"run seed-0's evaluations are unreadable"):
        read_stored_tables(stored_runs(tmp_path))


def test_a_json_lines_store_of_earlier_versions_is_read(tmp_path: Path) -> None:
    entries, encoder = evaluations(3)
    lines = [encoder.line(entry) for entry in entries]
    store = tmp_path / STORE_DIR
    store.mkdir()
    tagged = "".join('{"run": "seed-0", ' + line[1:] for line in lines)
    (store / "1-abc.evaluations.jsonl").write_text(tagged + '{"run": "seed-1", "candi')
    summary = {"run": "seed-0", "lines": 3, "summary": {}, "checkpoint": {"finished": True}}
    (store / "1-abc.runs.jsonl").write_text(json.dumps(summary) + "\n")
    runs = stored_runs(tmp_path)
    assert list(runs) == ["seed-0"] and runs["seed-0"].offset is None
    assert runs["seed-0"].checkpoint == {"finished": True}
    assert read_stored_tables(runs)["seed-0"].column("candidate_id").to_pylist() == [0, 1, 2]
    assert journal_lines(runs["seed-0"]).decode() == "".join(lines)
