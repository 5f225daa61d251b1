"""One run directory, read: its journal (as a columnar table and, on demand, as records), summary,
config and objectives.

The read-side model shared by :mod:`.report` (tables) and :mod:`.plots` (figures). The journal is
read once, into an Arrow table (:mod:`.journal_table`); the per-line dicts of :attr:`RunData.records`
are parsed only when something asks for them.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from natsray.engine.checkpoint import JOURNAL_FILE, SUMMARY_FILE, read_journal, read_json
from natsray.experiment.journal_table import read_table, row_record
from natsray.records import Objective

__all__ = ["RUN_FILES", "RunData", "active_seconds", "is_run_dir", "load_run", "run_from_parts"]

RUN_FILES = (JOURNAL_FILE, SUMMARY_FILE, "config.yaml")
"""The files of which a run directory holds at least one (a run that started, finished or was planned)."""

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader where PyYAML has it (~10x faster: a sweep report reads a config per run)."""


@dataclass(frozen=True)
class RunData:
    """One run directory, read.

    Attributes:
        path: The run directory.
        table: The journal as a flat table, one row per complete line in file order (layout:
            :mod:`natsray.experiment.journal_table`).
        summary: ``summary.json`` content; None while the run has not finished once, and when the
            summary counts fewer evaluations than the journal holds (a run killed after its last
            checkpoint: its summary is stale, so counts and the best cell come from the journal).
        config: ``config.yaml`` as plain data, None when absent.
        objectives: The run's objectives (from the summary, else the config, else the journal).
        sessions: ``(start, end)`` Unix seconds of each time the run ran (its start and every resume,
            from ``summary.json``, even a stale one); empty for runs of natsray before 2026-12-04.
    """

    path: Path
    table: pa.Table
    summary: Mapping[str, Any] | None
    config: Mapping[str, Any] | None
    objectives: tuple[Objective, ...]
    sessions: tuple[tuple[float, float], ...] = ()

    @functools.cached_property
    def records(self) -> tuple[Mapping[str, Any], ...]:
        """Journal records in file order (a torn last line left out), parsed on first use (rebuilt
        from :attr:`table` for a run without a journal file, e.g. one in a sweep's store)."""
        if not (self.path / JOURNAL_FILE).exists():
            return tuple(row_record(self.table, i) for i in range(self.table.num_rows))
        return tuple(read_journal(self.path / JOURNAL_FILE)[: self.table.num_rows])

    @functools.cached_property
    def evaluated(self) -> list[Mapping[str, Any]]:
        """Records of real evaluations, in finish order (``cached: true`` lines of journals written
        by natsray 0.1, which journaled cache answers, left out); computed once."""
        return [record for record in self.records if not record.get("cached")]

    @functools.cached_property
    def evaluated_table(self) -> pa.Table:
        """:attr:`table` without the ``cached: true`` lines (the rows of :attr:`evaluated`)."""
        if "cached" not in self.table.column_names:
            return self.table
        return self.table.filter(pc.invert(pc.fill_null(self.table.column("cached"), False)))

    def column(self, name: str) -> np.ndarray:
        """Column ``name`` of :attr:`evaluated_table` as a float array (NaN where null or absent).

        Raises:
            ValueError: when the column holds text.
        """
        table = self.evaluated_table
        if name not in table.column_names:
            return np.full(table.num_rows, np.nan)
        column = table.column(name)
        if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
            if pa.types.is_null(column.type):
                return np.full(table.num_rows, np.nan)
            raise ValueError(f"{self.path / JOURNAL_FILE}: field {name!r} is not numeric ({column.type})")
        return pc.fill_null(column.cast(pa.float64()), np.nan).to_numpy()

    @property
    def simulated_clock(self) -> bool:
        """Whether the journal has a simulated clock (``sim_finish``; ``sim_finish_time`` in old ones)."""
        names = self.table.column_names
        return "sim_finish" in names or "sim_finish_time" in names

    def elapsed_column(self, table: pa.Table | None = None) -> pa.Table:
        """``table`` (default :attr:`table`) with an ``elapsed_s`` column, :meth:`wall_clock` (null where a
        row has no finish time), for a run not on the simulated clock that has ``finish_time`` (the x of
        its plots by time); else ``table`` as it is."""
        table = self.table if table is None else table
        if (
            self.simulated_clock
            or "finish_time" not in table.column_names
            or "elapsed_s" in table.column_names
        ):
            return table
        return table.append_column("elapsed_s", pa.array(self.wall_clock(table), from_pandas=True))

    def wall_clock(self, table: pa.Table | None = None) -> np.ndarray:
        """Each row's finish in wall seconds of the run's own elapsed time: since its first submit,
        the time it was stopped between an interrupt and its resume left out (:func:`active_seconds`).
        Rows of ``table`` (default :attr:`evaluated_table`); NaN where a row has no ``finish_time``."""
        table = self.evaluated_table if table is None else table

        def floats(name: str) -> np.ndarray:
            kind = table.schema.field(name).type if name in table.column_names else pa.null()
            if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
                return np.full(table.num_rows, np.nan)
            return pc.fill_null(table.column(name).cast(pa.float64()), np.nan).to_numpy()

        finish = floats("finish_time")
        starts = finish
        for name in ("start_time", "submit_time"):
            starts = np.where(np.isnan(floats(name)), starts, floats(name))
        return active_seconds(finish, starts, self.sessions)

    def evaluated_record(self, index: int) -> dict[str, Any]:
        """Row ``index`` of :attr:`evaluated_table` as a journal record (null fields left out)."""
        return row_record(self.evaluated_table, index)

    @property
    def seed(self) -> int | None:
        return (self.config or {}).get("seed")

    @property
    def label(self) -> str:
        """``strategy/evaluator`` from the config, else the directory name."""
        config = self.config or {}
        strategy = (config.get("strategy") or {}).get("name")
        evaluator = (config.get("evaluator") or {}).get("type")
        return f"{strategy}/{evaluator}" if strategy and evaluator else self.path.name

    @property
    def group_key(self) -> str:
        """Equal for runs of one config that differ only in seed and output directory."""
        if self.config is None:
            return str(self.path.resolve().parent)
        rest = {key: value for key, value in self.config.items() if key not in ("seed", "output")}
        return json.dumps(rest, sort_keys=True, default=str)


