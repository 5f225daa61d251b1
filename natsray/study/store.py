"""A sweep's store: the evaluations and summaries of its finished runs, in a few append-only files.

A sweep's run that finishes without reaching a periodic checkpoint (a run on a table takes
milliseconds) writes no run directory. Its task appends the run's evaluations, as one Arrow IPC
stream (a table in the flat layout of :mod:`natsray.experiment.journal_table`), to
``OUT/store/<task>.evaluations.arrows`` and its final checkpoint (search state, read only to write
its run directory) to ``OUT/store/<task>.checkpoints.jsonl``, then one JSON line with its summary
and where the other two lie (byte offsets and lengths) to ``OUT/store/<task>.runs.jsonl`` (one
``write`` each, flushed to the operating system), where ``<task>`` is unique per task attempt. A run is in
the store once its summary line is complete: a task killed (even by SIGKILL) between the two
writes, or halfway through one, leaves bytes that no summary claims, which readers ignore; the run
is then run again. No file is fsynced: a killed process loses nothing, a machine crash may lose
the last runs (run again on resume).

Three files per task instead of about ten per run: creating a file costs 0.3-0.8 ms on the
development machine, as much as a whole NATS-protocol search. The evaluations are columns, never
text: a run kept in memory (:meth:`natsray.engine.checkpoint.Journal.entries`) is written without
encoding a JSON line, and ``natsray report`` reads the columns back without parsing one (a
JSON-lines store, ``<task>.evaluations.jsonl``, as earlier versions wrote it, is still read). A run that
does reach a checkpoint (a long one) continues in its run directory as ``natsray run`` writes it,
and readers take it from there. ``natsray report OUT`` reads both and writes every finished run's
evaluations to ``OUT/report/evaluations.parquet`` for pandas (``docs/sweeps.md``).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa

from natsray.engine.checkpoint import encode_record
from natsray.experiment.journal_table import table_from_lines, table_records

__all__ = [
    "STORE_DIR",
    "StoreWriter",
    "StoredRun",
    "journal_lines",
    "read_stored_tables",
    "stored_runs",
    "write_run_dir",
]

STORE_DIR = "store"
_EVALUATIONS = ".evaluations.arrows"
_EVALUATIONS_JSONL = ".evaluations.jsonl"  # the store of earlier versions: JSON lines tagged with "run"
_RUNS = ".runs.jsonl"
_CHECKPOINTS = ".checkpoints.jsonl"


@dataclass(frozen=True)
class StoredRun:
    """A finished run in the store.

    Attributes:
        name: The run's name, its directory relative to the sweep directory (``seed-3``).
        evaluations: The file holding its evaluations.
        lines: How many evaluations (journal lines) it has.
        summary: Its ``summary.json`` content.
        inline_checkpoint: Its final checkpoint when the summary line holds it (earlier versions).
        offset: Where its Arrow stream starts in ``evaluations`` (bytes); None in a JSON-lines store.
        length: Its Arrow stream's length in bytes; None in a JSON-lines store.
        checkpoint_at: ``(file, offset, length)`` of its final checkpoint's JSON line, when stored apart.
    """

    name: str
    evaluations: Path
    lines: int
    summary: Mapping[str, Any]
    inline_checkpoint: Mapping[str, Any] | None = None
    offset: int | None = None
    length: int | None = None
    checkpoint_at: tuple[Path, int, int] | None = None

    @property
    def checkpoint(self) -> Mapping[str, Any] | None:
        """Its final ``checkpoint.json`` content (search state), read when asked for; None if not stored."""
        if self.checkpoint_at is None:
            return self.inline_checkpoint
        path, offset, length = self.checkpoint_at
        with open(path, "rb") as handle:
            handle.seek(offset)
            return json.loads(handle.read(length))


class StoreWriter:
    """Appends finished runs to a new pair of store files (created on the first commit).

    Args:
        sweep_dir: The sweep directory.
    """

    def __init__(self, sweep_dir: str | Path) -> None:
        self.directory = Path(sweep_dir) / STORE_DIR
        self.token = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._evaluations: IO[bytes] | None = None
        self._checkpoints: IO[bytes] | None = None
        self._runs: IO[str] | None = None
        self._offset = self._checkpoint_offset = 0

    def commit(
        self,
        name: str,
        evaluations: pa.Table,
        summary: Mapping[str, Any],
        checkpoint: Mapping[str, Any] | None = None,
    ) -> None:
        """Store one finished run: its evaluations (a flat table, one row per journal line), then its
        summary and final checkpoint state (for its run directory, when one is asked for)."""
        if self._evaluations is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            stem = self.directory / self.token
            self._evaluations = open(stem.with_name(stem.name + _EVALUATIONS), "ab")  # noqa: SIM115
            self._checkpoints = open(stem.with_name(stem.name + _CHECKPOINTS), "ab")  # noqa: SIM115
            self._runs = open(stem.with_name(stem.name + _RUNS), "a", encoding="utf-8")  # noqa: SIM115
            self._offset, self._checkpoint_offset = self._evaluations.tell(), self._checkpoints.tell()
        assert self._runs is not None and self._checkpoints is not None
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, evaluations.schema) as writer:
            writer.write_table(evaluations)
        data = sink.getvalue()
        self._evaluations.write(data)
        self._evaluations.flush()
        checkpoint_at = None
        if checkpoint is not None:  # apart: its search state is read only to write the run's directory
            text = (json.dumps(checkpoint, allow_nan=True) + "\n").encode()
            self._checkpoints.write(text)
            self._checkpoints.flush()
            checkpoint_at = [self._checkpoint_offset, len(text)]
            self._checkpoint_offset += len(text)
        record = {
            "run": name,
            "lines": evaluations.num_rows,
            "summary": dict(summary),
            "offset": self._offset,
            "length": data.size,
            "checkpoint_at": checkpoint_at,
        }
        self._offset += data.size
        self._runs.write(json.dumps(record, allow_nan=True) + "\n")
        self._runs.flush()

    def close(self) -> None:
        """Close the files (committed runs are already written)."""
        for handle in (self._evaluations, self._checkpoints, self._runs):
            if handle is not None:
                handle.close()
        self._evaluations = self._checkpoints = self._runs = None


def stored_runs(sweep_dir: str | Path) -> dict[str, StoredRun]:
    """The finished runs in a sweep's store, by name (a run stored twice: its first copy).

    Raises:
        ValueError: one line naming the file when a complete summary line is not valid JSON.
    """
    directory = Path(sweep_dir) / STORE_DIR
    found: dict[str, StoredRun] = {}
    if not directory.is_dir():
        return found
    for path in sorted(directory.glob("*" + _RUNS)):
        data = path.read_bytes()
        stem = path.name[: -len(_RUNS)]
        for number, line in enumerate(data[: data.rfind(b"\n") + 1].splitlines(), start=1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: line {number} is not valid JSON ({exc.msg})") from None
            name = record["run"]
            if name in found:
                continue
            offset = record.get("offset")
            evaluations = path.with_name(stem + (_EVALUATIONS_JSONL if offset is None else _EVALUATIONS))
            at = record.get("checkpoint_at")
            found[name] = StoredRun(
                name,
                evaluations,
                int(record["lines"]),
                record["summary"],
                record.get("checkpoint"),
                None if offset is None else int(offset),
                None if offset is None else int(record["length"]),
                None if at is None else (path.with_name(stem + _CHECKPOINTS), int(at[0]), int(at[1])),
            )
    return found


def _arrow_table(run: StoredRun, data: bytes | pa.Buffer) -> pa.Table:
    """A stored run's evaluations from its Arrow stream in ``data`` (its file's bytes)."""
    assert run.offset is not None and run.length is not None
    try:
        buffer = pa.py_buffer(data)[run.offset : run.offset + run.length]
        table = pa.ipc.open_stream(buffer).read_all()
    except (pa.ArrowException, ValueError) as exc:
        raise ValueError(f"{run.evaluations}: run {run.name}'s evaluations are unreadable ({exc})") from None
    if table.num_rows != run.lines:
        raise ValueError(
            f"{run.evaluations}: run {run.name} has {table.num_rows} lines, its summary counts {run.lines}"
        )
    return table


def read_stored_tables(runs: Mapping[str, StoredRun]) -> dict[str, pa.Table]:
    """Each stored run's evaluations as a flat table (``natsray.experiment.journal_table`` layout).

    Reads each store file once. Bytes no summary claims (a task killed mid-way) are left out.

    Raises:
        ValueError: one line naming the file when a run's evaluations are unreadable, or their
            count differs from its summary line's.
    """
    by_file: dict[Path, list[str]] = {}
    for run in runs.values():
        by_file.setdefault(run.evaluations, []).append(run.name)
    tables: dict[str, pa.Table] = {}
    for path, names in by_file.items():
        if path.name.endswith(_EVALUATIONS):
            data = pa.memory_map(str(path)).read_buffer()
            tables.update({name: _arrow_table(runs[name], data) for name in names})
        else:
            tables.update(_jsonl_tables(path, names, runs))
    for name, run in runs.items():
        if name not in tables and run.lines == 0:
            tables[name] = pa.table({})
    return tables


def _jsonl_tables(path: Path, names: list[str], runs: Mapping[str, StoredRun]) -> dict[str, pa.Table]:
    """The runs ``names`` of a JSON-lines store file (earlier versions'), each as a flat table."""
    tables: dict[str, pa.Table] = {}
    data = path.read_bytes()
    table = table_from_lines(data[: data.rfind(b"\n") + 1], path)
    if table.num_rows == 0:
        return tables
    codes = table.column("run").combine_chunks().dictionary_encode()
    labels = codes.dictionary.to_pylist()
    indices = codes.indices.to_numpy(zero_copy_only=False)
    order = np.argsort(indices, kind="stable")
    bounds = np.searchsorted(indices[order], np.arange(len(labels) + 1))
    table = table.drop_columns(["run"])
    wanted = set(names)
    for code, label in enumerate(labels):
        if label in wanted:
            rows = table.take(pa.array(order[bounds[code] : bounds[code + 1]]))
            if rows.num_rows != runs[label].lines:
                raise ValueError(
                    f"{path}: run {label} has {rows.num_rows} lines, its summary counts {runs[label].lines}"
                )
            tables[label] = rows
    return tables


def journal_lines(run: StoredRun) -> bytes:
    """A stored run's journal lines, as its ``evaluations.jsonl`` holds them."""
    if run.offset is None:  # a JSON-lines store: the lines as the journal held them, "run" tag removed
        prefix = ('{"run": ' + json.dumps(run.name) + ", ").encode()
        data = run.evaluations.read_bytes()
        data = data[: data.rfind(b"\n") + 1]
        lines = data.splitlines(keepends=True)
        return b"".join(b"{" + line[len(prefix) :] for line in lines if line.startswith(prefix))
    table = read_stored_tables({run.name: run})[run.name]
    return "".join(encode_record(record) for record in table_records(table)).encode()


def write_run_dir(
    sweep_dir: str | Path,
    run_dir: str | Path,
    config: Any = None,
    stored: Mapping[str, StoredRun] | None = None,
) -> bool:
    """Write a stored run's directory on demand (lazily): ``config.yaml``, ``evaluations.jsonl``,
    ``checkpoint.json``, ``summary.json``, ``evaluations.csv`` and ``best_arch.yaml``, as
    ``natsray run`` writes them (``natsray resume --set budget...`` continues it).

    Args:
        sweep_dir: The sweep directory (holds ``sweep.yaml``).
        run_dir: One of its runs' directories.
        config: The run's :class:`~natsray.config.ExperimentConfig` (default: from ``sweep.yaml``).
        stored: :func:`stored_runs` of the sweep, when the caller has it (default: read here).

    Returns:
        False when the store has no such run (nothing written).
    """
    from natsray.config import dump_config
    from natsray.engine.checkpoint import CHECKPOINT_FILE, JOURNAL_FILE, SUMMARY_FILE, atomic_write_json
    from natsray.experiment.report import finalize_run
    from natsray.study.grid import load_plan, plan_runs

    sweep_dir, run_dir = Path(sweep_dir), Path(run_dir)
    try:
        name = run_dir.resolve().relative_to(sweep_dir.resolve()).as_posix()
    except ValueError:
        return False
    run = (stored_runs(sweep_dir) if stored is None else stored).get(name)
    if run is None:
        return False
    if config is None:
        planned = [p for p in plan_runs(load_plan(sweep_dir), sweep_dir) if p.name == name and p.config]
        if not planned:
            return False
        config = planned[0].config
    run_dir.mkdir(parents=True, exist_ok=True)
    dump_config(config, run_dir / "config.yaml")
    partial = run_dir / (JOURNAL_FILE + ".partial")
    partial.write_bytes(journal_lines(run))
    partial.replace(run_dir / JOURNAL_FILE)
    checkpoint = run.checkpoint
    if checkpoint is not None:
        atomic_write_json(run_dir / CHECKPOINT_FILE, dict(checkpoint), indent=None)
    atomic_write_json(run_dir / SUMMARY_FILE, dict(run.summary))
    finalize_run(run_dir)
    return True
