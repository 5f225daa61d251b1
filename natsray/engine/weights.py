"""The run's best weights: actors write every trained network, the driver keeps the top ``k``.

With ``save_top_k: k`` the training evaluator writes ``<weights_dir>/<candidate id>.pt`` for
every candidate it trains (``weights_dir`` defaults to ``<run dir>/weights``). The driver
ranks finished results by the first objective (ties: the earlier candidate wins), deletes the
files that fall out of the run-wide top ``k`` as results arrive, and keeps
``<weights_dir>/top_k.json`` (best first: id, arch, value, file) up to date. On resume the
ranking is rebuilt from the journal, so a resumed run keeps the same ``k`` files as an
uninterrupted one. Ray-free; the runner feeds it.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from natsray.engine.checkpoint import atomic_write_json
from natsray.records import Objective

__all__ = ["TOP_K_FILE", "TopKWeights"]

TOP_K_FILE = "top_k.json"
_WEIGHTS_NAME = re.compile(r"^(\d+)\.pt$")


class TopKWeights:
    """Keeps the weights files of the run's ``k`` best candidates by one objective.

    Args:
        directory: Where the actors write ``<candidate id>.pt``.
        k: How many files to keep (>= 1).
        objective: The ranking objective (the run's first).
        meta: Written into ``top_k.json`` (the network's ``C``, ``N``, dataset).
    """

    def __init__(self, directory: str | Path, k: int, objective: Objective, meta: Mapping[str, Any]) -> None:
        self.directory = Path(directory)
        self.k = k
        self.objective = objective
        self.meta = dict(meta)
        self._heap: list[tuple[float, int, str]] = []  # min-heap of (signed value, -id, arch)
        self._changed = False

    def offer(self, record: Mapping[str, Any]) -> None:
        """Rank one finished evaluation (a journal record); delete a file that falls out."""
        if record.get("status") != "ok":
            return
        value = (record.get("objectives") or {}).get(self.objective.name)
        if value is None:
            return
        signed = float(value) if self.objective.maximize else -float(value)
        entry = (signed, -int(record["candidate_id"]), str(record["arch"]))
        if len(self._heap) < self.k:
            heapq.heappush(self._heap, entry)
        elif entry > self._heap[0]:
            _, dropped, _ = heapq.heapreplace(self._heap, entry)
            self._path(-dropped).unlink(missing_ok=True)
        else:
            self._path(-entry[1]).unlink(missing_ok=True)
            return
        self._changed = True

    def rebuild(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Rank a journal's records and delete every ``<id>.pt`` outside the top ``k`` (resume)."""
        for record in records:
            self.offer(record)
        kept = {-entry[1] for entry in self._heap}
        if self.directory.is_dir():
            for path in self.directory.iterdir():
                match = _WEIGHTS_NAME.match(path.name)
                if match and int(match.group(1)) not in kept:
                    path.unlink(missing_ok=True)
        self._changed = True

    def ranking(self) -> list[dict[str, Any]]:
        """The kept candidates, best first."""
        sign = 1.0 if self.objective.maximize else -1.0
        return [
            {
                "rank": rank,
                "candidate_id": -neg_id,
                "arch": arch,
                self.objective.name: sign * signed,
                "file": f"{-neg_id}.pt",
            }
            for rank, (signed, neg_id, arch) in enumerate(sorted(self._heap, reverse=True), start=1)
        ]

    def write_index(self) -> None:
        """Write ``top_k.json`` when the ranking changed since the last write."""
        if not self._changed:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        index = {**self.meta, "objective": str(self.objective), "k": self.k, "top": self.ranking()}
        atomic_write_json(self.directory / TOP_K_FILE, index)
        self._changed = False

    def _path(self, candidate_id: int) -> Path:
        return self.directory / f"{candidate_id}.pt"
