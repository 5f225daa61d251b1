"""The sweep store: Arrow streams claimed by summary lines, torn tails ignored, old JSON-lines stores read."""

from __future__ import annotations

import contextlib
import errno
import json
import signal
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from natsray.engine.journal_record import RecordEncoder, evaluation_columns
from natsray.experiment.journal_table import table_from_columns
from natsray.records import Candidate, Objective, Result, Status
from natsray.search_space import Arch
from natsray.study.store import (
    STORE_DIR,
    StoreWarning,
    StoreWriter,
    journal_lines,
    read_stored_tables,
    stored_runs,
)


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


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Files this process writes may not grow past ``limit`` bytes (RLIMIT_FSIZE): the kernel writes
    what fits, then fails the write with EFBIG, as a full disk fails it with ENOSPC."""
    resource = pytest.importorskip("resource")
    if signal.getsignal(signal.SIGXFSZ) != signal.SIG_IGN:
        pytest.skip("SIGXFSZ is not ignored (Python ignores it at start-up)")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    if hard != resource.RLIM_INFINITY and hard < limit:
        pytest.skip(f"RLIMIT_FSIZE's hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


BIG = "x" * 200_000


@pytest.mark.parametrize("torn", ["evaluations", "checkpoints", "runs"])
def test_a_write_failing_midway_loses_its_run_only(tmp_path: Path, torn: str) -> None:
    """A run whose evaluations, checkpoint or summary line the OS writes only in part (disk full) is
    not stored; the runs its writer commits next are stored exactly."""
    writer = StoreWriter(tmp_path)
    committed = {}

    def commit(name: str, n: int, summary: dict, checkpoint: dict | None) -> None:
        entries, _ = evaluations(n, offset=100 * len(committed))
        committed[name] = (table(entries), summary, checkpoint)
        writer.commit(name, *committed[name])

    commit("seed-0", 3, {"evaluations": 3}, {"finished": True})
    target = next((tmp_path / STORE_DIR).glob(f"*.{torn}.*"))
    size = target.stat().st_size
    big = {  # the failing run's record in the torn file is ~200 kB, those in the others a few kB
        "evaluations": (3000, {}, None),
        "checkpoints": (2, {}, {"state": BIG}),
        "runs": (2, {"note": BIG}, None),
    }[torn]
    with file_size_limit(size + 50_000), pytest.raises(OSError) as raised:
        commit("seed-1", *big)
    assert raised.value.errno == errno.EFBIG
    assert target.stat().st_size == size + 50_000  # torn midway
    del committed["seed-1"]
    commit("seed-2", 4, {"evaluations": 4}, {"finished": True, "seed": 2})
    commit("seed-3", 5, {"evaluations": 5}, None)
    writer.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        runs = stored_runs(tmp_path)
    assert sorted(runs) == ["seed-0", "seed-2", "seed-3"]
    tables = read_stored_tables(runs)
    for name, (evaluated, summary, checkpoint) in committed.items():
        assert tables[name].equals(evaluated), name
        assert runs[name].summary == summary and runs[name].checkpoint == checkpoint


def test_a_run_that_cannot_be_encoded_writes_nothing_and_the_next_is_stored(tmp_path: Path) -> None:
    writer = StoreWriter(tmp_path)
    first, second = table(evaluations(2)[0]), table(evaluations(3, offset=10)[0])
    writer.commit("seed-0", first, {}, None)
    sizes = {path: path.stat().st_size for path in (tmp_path / STORE_DIR).iterdir()}
    with pytest.raises(TypeError):
        writer.commit("seed-1", first, {}, {"state": object()})
    assert {path: path.stat().st_size for path in (tmp_path / STORE_DIR).iterdir()} == sizes
    writer.commit("seed-2", second, {"evaluations": 3}, {"finished": True})
    writer.close()
    runs = stored_runs(tmp_path)
    assert sorted(runs) == ["seed-0", "seed-2"] and runs["seed-2"].checkpoint == {"finished": True}
    assert read_stored_tables(runs)["seed-2"].equals(second)


def test_a_corrupt_summary_line_mid_file_costs_only_its_run(tmp_path: Path) -> None:
    """An invalid complete line (a store written by an earlier version after a failed write) is
    skipped with one warning naming the file and line: its run is run again on resume."""
    writer = StoreWriter(tmp_path)
    for i in range(4):
        writer.commit(f"seed-{i}", table(evaluations(i + 1, offset=10 * i)[0]), {"evaluations": i + 1})
    writer.close()
    runs_file = next((tmp_path / STORE_DIR).glob("*.runs.jsonl"))
    lines = runs_file.read_bytes().splitlines(keepends=True)
    runs_file.write_bytes(lines[0] + lines[1][:40] + lines[2] + b'["not", "a", "run"]\n' + lines[3])
    with pytest.warns(StoreWarning) as warned:
        runs = stored_runs(tmp_path)
    assert [str(w.message) for w in warned] == [
        f"{runs_file}: lines 2, 3 are not summary lines (a torn write), skipped; a run stored only there "
        "is run again by natsray resume"
    ]
    assert sorted(runs) == ["seed-0", "seed-3"] and runs["seed-3"].summary == {"evaluations": 4}
    assert read_stored_tables(runs)["seed-0"].equals(table(evaluations(1)[0]))