def _objectives(
    summary: Mapping[str, Any] | None, config: Mapping[str, Any] | None, table: pa.Table
) -> tuple[Objective, ...]:
    specs: Any = (summary or {}).get("objectives") or ((config or {}).get("evaluator") or {}).get("objective")
    if isinstance(specs, str):
        specs = [specs]
    if not specs:  # the objectives of the first successful line that has any (maximised)
        ok = table.filter(pc.equal(table.column("status"), "ok")) if table.num_rows else table
        names = [name for name in ok.column_names if name.startswith("objective.")]
        for i in range(ok.num_rows):
            specs = [name.partition(".")[2] for name in names if ok.column(name)[i].is_valid]
            if specs:
                break
    return tuple(Objective.parse(spec) for spec in specs or ())


def active_seconds(
    finish: np.ndarray, starts: np.ndarray, sessions: Sequence[Sequence[float]] = ()
) -> np.ndarray:
    """Finish times (Unix seconds) as seconds of a run's own elapsed time.

    Seconds since the earliest of ``starts`` (each evaluation's submit time, else its start, else its
    finish), less every pause: for each session (a resume) but the first, the time from the end of the
    one before (its last checkpoint, or its last evaluation's finish when later: a run killed after its
    last checkpoint) to its start is taken off every finish from its start on. The sessions come from the
    run's summary (:class:`natsray.engine.summary.RunSummary`); without them (a run of natsray before
    2026-12-04), the plain time since the first submit. A session recorded first that is not the run's
    first (a run started by an older natsray, resumed by this one) ends its pause at the last finish
    before it.
    """
    finish = np.asarray(finish, dtype=float)
    starts = np.asarray(starts, dtype=float)
    origin = float(np.nanmin(starts)) if np.isfinite(starts).any() else 0.0
    elapsed = finish - origin
    known = np.sort(finish[np.isfinite(finish)])
    end = -math.inf
    for session in sessions:
        try:
            start, stop = float(session[0]), float(session[1])
        except (TypeError, ValueError, IndexError):
            continue  # not a pair of numbers (an edited summary): no pause known there
        before = np.searchsorted(known, start)
        end = max(end, float(known[before - 1]) if before else -math.inf)
        if math.isfinite(end) and start > end:
            elapsed = np.where(finish >= start, elapsed - (start - end), elapsed)
        end = stop
    return elapsed


def _evaluated_rows(table: pa.Table) -> int:
    if "cached" not in table.column_names:
        return table.num_rows
    return table.num_rows - int(pc.sum(pc.fill_null(table.column("cached"), False)).as_py() or 0)


def run_from_parts(
    path: str | Path, table: pa.Table, summary: Mapping[str, Any] | None, config: Mapping[str, Any] | None
) -> RunData:
    """A run read from elsewhere than its directory (a sweep's store): its journal as a flat table,
    its summary and its config as plain data."""
    objectives = _objectives(summary, config, table)
    return RunData(Path(path), table, summary, config, objectives, _sessions(summary))


def _sessions(summary: Mapping[str, Any] | None) -> tuple[tuple[float, float], ...]:
    sessions = (summary or {}).get("sessions")
    return tuple(tuple(session) for session in sessions) if isinstance(sessions, list | tuple) else ()


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` holds one of the :data:`RUN_FILES`."""
    return any((path / name).is_file() for name in RUN_FILES)


def load_run(run_dir: str | Path) -> RunData:
    """Read a run directory (finished, interrupted or still running).

    Raises:
        ValueError: one line naming the file when the directory, journal or summary is unreadable.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise ValueError(f"{path}: no such run directory")
    journal = path / JOURNAL_FILE
    if not journal.exists() and not is_run_dir(path):
        raise ValueError(f"{path}: not a run directory (no {', '.join(RUN_FILES[:-1])} or {RUN_FILES[-1]})")
    table = read_table(journal)
    summary = read_json(path / SUMMARY_FILE)
    sessions = _sessions(summary)  # a stale summary's too: the pauses before its checkpoint stand
    if summary is not None and summary.get("evaluations") not in (None, _evaluated_rows(table)):
        summary = None  # written at a checkpoint the journal has since passed (a killed run): stale
    config = None
    if (path / "config.yaml").is_file():
        try:
            config = yaml.load((path / "config.yaml").read_text(encoding="utf-8"), Loader=_LOADER)
        except yaml.YAMLError as exc:
            raise ValueError(f"{path / 'config.yaml'}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return RunData(path, table, summary, config, _objectives(summary, config, table), sessions)
