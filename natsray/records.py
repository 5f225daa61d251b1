"""Plain immutable records that cross every boundary: driver <-> actor, memory <-> journal.

``Candidate`` is what a strategy proposes, ``Result`` what an evaluator returns for it,
``Objective`` names a metric and whether larger is better. All are immutable values of
plain data: cheap to pickle for Ray and trivial to write as JSON. ``Candidate`` and
``Result`` are created once per evaluation, so they are ``NamedTuple``s (about five times
cheaper to build than a frozen dataclass, which matters when an evaluation is a look-up).
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from natsray.errors import EvaluatorError
from natsray.search_space import Arch

__all__ = [
    "EXTRA_CSV_GAP",
    "Candidate",
    "Objective",
    "Result",
    "Status",
    "candidate_seed",
    "candidate_seeds",
    "checked_fitness",
    "checked_number",
    "config_mismatch",
    "failure_kind",
    "fitness_of",
    "missing_objectives",
    "plain_scores",
]


_MASK64 = (1 << 64) - 1


def candidate_seed(run_seed: int, candidate_id: int) -> int:
    """The seed of one candidate's evaluation: independent of which actor runs it.

    The SplitMix64 output function (Steele, Lea & Flood 2014) applied to a mix of the run
    seed and the candidate id, top 32 bits: well spread for consecutive ids, about 1 µs.

    Returns:
        An int in ``0..2**32-1``.
    """
    z = (run_seed * 0x9E3779B97F4A7C15 + (candidate_id + 1) * 0xD1B54A32D192ED03) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) >> 32


def candidate_seeds(run_seed: int, first_id: int, count: int) -> list[int]:
    """``[candidate_seed(run_seed, i) for i in range(first_id, first_id + count)]``, vectorised
    (numpy's uint64 arithmetic wraps modulo 2**64 as the mask does): for strategies that number
    candidates consecutively, a block of seeds costs about what one :func:`candidate_seed` does."""
    ids = np.arange(first_id + 1, first_id + count + 1, dtype=np.uint64)
    z = np.uint64((run_seed * 0x9E3779B97F4A7C15) & _MASK64) + ids * np.uint64(0xD1B54A32D192ED03)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return ((z ^ (z >> np.uint64(31))) >> np.uint64(32)).tolist()


class Candidate(NamedTuple):
    """One proposed evaluation.

    Attributes:
        id: Sequential id within the run (0, 1, 2, ...).
        arch: The cell to evaluate.
        parents: Ids of the candidates it was bred from (empty for random samples).
        seed: Seed for everything random in its evaluation (see :func:`candidate_seed`).
        budget: Fidelity of its evaluation, or None for the evaluator's configured one: the
            benchmark / table evaluators read NATS-Bench's ``hp`` (12 or 200 epochs), the
            training evaluator trains this many epochs (``docs/evaluators.md``). The run's
            cache keys on (cell, budget): a cell evaluated at one budget is evaluated again
            at another.
    """

    id: int
    arch: Arch
    parents: tuple[int, ...] = ()
    seed: int = 0
    budget: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {"id": self.id, "arch": self.arch.to_str(), "parents": list(self.parents), "seed": self.seed}
        if self.budget is not None:
            data["budget"] = self.budget
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Candidate:
        budget = data.get("budget")
        return cls(
            int(data["id"]),
            Arch.from_str(data["arch"]),
            tuple(data["parents"]),
            int(data["seed"]),
            None if budget is None else int(budget),
        )


class _EmptyMapping(dict):  # type: ignore[type-arg]
    """A read-only empty dict: the default objectives/metrics of a :class:`Result`.

    A dict (so JSON encodes it) that refuses mutation (so sharing it is safe) and pickles.
    """

    def _read_only(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("Result defaults are read-only; pass your own dict")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _read_only  # type: ignore[assignment]
    __ior__ = _read_only  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return (_EmptyMapping, ())


_EMPTY: Mapping[str, Any] = _EmptyMapping()
_MISSING = object()


class Status(str, enum.Enum):
    """Outcome of one evaluation: failures come back as data, never as exceptions."""

    OK = "ok"
    FAILED = "failed"


class Result(NamedTuple):
    """What an evaluator returns for one candidate.

    Attributes:
        candidate_id: The :attr:`Candidate.id` it answers.
        status: ``OK`` or ``FAILED``.
        objectives: Objective name -> raw value (direction is given by :class:`Objective`).
        metrics: Report-only metrics (e.g. ``test_accuracy@200``).
        cost_s: Seconds of (real or simulated) training this evaluation stands for.
        wall_s: Real seconds the evaluator spent on it.
        error: One-line reason when ``status`` is ``FAILED``.
        worker: Which actor/process produced it.
    """

    candidate_id: int
    status: Status
    objectives: Mapping[str, float] = _EMPTY
    metrics: Mapping[str, float | None] = _EMPTY
    cost_s: float = 0.0
    wall_s: float = 0.0
    error: str | None = None
    worker: str | None = None

    @classmethod
    def failed(
        cls, candidate_id: int, error: str, *, wall_s: float = 0.0, worker: str | None = None
    ) -> Result:
        return cls(candidate_id, Status.FAILED, error=error, wall_s=wall_s, worker=worker)

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    def to_dict(self) -> dict[str, Any]:
        data = self._asdict()
        data["status"] = self.status.value
        data["objectives"] = dict(self.objectives)
        data["metrics"] = dict(self.metrics)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Result:
        return cls(
            candidate_id=int(data["candidate_id"]),
            status=Status(data["status"]),
            objectives=dict(data.get("objectives", {})),
            metrics=dict(data.get("metrics", {})),
            cost_s=float(data.get("cost_s", 0.0)),
            wall_s=float(data.get("wall_s", 0.0)),
            error=data.get("error"),
            worker=data.get("worker"),
        )


_MINIMISED_WORDS = ("loss", "params", "flops", "latency", "time", "cost", "error")


@dataclass(frozen=True, slots=True)
class Objective:
    """A metric to optimise and its direction.

    Parsed from config as ``name`` or ``name:max`` / ``name:min``. Without a suffix the
    direction follows the name: losses, params, FLOPs, latencies, times are minimised,
    everything else (accuracies, zero-cost proxy scores) maximised.
    """

    name: str
    maximize: bool = True

    @classmethod
    def parse(cls, spec: str) -> Objective:
        name, sep, mode = spec.partition(":")
        if not name:
            raise ValueError(f"objective {spec!r} has no metric name")
        if sep:
            if mode not in ("max", "min"):
                raise ValueError(f"objective {spec!r}: direction must be ':max' or ':min', got {mode!r}")
            return cls(name, mode == "max")
        return cls(name, not any(word in name for word in _MINIMISED_WORDS))

    def __str__(self) -> str:
        return f"{self.name}:{'max' if self.maximize else 'min'}"


def fitness_of(result: Result, objectives: Sequence[Objective]) -> tuple[float, ...] | None:
    """The result as a tuple to MAXIMISE (minimised objectives negated); None if it failed.

    An objective that is missing or NaN also gives None: NaN has no order, so no strategy may rank it.
    (A run's engine fails such a fresh result instead, :func:`checked_fitness`; this reads journal
    records, including those of older runs that kept them as ``ok``.)
    ``inf`` / ``-inf`` (e.g. ``naswot`` of a cell whose output ignores its input) are kept: they
    are ordered, and selection treats them as extremes.
    """
    if not result.ok:
        return None
    values = []
    for objective in objectives:
        value = result.objectives.get(objective.name)
        if value is None:
            return None
        number = float(value)
        if math.isnan(number):
            return None
        values.append(number if objective.maximize else -number)
    return tuple(values)


def checked_number(value: Any, key: str, source: str, *, finite: bool) -> float:
    """``value``, a metric an evaluator returned, as a float; what is wrong with it otherwise.

    A number is an ``int`` or ``float`` or a scalar that converts to one (numpy, torch), not a
    ``bool``, ``str`` or ``bytes``; NaN is refused, and so is ``inf`` / ``-inf`` when ``finite``.

    Args:
        value: The value returned.
        key: How the message names it: ``"'loss'"``, ``"objective 'accuracy'"``.
        source: Who returned it (an evaluator class or a scoring function, as ``module:name``).
        finite: Refuse ``inf`` / ``-inf`` too.

    Raises:
        EvaluatorError: one line, e.g. ``mylab.evals:Convs returned objective 'convs' = 'high' (str),
            expected a number``.
    """
    if isinstance(value, float):
        number = value
    else:
        try:
            if isinstance(value, bool | str | bytes):
                raise TypeError
            number = float(value)
        except (TypeError, ValueError):
            raise EvaluatorError(
                f"{source} returned {key} = {value!r} ({type(value).__name__}), expected a number"
            ) from None
    if math.isnan(number) or (finite and math.isinf(number)):
        expected = "a finite number" if finite else "a number, not NaN"
        raise EvaluatorError(f"{source} returned {key} = {number}, expected {expected}")
    return number


_NOT_RETURNED = " did not return objective"
_NO_COST = " (evaluator.cost_metric)"


def missing_objectives(source: str, names: Sequence[str], returned: Mapping[str, Any]) -> EvaluatorError:
    """The error of an evaluation that lacks objectives the run needs, naming what it did return:
    ``myscore:score_cell did not return objective 'accuracy' (it returned: loss, params)``."""
    plural = "s" if len(names) > 1 else ""
    given = ", ".join(map(str, returned)) or "nothing"
    return EvaluatorError(
        f"{source}{_NOT_RETURNED}{plural} {', '.join(map(repr, names))} (it returned: {given})"
    )


def missing_cost(source: str, key: str) -> EvaluatorError:
    """The error of an evaluation that lacks its ``evaluator.cost_metric`` key."""
    return EvaluatorError(f"{source} returned no {key!r}{_NO_COST}")


_CELL_NAMES = re.compile(r"NATS index \d+|\|(?:[a-z0-9_]+~\d\|)+(?:\+\|(?:[a-z0-9_]+~\d\|)+)*")
"""How an error line names a cell: the benchmark and table evaluators' ``(NATS index N)``, an arch string."""
EXTRA_CSV_GAP = "the evaluator's extra_csv has no value for this cell"
"""In the error of a cell an ``extra_csv`` objective column lacks (a partially measured latency CSV)."""


def failure_kind(error: str) -> str:
    """A failed evaluation's one-line error with the cell it names masked (``NATS index N`` and arch
    strings become ``<cell>``): ``engine.fail_fast`` takes failures that differ only in their cell, e.g.
    the cells an ``extra_csv`` lacks, for the same failure."""
    return _CELL_NAMES.sub("<cell>", error)


def config_mismatch(error: str) -> str | None:
    """What config key a failed evaluation's one-line error blames, when the evaluator's result did not
    match the config (a config mismatch, bad input): ``"evaluator.objective"`` for an objective it did
    not return (:func:`missing_objectives`), ``"evaluator.cost_metric"`` for a missing cost key,
    ``"evaluator.extra_csv"`` for an objective column the ``extra_csv`` lacks for the cell; else None."""
    if not error.startswith("EvaluatorError: "):
        return None
    if EXTRA_CSV_GAP in error:
        return "evaluator.extra_csv"
    if _NOT_RETURNED in error and " (it returned: " in error:
        return "evaluator.objective"
    if error.endswith(_NO_COST):
        return "evaluator.cost_metric"
    return None


def checked_fitness(result: Result, objectives: Sequence[Objective], source: str) -> tuple[float, ...] | None:
    """:func:`fitness_of` of a fresh result, whose objectives must all be there and be numbers.

    The engine calls it once per distinct score (results of one cell share their dicts), so an
    evaluator's bad value makes its evaluation ``FAILED`` with this message instead of stopping the
    run. ``inf`` / ``-inf`` are allowed (ordered: e.g. ``naswot`` of a cell whose output ignores its
    input); metrics are not checked (NaN marks a value the benchmark lacks).

    Args:
        result: An evaluator's result (None is returned for a failed one).
        objectives: The run's objectives.
        source: The evaluator, for the message (``module:Class``).

    Raises:
        EvaluatorError: one line naming the objective, its value and type, and ``source``
            (:func:`checked_number`, :func:`missing_objectives`).
    """
    if not result.ok:
        return None
    given = result.objectives
    values = []
    for objective in objectives:
        value = given.get(objective.name, _MISSING)
        if value is _MISSING:
            raise missing_objectives(source, [o.name for o in objectives if o.name not in given], given)
        number = checked_number(value, f"objective {objective.name!r}", source, finite=False)
        values.append(number if objective.maximize else -number)
    return tuple(values)


_PLAIN = (float, int, str, list, tuple, dict)
"""Value types a journal line encodes (with None); bool is an int."""


def plain_scores(
    objectives: Mapping[str, Any], metrics: Mapping[str, Any], source: str
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """A score's objectives and metrics with numpy / torch scalars as Python numbers (``.item()``);
    None when every value is plain already (what JSON encodes: numbers, strings, lists, dicts, None).

    Raises:
        EvaluatorError: a value that is neither plain nor a scalar, e.g. ``mylab.evals:Convs returned
            metric 'loss' = tensor([0.1, 0.2]) (Tensor), expected a number``.
    """
    if all(value is None or isinstance(value, _PLAIN) for value in (*objectives.values(), *metrics.values())):
        return None
    return _plain(objectives, "objective", source), _plain(metrics, "metric", source)


def _plain(mapping: Mapping[str, Any], kind: str, source: str) -> dict[str, Any]:
    plain = {}
    for key, value in mapping.items():
        if value is not None and not isinstance(value, _PLAIN):
            try:
                value = value.item()
            except Exception:
                value = None
            if not isinstance(value, int | float):
                given = mapping[key]
                raise EvaluatorError(
                    f"{source} returned {kind} {key!r} = {given!r} ({type(given).__name__}), "
                    "expected a number"
                )
        plain[key] = value
    return plain
