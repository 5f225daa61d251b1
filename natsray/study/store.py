"""A sweep's store: the evaluations and summaries of its finished runs, in a few append-only files.

A sweep's run that finishes without reaching a periodic checkpoint (a run on a table takes
milliseconds) writes no run directory. Its task appends the run's evaluations, as one Arrow IPC
stream (a table in the flat layout of :mod:`natsray.experiment.journal_table`), to
``OUT/store/<task>.evaluations.arrows`` and its final checkpoint (search state, read only to write
its run directory) to ``OUT/store/<task>.checkpoints.jsonl``, then one JSON line with its summary
and where the other two lie (byte offsets and lengths) to ``OUT/store/<task>.runs.jsonl`` (each
written unbuffered, with ``os.write``, straight to the operating system), where ``<task>`` is unique
per writer's file set. A run is in the store once its summary line is complete: a task killed (even
by SIGKILL) between the writes, or halfway through one, leaves bytes that no summary claims, which
readers ignore; the run is then run again. A write that fails midway (a full disk, ``ENOSPC``;
``EIO``) leaves the same torn tail: the writer never appends to those files again (its next run
starts a new file set), so the runs it stores later are read back exactly, and the failed run is
reported failed and run again on resume. No file is fsynced: a killed process loses nothing, a
machine crash may lose the last runs (run again on resume). A complete line that is not a summary
line (a version before 2026-12-03 could leave one mid-file after a failed write) is skipped with a
:class:`StoreWarning` naming the file and line; a run only it held is run again on resume.

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

import contextlib
import errno
import json
import os
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from natsray.engine.checkpoint import encode_record, make_output_dir
from natsray.experiment.journal_table import table_from_lines, table_records

__all__ = [
    "STORE_DIR",
    "StoreWarning",
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


class StoreWarning(UserWarning):
    """A store file holds a complete line that is not a summary line; the runs it covered are left out."""


class StoreWriter:
    """Appends finished runs to a new set of store files (created on the first commit).

    Each record is written with unbuffered ``os.write`` calls, straight to the operating system. A
    commit that fails while writing (a full disk, ``ENOSPC``; ``EIO``; an interrupt) leaves torn
    bytes at the end of these files, claimed by no summary line: the writer closes them and its next
    commit starts a new set under a new :attr:`token`, so no later run is written after them.

    Args:
        sweep_dir: The sweep directory.

    Attributes:
        directory: ``sweep_dir/store``.
        token: The ``<task>`` part of the current files' names (``<pid>-<12 hex digits>``); empty
            until the first commit, new after a failed one.
    """

    def __init__(self, sweep_dir: str | Path) -> None:
        self.directory = Path(sweep_dir) / STORE_DIR
        self.token = ""
        self._files: tuple[int, int, int] | None = None  # descriptors: evaluations, checkpoints, runs
        self._offset = self._checkpoint_offset = 0

    def commit(
        self,
        name: str,
        evaluations: pa.Table,
        summary: Mapping[str, Any],
        checkpoint: Mapping[str, Any] | None = None,
    ) -> None:
        """Store one finished run: its evaluations (a flat table, one row per journal line), then its
        summary and final checkpoint state (for its run directory, when one is asked for).

        Everything is encoded before the first byte is written (a value JSON cannot encode raises
        ``TypeError`` with nothing written). The run is stored when this returns.

        Raises:
            OSError: a write failed (the run is not stored; the next commit writes new files).
        """
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, evaluations.schema) as writer:
            writer.write_table(evaluations)
        data = sink.getvalue()
        # apart: its search state is read only to write the run's directory
        text = None if checkpoint is None else (json.dumps(checkpoint, allow_nan=True) + "\n").encode()
        if self._files is None:
            self._open()
        assert self._files is not None
        record = {
            "run": name,
            "lines": evaluations.num_rows,
            "summary": dict(summary),
            "offset": self._offset,
            "length": data.size,
            "checkpoint_at": None if text is None else [self._checkpoint_offset, len(text)],
        }
        line = (json.dumps(record, allow_nan=True) + "\n").encode()
        evaluations_file, checkpoints_file, runs_file = self._files
        try:
            _write_all(evaluations_file, data)
            if text is not None:
                _write_all(checkpoints_file, text)
            _write_all(runs_file, line)
        except BaseException:
            self.close()  # torn bytes end these files: never append after them
            raise
        self._offset += data.size
        self._checkpoint_offset += 0 if text is None else len(text)

    def _open(self) -> None:
        """Create a new set of store files under a new token."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.token = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_BINARY", 0)
        opened: list[int] = []
        try:
            for suffix in (_EVALUATIONS, _CHECKPOINTS, _RUNS):
                opened.append(os.open(self.directory / (self.token + suffix), flags, 0o666))
        except BaseException:
            for descriptor in opened:
                os.close(descriptor)
            raise
        self._files = (opened[0], opened[1], opened[2])
        self._offset = self._checkpoint_offset = 0

    def close(self) -> None:
        """Close the files (committed runs are already written)."""
        for descriptor in self._files or ():
            with contextlib.suppress(OSError):
                os.close(descriptor)
        self._files = None


