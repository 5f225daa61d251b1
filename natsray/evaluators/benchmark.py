"""``type: benchmark``: query a NATS-Bench TSS archive directory through nats_bench.

Each actor opens the archive once (fast mode: records load lazily, one file per cell),
keeps only the few floats its metrics need per cell, and frees nats_bench's loaded
objects, so a full sweep of all 15,625 cells stays small (see ``docs/evaluators.md``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from natsray.evaluators.archive import first_record_index, open_archive, read_record, record_file
from natsray.evaluators.base import BaseEvaluator, EvaluatorError, Score
from natsray.evaluators.metrics import MetricQuery, QueryConfig
from natsray.evaluators.table import TableConfig, TableEvaluator
from natsray.evaluators.table_cache import cached_table
from natsray.records import Candidate, Result

__all__ = ["SWEEP_EXPORT_RUNS", "BenchmarkConfig", "BenchmarkEvaluator"]

SWEEP_EXPORT_RUNS = 20
"""A sweep with at least this many runs on one archive config exports the archive's compact table
to the user cache (once: about half a minute to two minutes) instead of opening the archive in
every run (about a second each); smaller sweeps use the cached table only when it exists."""


@dataclass(frozen=True, kw_only=True)
class BenchmarkConfig(QueryConfig):
    """The ``evaluator`` section of ``type: benchmark`` (shared fields: :class:`QueryConfig`).

    Attributes:
        type: ``"benchmark"``.
        archive: The archive directory (``meta.pickle.pbz2`` + ``NNNNNN.pickle.pbz2`` files).
    """

    type: Literal["benchmark"] = "benchmark"
    archive: str

    def __post_init__(self) -> None:
        if self.type != "benchmark":
            raise ValueError(f"type: expected 'benchmark', got {self.type!r}")
        if not isinstance(self.archive, str) or not self.archive:
            raise ValueError(f"archive: expected the archive directory path, got {self.archive!r}")
        super().__post_init__()


class BenchmarkEvaluator(BaseEvaluator):
    """Scores cells with the numbers a NATS-Bench archive holds for them.

    Result metrics carry the requested ``report`` metrics plus ``nats_index``; ``cost_s``
    is the time NATS-Bench's ``simulate_train_eval`` charges (whole training of the
    chosen schedule + one validation pass).
    """

    Config: ClassVar[type] = BenchmarkConfig
    cheap: ClassVar[bool] = True

    def __init__(self, config: BenchmarkConfig, shared: Any = None) -> None:
        super().__init__(config, shared)
        self._query = MetricQuery(config)
        self._keys = self._query.keys
        self._api: Any = None
        self._records: dict[Any, dict[str, np.ndarray]] = {}  # NATS index (, budget) -> record
        self._table: TableEvaluator | None = None

    @classmethod
    def prepare_sweep_shared(cls, config: BenchmarkConfig, runs: int) -> dict[str, Any] | None:
        """For a sweep: the archive's compact table from the user cache
        (:mod:`natsray.evaluators.table_cache`), exported there first when ``runs`` is at least
        :data:`SWEEP_EXPORT_RUNS`; None (each run opens the archive) for a smaller sweep without a
        cached table. The runs' results are those of the archive (the table evaluator's are equal).

        Raises:
            EvaluatorError: the archive or the cache directory is unusable.
        """
        path = cached_table(config.archive, export=runs >= SWEEP_EXPORT_RUNS)
        if path is None:
            return None
        return {"table": str(path), "arrays": TableEvaluator.prepare_shared(_table_config(config, path))}

    def setup(self) -> None:
        """Open the archive and check one record holds every requested metric (with a sweep's
        prepared table: serve that instead)."""
        if self.shared is not None:
            table = TableEvaluator(_table_config(self.config, self.shared["table"]), self.shared["arrays"])
            table.setup()
            self._table, self._has_record = table, self.shared["arrays"]["has_record"]
            return
        api = open_archive(self.config.archive, "evaluator.archive")
        probe = first_record_index(api)
        record = read_record(api, probe, self._keys)
        self._query.require(record, f"archive {self.config.archive} (record {probe:06d} lacks it)")
        self._api, self._records[probe] = api, record

    def per_cell(self) -> bool:
        """In ``seed_mode: mean`` a cell's score does not depend on the candidate's seed."""
        return self.config.seed_mode == "mean"

    def evaluate(self, batch: Sequence[Candidate]) -> list[Result]:
        """Score a batch (opening the archive first when :meth:`setup` was not called)."""
        if self._api is None and self._table is None:
            self.setup()
        return super().evaluate(batch)

    def nats_index(self, arch_str: str) -> int:
        """The NATS index of an arch string, from the archive's meta (after :meth:`setup`)."""
        index = self._api.archstr2index.get(arch_str)
        if index is None:
            raise EvaluatorError(f"{arch_str} is not in the archive's meta file")
        return index

    def score(self, candidate: Candidate) -> Score:
        """Score one cell (calling :meth:`setup` first when nobody did); a candidate ``budget`` (12 or
        200) selects the hp schedule read."""
        if self._api is None and self._table is None:
            self.setup()
        if self._table is not None:
            return self._score_from_table(candidate)
        index = self.nats_index(candidate.arch.to_str())
        budget = candidate.budget
        query = self._query.at(budget)
        key = index if budget is None else (index, budget)
        record = self._records.get(key)
        if record is None:
            record = self._records[key] = read_record(self._api, index, query.keys)
        return query.score(record, candidate.seed, {"nats_index": index})

    def _score_from_table(self, candidate: Candidate) -> Score:
        """The score of a sweep's prepared table, with the archive's error for a missing record."""
        assert self._table is not None
        row = candidate.arch.code
        index = int(self._table.shared["nats_index"][row])
        if index >= 0 and not self._has_record[row]:
            path = record_file(Path(self.config.archive).expanduser(), index)
            raise EvaluatorError(
                f"no record for NATS index {index} in archive {path.parent} ({path.name} is missing)"
            )
        return self._table.score(candidate)


def _table_config(config: BenchmarkConfig, table: str | Path) -> TableConfig:
    """The table evaluator's config serving the same metrics as ``config`` from ``table``."""
    fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(QueryConfig)}
    return TableConfig(table=str(table), **fields)
