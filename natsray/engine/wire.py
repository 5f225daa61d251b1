"""Compact Ray payloads: batches of candidates and results as plain values, scores sent once.

A Ray call pickles its arguments and return value with cloudpickle, whose per-object hook
(``reducer_override``) runs for every object that is not a plain ``int``, ``float``, ``str``,
``bytes``, ``list``, ``tuple``, ``dict``, ``set`` or ``None``: for each :class:`Candidate`, its
:class:`Arch`, each :class:`Result` and its :class:`Status`. With 64 look-ups per call that was
about 2 ms of a query-mode call on a 2-core machine, more than the call itself. Packed, a batch is
plain values only, pickled by the sender into one ``bytes`` object: Ray's own serializer walks
a list of tuples object by object (about 1 ms for 256 results) but passes ``bytes`` through whole.

Query-mode evaluators answer repeats of a cell with the same score (``BaseEvaluator.per_cell``):
the same ``objectives`` / ``metrics`` dicts. :class:`ScoreEncoder` (in the actor) numbers each
such score the first time it leaves the actor and afterwards sends only its number;
:class:`ScoreDecoder` (in the driver, one per actor incarnation) keeps the numbered scores, so
every result of a cell shares one pair of dicts in the driver too (the journal's line fragments
are cached by their identity) and a call carries a few numbers per result.

Layouts (both ends run the same natsray):

* candidates: the pickle of ``(ids, codes, parents, seeds, budgets)``, five lists of equal
  length, cells as :attr:`Arch.code`;
* results: the pickle of ``(new, rows)``: ``new`` lists ``(number, objectives, metrics, cost_s)``
  of scores sent for the first time, ``rows`` one tuple per result: ``(candidate_id, number, wall_s, worker)``
  for a numbered score, else ``(candidate_id, status value, objectives, metrics, cost_s, wall_s,
  error, worker)``.

The decoder must see an actor's calls in the order the actor ran them (Ray runs the calls of one
caller on one actor in submission order; the runner delivers them in that order). A call whose
results cannot be pickled fails as a whole and numbers nothing; should a reply still go missing,
results naming a score the decoder never saw come back as failed, with that reason.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from typing import Any

from natsray.records import Candidate, Result, Status
from natsray.search_space import Arch

__all__ = ["ScoreDecoder", "ScoreEncoder", "pack_candidates", "unpack_candidates"]

_STATUS = {status.value: status for status in Status}
_EMPTY_OBJECTIVES = Result(0, Status.OK).objectives
_EMPTY_METRICS = Result(0, Status.OK).metrics


_PROTOCOL = pickle.HIGHEST_PROTOCOL


def pack_candidates(batch: Sequence[Candidate]) -> bytes:
    """``batch`` as five plain lists (ids, cell codes, parent-id tuples, seeds, budgets), pickled."""
    columns = (
        [c.id for c in batch],
        [c.arch.code for c in batch],
        [c.parents for c in batch],
        [c.seed for c in batch],
        [c.budget for c in batch],
    )
    return pickle.dumps(columns, protocol=_PROTOCOL)


def unpack_candidates(packed: bytes) -> list[Candidate]:
    """Inverse of :func:`pack_candidates`."""
    ids, codes, parents, seeds, budgets = pickle.loads(packed)
    return [
        Candidate(i, Arch.from_code(code), tuple(up), seed, budget)
        for i, code, up, seed, budget in zip(ids, codes, parents, seeds, budgets, strict=True)
    ]


def _plain(mapping: Any) -> dict[str, Any]:
    return mapping if type(mapping) is dict else dict(mapping)


class ScoreEncoder:
    """Actor side: packs results, numbering the scores of a per-cell evaluator.

    Args:
        shared_scores: True when results of one cell share their dicts (a per-cell evaluator);
            otherwise every result is sent whole.
    """

    def __init__(self, shared_scores: bool) -> None:
        self.shared_scores = shared_scores
        self._numbers: dict[int, int] = {}  # id(objectives) -> number
        self._scores: list[tuple[Any, Any, float]] = []  # number -> (objectives, metrics, cost): pins the ids

    def pack(self, results: Sequence[Result]) -> bytes:
        """``results`` as the pickle of ``(new, rows)`` (layout: module docstring)."""
        new: list[tuple[Any, ...]] = []
        rows: list[tuple[Any, ...]] = []
        for r in results:
            if self.shared_scores and r.status is Status.OK:
                number = self._number(r, new)
                if number is not None:
                    rows.append((r.candidate_id, number, r.wall_s, r.worker))
                    continue
            objectives, metrics = _plain(r.objectives), _plain(r.metrics)
            rows.append(
                (r.candidate_id, r.status.value, objectives, metrics, r.cost_s, r.wall_s, r.error, r.worker)
            )
        try:
            return pickle.dumps((new, rows), protocol=_PROTOCOL)
        except Exception:  # an unpicklable value: the call fails, and its scores stay unnumbered
            for number, *_ in new:
                objectives = self._scores[number][0]
                del self._numbers[id(objectives)]
            del self._scores[len(self._scores) - len(new) :]
            raise

    def _number(self, result: Result, new: list[tuple[Any, ...]]) -> int | None:
        """The number of ``result``'s score (numbered now, and added to ``new``, when first seen);
        None when its objectives dict was numbered with other metrics or cost (sent whole)."""
        key = id(result.objectives)
        number = self._numbers.get(key)
        if number is None:
            number = self._numbers[key] = len(self._scores)
            self._scores.append((result.objectives, result.metrics, result.cost_s))
            new.append((number, _plain(result.objectives), _plain(result.metrics), result.cost_s))
            return number
        _, metrics, cost = self._scores[number]
        return number if metrics is result.metrics and cost == result.cost_s else None


class ScoreDecoder:
    """Driver side: unpacks the results of one actor incarnation (see :class:`ScoreEncoder`)."""

    def __init__(self) -> None:
        self._scores: dict[int, tuple[dict[str, Any], dict[str, Any], float]] = {}

    def unpack(self, packed: bytes) -> list[Result]:
        """The results of one call."""
        new, rows = pickle.loads(packed)
        scores = self._scores
        for number, objectives, metrics, cost in new:
            scores[number] = (objectives, metrics, cost)
        ok = Status.OK
        results = []
        for row in rows:
            if len(row) == 4:
                candidate_id, number, wall_s, worker = row
                score = scores.get(number)
                if score is None:
                    results.append(
                        Result.failed(
                            candidate_id, "evaluator result lost: an earlier call's reply never arrived"
                        )
                    )
                    continue
                results.append(Result(candidate_id, ok, score[0], score[1], score[2], wall_s, None, worker))
            else:
                candidate_id, status, objectives, metrics, cost, wall_s, error, worker = row
                results.append(
                    Result(
                        candidate_id,
                        _STATUS[status],
                        objectives or _EMPTY_OBJECTIVES,
                        metrics or _EMPTY_METRICS,
                        cost,
                        wall_s,
                        error,
                        worker,
                    )
                )
        return results
