"""The journal record of one finished evaluation, in its three forms: a dict, a JSON line, flat columns.

The record's fields are listed in ``docs/results.md``; :meth:`RecordEncoder.record` defines them.

* :meth:`RecordEncoder.record`: the record as a dict (``json.loads`` of its line gives it back).
* :meth:`RecordEncoder.line`: its line in ``evaluations.jsonl``, built from cached pieces. The part
  made of the objectives, metrics and cost is encoded once per distinct content, so a cell that
  comes back costs an f-string.
* :func:`evaluation_columns`: many records as flat columns (the layout of
  :mod:`natsray.experiment.journal_table`: ``objective.<name>``, ``metric.<name>``). A sweep's
  run that finishes in memory goes to the sweep's columnar store this way and is never encoded
  as text.

An :data:`Entry` is what the scheduler hands the journal for one evaluation; any of the three
forms can be made from it later.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from json.encoder import encode_basestring_ascii
from typing import Any

from natsray.errors import EvaluatorError
from natsray.records import Candidate, Objective, Result, Status, checked_fitness, plain_scores

__all__ = ["MAPPING_PREFIXES", "Entry", "RecordEncoder", "encode_record", "evaluation_columns"]

try:  # the C encoder json.dumps uses, built once instead of per call
    from json.encoder import c_make_encoder as _c_make_encoder
except ImportError:  # pragma: no cover - non-CPython
    _c_make_encoder = None

if _c_make_encoder is not None:
    _ENCODER = _c_make_encoder(None, None, encode_basestring_ascii, None, ": ", ", ", False, False, True)

    def encode_record(record: Mapping[str, Any]) -> str:
        """One journal line (with its newline): ``json.dumps(record) + "\\n"``, faster."""
        return "".join(_ENCODER(record, 0)) + "\n"

else:  # pragma: no cover

    def encode_record(record: Mapping[str, Any]) -> str:
        """One journal line (with its newline)."""
        return json.dumps(record, allow_nan=True) + "\n"


Entry = tuple[Candidate, str, Result, "tuple[float, ...] | None", "Mapping[str, Any] | None", int]
"""One evaluation as the scheduler delivers it: ``(candidate, its arch string, result, fitness,
extra fields of its line (time fields) or None, attempts charged so far)``."""

MAPPING_PREFIXES = {"objectives": "objective", "metrics": "metric"}
"""A record's mapping field -> the prefix of its flat columns (``objectives.x`` -> ``objective.x``)."""

_STATUS = {status: status.value for status in Status}
_ALWAYS = ("candidate_id", "arch", "status", "fitness", "cost_s", "wall_s", "worker", "parents", "seed")
"""The columns of :func:`evaluation_columns` that no entry can leave out."""
_PLAIN_SCALARS = frozenset((float, int, str, type(None)))
"""Value types that :func:`~natsray.records.plain_scores` keeps as they are (bool is left to it)."""
_CACHE = 20_000
"""Encoded per-cell pieces kept (cleared when full; the space has 15,625 cells)."""
_CACHES: dict[tuple[Any, ...], tuple[dict[int, list[Any]], dict[tuple[Any, ...], str]]] = {}
_KEPT_CACHES = 8