def _write_all(descriptor: int, data: bytes | pa.Buffer) -> None:
    """Write all of ``data`` (the OS may write part of it per call, e.g. when the disk fills up)."""
    view = memoryview(data)
    while view:
        written = os.write(descriptor, view)
        if written <= 0:  # pragma: no cover - write(2) on a file fails rather than write nothing
            raise OSError(errno.EIO, "write wrote nothing", str(descriptor))
        view = view[written:]


def stored_runs(sweep_dir: str | Path) -> dict[str, StoredRun]:
    """The finished runs in a sweep's store, by name (a run stored twice: its first copy).

    A torn last line (a task killed, or a write failed) is ignored. A complete line that is not a
    summary line (a failed write of a version before 2026-12-03 could leave one mid-file, a torn
    line with the next one glued to it) is skipped with one :class:`StoreWarning` per file (shown
    once per process) naming the file and its line numbers: a run that only such a line held is not
    in the store, so ``natsray resume`` runs it again.
    """
    directory = Path(sweep_dir) / STORE_DIR
    found: dict[str, StoredRun] = {}
    if not directory.is_dir():
        return found
    for path in sorted(directory.glob("*" + _RUNS)):
        data = path.read_bytes()
        stem = path.name[: -len(_RUNS)]
        corrupt = []
        for number, line in enumerate(data[: data.rfind(b"\n") + 1].splitlines(), start=1):
            try:
                run = _stored_run(json.loads(line), path, stem)
            except (ValueError, TypeError, KeyError, IndexError):  # JSONDecodeError is a ValueError
                corrupt.append(number)
                continue
            found.setdefault(run.name, run)
        if corrupt:  # stacklevel 1: shown once per process (the default filter), however many reads
            numbers = ", ".join(map(str, corrupt))
            what = (
                f"lines {numbers} are not summary lines"
                if len(corrupt) > 1
                else f"line {numbers} is not a summary line"
            )
            message = (
                f"{path}: {what} (a torn write), skipped; a run stored only there is run again by "
                "natsray resume"
            )
            if message not in _WARNED:  # once per process: the warnings module's own once-per-place
                _WARNED.add(message)  # memory is reset whenever any code changes the warning filters
                warnings.warn(message, StoreWarning, stacklevel=1)
    return found


_WARNED: set[str] = set()


def _stored_run(record: Any, path: Path, stem: str) -> StoredRun:
    """The run a summary line of ``path`` (``<stem>.runs.jsonl``) describes."""
    if not (
        isinstance(record, dict) and isinstance(record["run"], str) and isinstance(record["summary"], dict)
    ):
        raise TypeError("not a summary line")
    offset = record.get("offset")
    evaluations = path.with_name(stem + (_EVALUATIONS_JSONL if offset is None else _EVALUATIONS))
    at = record.get("checkpoint_at")
    return StoredRun(
        record["run"],
        evaluations,
        int(record["lines"]),
        record["summary"],
        record.get("checkpoint"),
        None if offset is None else int(offset),
        None if offset is None else int(record["length"]),
        None if at is None else (path.with_name(stem + _CHECKPOINTS), int(at[0]), int(at[1])),
    )


def _arrow_table(run: StoredRun, data: bytes | pa.Buffer) -> pa.Table:
    """A stored run's evaluations from its Arrow stream in ``data`` (its file's bytes)."""
    assert run.offset is not None and run.length is not None
    try:
        buffer = pa.py_buffer(data)[run.offset : run.offset + run.length]
        table = pa.ipc.open_stream(buffer).read_all()
    except (pa.ArrowException, ValueError, OSError) as exc:  # OSError: a stream cut short
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
        config: The run's :class:`~natsray.config.ExperimentConfig`, or its config as plain data
            (:attr:`~natsray.study.grid.PlannedRun.data`) (default: the plain data from ``sweep.yaml``,
            no plugin imported).
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
        planned = [
            p for p in plan_runs(load_plan(sweep_dir), sweep_dir, typed=False) if p.name == name and p.data
        ]
        if not planned:
            return False
        config = planned[0].data
    make_output_dir(run_dir)
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
