"""One run directory, read: its journal (as a columnar table and, on demand, as records), summary,
config and objectives.

The read-side model shared by :mod:`.report` (tables) and :mod:`.plots` (figures). The journal is
read once, into an Arrow table (:mod:`.journal_table`); the per-line dicts of :attr:`RunData.records`
are parsed only when something asks for them.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
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

__all__ = ["RUN_FILES", "RunData", "is_run_dir", "load_run", "run_from_parts"]

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
    """

    path: Path
    table: pa.Table
    summary: Mapping[str, Any] | None
    config: Mapping[str, Any] | None
    objectives: tuple[Objective, ...]

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


def _evaluated_rows(table: pa.Table) -> int:
    if "cached" not in table.column_names:
        return table.num_rows
    return table.num_rows - int(pc.sum(pc.fill_null(table.column("cached"), False)).as_py() or 0)


def run_from_parts(
    path: str | Path, table: pa.Table, summary: Mapping[str, Any] | None, config: Mapping[str, Any] | None
) -> RunData:
    """A run read from elsewhere than its directory (a sweep's store): its journal as a flat table,
    its summary and its config as plain data."""
    return RunData(Path(path), table, summary, config, _objectives(summary, config, table))


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
    if summary is not None and summary.get("evaluations") not in (None, _evaluated_rows(table)):
        summary = None  # written at a checkpoint the journal has since passed (a killed run): stale
    config = None
    if (path / "config.yaml").is_file():
        try:
            config = yaml.load((path / "config.yaml").read_text(encoding="utf-8"), Loader=_LOADER)
        except yaml.YAMLError as exc:
            raise ValueError(f"{path / 'config.yaml'}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return RunData(path, table, summary, config, _objectives(summary, config, table))