class RecordEncoder:
    """Builds the records of one run's evaluations (its objectives give each record's fitness).

    Args:
        objectives: What fitness is computed from (:func:`natsray.records.checked_fitness`).
        source: The evaluator, as the message of a bad objective value names it (``module:Class``).
    """

    def __init__(self, objectives: Sequence[Objective], source: str = "the evaluator") -> None:
        self.objectives = tuple(objectives)
        self.source = source
        self._directions = [(objective.name, objective.maximize) for objective in self.objectives]
        # Shared by the encoders of one process with the same objectives (a sweep's task runs many
        # runs, its evaluator's memo outlives each): id(result.objectives) -> [objectives, metrics,
        # cost_s, fitness, encoded fragment or None, verdict (see checked)], as results of one cell
        # share their dicts.
        key = (self.objectives, source)
        if key not in _CACHES and len(_CACHES) >= _KEPT_CACHES:
            _CACHES.clear()
        self._same, self._fragments = _CACHES.setdefault(key, ({}, {}))
        # self._fragments: by content (results unpickled from actors hold fresh dicts)
        self._wall: tuple[float | None, str | None, str] = (None, None, "")
        self._extra: tuple[Any, str] = (None, "")

    def _entry(self, result: Result) -> list[Any]:
        objectives, metrics, cost = result.objectives, result.metrics, result.cost_s
        same = self._same.get(id(objectives))
        if same is not None and same[0] is objectives and same[1] is metrics and same[2] == cost:
            return same
        if len(self._same) >= _CACHE:
            self._same.clear()
        # the entry pins the dicts, so their ids cannot be reused while it exists
        verdict: Any = None  # once per distinct score: a bad value fails every evaluation that shares it
        fitness = self._plain_fitness(objectives, metrics)
        if fitness is None:  # not all plain: what checked_fitness and plain_scores make of it
            try:
                fitness = checked_fitness(result, self.objectives, self.source)
                if result.status is Status.OK:  # numpy / torch scalars -> the same score with plain numbers
                    verdict = plain_scores(objectives, metrics, self.source)
            except EvaluatorError as exc:
                fitness, verdict = None, f"EvaluatorError: {exc}".splitlines()[0]
        same = self._same[id(objectives)] = [objectives, metrics, cost, fitness, None, verdict]
        return same

    def _plain_fitness(
        self, objectives: Mapping[str, Any], metrics: Mapping[str, Any]
    ) -> tuple[float, ...] | None:
        """The fitness of an OK result whose objectives are all ``float`` (not NaN) and whose values are
        all plain scalars (``float``, ``int``, ``str``, None): what :func:`checked_fitness` gives it, and
        :func:`plain_scores` has nothing to change. None for any other result (the checked path)."""
        if not set(map(type, objectives.values())).union(map(type, metrics.values())) <= _PLAIN_SCALARS:
            return None
        values = []
        for name, maximize in self._directions:
            value = objectives.get(name)
            if type(value) is not float or value != value:  # missing, an int, NaN: the checked path
                return None
            values.append(value if maximize else -value)
        return tuple(values)

    def fitness(self, result: Result) -> tuple[float, ...] | None:
        """The result's fitness, cached per cell: None when it failed or an objective is missing or not
        a number (:meth:`checked` turns such a result into a failed one)."""
        if result.status is not Status.OK:
            return None
        return self._entry(result)[3]

    def checked(self, result: Result) -> tuple[Result, tuple[float, ...] | None]:
        """``(result, its fitness)``; cached per cell. A result whose objectives are missing or not
        numbers (:func:`~natsray.records.checked_fitness`), or whose metrics hold a value that is no
        number (:func:`~natsray.records.plain_scores`), comes back ``FAILED`` with the one-line reason,
        its cost, wall time and worker kept; numpy / torch scalars come back as Python numbers."""
        if result.status is not Status.OK:
            return result, None
        same = self._entry(result)
        verdict = same[5]  # None: as it is; a str: why it failed; else its plain (objectives, metrics)
        if verdict is None:
            return result, same[3]
        if type(verdict) is not str:
            return result._replace(objectives=verdict[0], metrics=verdict[1]), same[3]
        failed = Result(result.candidate_id, Status.FAILED, cost_s=result.cost_s, wall_s=result.wall_s)
        return failed._replace(error=verdict, worker=result.worker), None

    def record(
        self,
        candidate: Candidate,
        result: Result,
        fitness: tuple[float, ...] | None,
        extra: Mapping[str, Any] | None = None,
        attempts: int = 0,
    ) -> dict[str, Any]:
        """The journal record of one finished evaluation (fields: ``docs/results.md``)."""
        metrics = result.metrics
        record: dict[str, Any] = {"candidate_id": candidate.id, "arch": candidate.arch.to_str()}
        nats_index = metrics.get("nats_index")
        if nats_index is not None:
            record["nats_index"] = nats_index
        record["status"] = result.status.value
        record["objectives"] = dict(result.objectives)
        record["fitness"] = None if fitness is None else list(fitness)
        record["metrics"] = dict(metrics)
        record["cost_s"] = result.cost_s
        record["wall_s"] = result.wall_s
        if result.error is not None:
            record["error"] = result.error
        record["worker"] = result.worker
        record["parents"] = list(candidate.parents)
        record["seed"] = candidate.seed
        if candidate.budget is not None:
            record["budget"] = candidate.budget
        if attempts:
            record["attempts"] = attempts
        if extra:
            record.update(extra)
        return record

    def line(self, entry: Entry) -> str:
        """The entry's journal line: ``encode_record(record(...))``, byte for byte, faster."""
        candidate, arch, result, fitness, extra, attempts = entry
        if result.status is not Status.OK or attempts:
            return encode_record(self.record(candidate, result, fitness, extra, attempts))
        same = self._entry(result)
        fragment = same[4]
        if fragment is None:
            fragment = same[4] = self._fragment(result, same[3])
        wall = self._wall
        if result.wall_s != wall[0] or result.worker != wall[1]:  # once per batch
            worker = encode_record({"w": result.worker})[6:-2]
            text = f'"wall_s": {result.wall_s!r}, "worker": {worker}'
            wall = self._wall = (result.wall_s, result.worker, text)
        if extra is not self._extra[0]:
            self._extra = (extra, "".join([f', "{k}": {v!r}' for k, v in extra.items()]) if extra else "")
        parents = candidate.parents
        parents_text = str(parents[0]) if len(parents) == 1 else ", ".join(map(str, parents))
        budget = "" if candidate.budget is None else f', "budget": {int(candidate.budget)}'
        return (
            f'{{"candidate_id": {candidate.id}, "arch": "{arch}", {fragment}, {wall[2]}, '
            f'"parents": [{parents_text}], "seed": {candidate.seed}{budget}{self._extra[1]}}}\n'
        )

    def _fragment(self, result: Result, fitness: tuple[float, ...] | None) -> str:
        """The encoded ``nats_index`` .. ``cost_s`` part of an OK result's line, cached by content."""
        try:
            key: tuple[Any, ...] | None = (result.cost_s, *result.objectives.items(), *result.metrics.items())
            cached = self._fragments.get(key)  # type: ignore[arg-type]
        except TypeError:  # an unhashable metric value
            key, cached = None, None
        if cached is None:
            if len(self._fragments) >= _CACHE:
                self._fragments.clear()
            part: dict[str, Any] = {}
            nats_index = result.metrics.get("nats_index")
            if nats_index is not None:
                part["nats_index"] = nats_index
            part["status"] = result.status.value
            part["objectives"] = dict(result.objectives)
            part["fitness"] = None if fitness is None else list(fitness)
            part["metrics"] = dict(result.metrics)
            part["cost_s"] = result.cost_s
            cached = encode_record(part)[1:-2]
            if key is not None:
                self._fragments[key] = cached
        return cached


