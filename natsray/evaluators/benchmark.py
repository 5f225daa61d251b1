"""``type: benchmark``: query a NATS-Bench TSS archive directory through nats_bench.

Each actor opens the archive once (fast mode: records load lazily, one file per cell),
keeps only the few floats its metrics need per cell, and frees nats_bench's loaded
objects, so a full sweep of all 15,625 cells stays small (see ``docs/evaluators.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from natsray.evaluators.archive import first_record_index, open_archive, read_record
from natsray.evaluators.base import BaseEvaluator, EvaluatorError, Score
from natsray.evaluators.metrics import MetricQuery, QueryConfig
from natsray.records import Candidate, Result

__all__ = ["BenchmarkConfig", "BenchmarkEvaluator"]


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

    def setup(self) -> None:
        """Open the archive and check one record holds every requested metric."""
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
        if self._api is None:
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
        if self._api is None:
            self.setup()
        index = self.nats_index(candidate.arch.to_str())
        budget = candidate.budget
        query = self._query.at(budget)
        key = index if budget is None else (index, budget)
        record = self._records.get(key)
        if record is None:
            record = self._records[key] = read_record(self._api, index, query.keys)
        return query.score(record, candidate.seed, {"nats_index": index})