def evaluation_columns(entries: Sequence[Entry]) -> dict[str, list[Any]]:
    """The records of ``entries`` as flat columns: name -> one value per entry (None where a record
    lacks the field), in the order the fields first appear in a record.

    Mapping fields are spread: ``objectives["x"]`` becomes column ``objective.x`` and
    ``metrics["y"]`` column ``metric.y``; ``fitness`` and ``parents`` stay lists. Reading the
    records' JSON lines gives the same table
    (:func:`natsray.experiment.journal_table.table_from_columns`).
    """
    n = len(entries)
    columns: dict[str, list[Any]] = {}
    if not n:  # the always-present fields, empty
        return {name: [] for name in _ALWAYS}

    def optional(name: str, values: list[Any]) -> None:
        if values.count(None) != n:
            columns[name] = values

    # transposed in C: entries -> their fields, candidates and results (named tuples) -> theirs
    candidates, archs, results, fitnesses, extras, attempts = zip(*entries, strict=True)
    ids, _, parents, seeds, budgets = zip(*candidates, strict=True)
    _, statuses, objectives, metrics, costs, walls, errors, workers = zip(*results, strict=True)
    columns["candidate_id"] = list(ids)
    columns["arch"] = list(archs)
    optional("nats_index", [mapping.get("nats_index") for mapping in metrics])
    columns["status"] = list(map(_STATUS.__getitem__, statuses))
    for prefix, mappings in (("objective", objectives), ("fitness", None), ("metric", metrics)):
        if mappings is None:
            columns["fitness"] = [None if fitness is None else list(fitness) for fitness in fitnesses]
            continue
        distinct = {id(mapping): mapping for mapping in mappings}  # results of one cell share theirs
        for key in dict.fromkeys(key for mapping in distinct.values() for key in mapping):
            columns[f"{prefix}.{key}"] = [mapping.get(key) for mapping in mappings]
    columns["cost_s"] = list(costs)
    columns["wall_s"] = list(walls)
    optional("error", list(errors))
    columns["worker"] = list(workers)
    columns["parents"] = list(map(list, parents))
    columns["seed"] = list(seeds)
    optional("budget", list(budgets))
    optional("attempts", [attempt or None for attempt in attempts])
    names = {tuple(extra) if extra else () for extra in extras}
    if len(names) == 1 and () not in names:  # every entry has the same extra fields (the usual case)
        rows = zip(*(extra.values() for extra in extras), strict=True)
        for name, values in zip(next(iter(names)), rows, strict=True):
            columns[name] = list(values)
        return columns
    targets: dict[tuple[str, ...], list[list[Any]]] = {}  # the extra fields' columns, by their names
    for row, extra in enumerate(extras):
        if not extra:
            continue
        names_of_row = tuple(extra)
        lists = targets.get(names_of_row)
        if lists is None:
            lists = targets[names_of_row] = [
                columns[name] if name in columns else columns.setdefault(name, [None] * n)
                for name in names_of_row
            ]
        for values, value in zip(lists, extra.values(), strict=True):
            values[row] = value
    return columns
