"""The metric vocabulary of the benchmark and table evaluators, and how each is computed.

A metric name is a base name, optionally suffixed ``@12`` / ``@200`` to read the other
hp schedule than the evaluator's ``hp`` (e.g. ``test_accuracy@200`` while searching on hp
12). Semantics follow NATS-Bench's own algorithms:

* ``valid_*``: ``x-valid`` of the run trained for validation (for ``cifar10`` that is
  ``cifar10-valid``, trained on 25k images; for ``cifar100`` / ``ImageNet16-120`` the
  dataset itself).
* ``test_*``: ``cifar10`` ``ori-test`` (trained on 50k), ``x-test`` for the others.
* ``train_*``, ``train_time``, ``epoch_time``: the validation run's training (for
  ``cifar10`` again ``cifar10-valid``, whose time NATS-Bench's ``simulate_train_eval``
  charges).
* ``params`` (M), ``flops`` (M), ``latency`` (s): NATS-Bench's ``get_cost_info``, always
  from the hp-12 record (:data:`COST_HP`) whatever ``hp`` is configured or suffixed: they
  describe the network, not its training, and NATS-Bench's archive holds cells whose hp-200
  record disagrees with the hp-12 one (NATS-Bench issue #36), so there is one source.

Values come from a *cell record*: a flat mapping of raw keys (see :func:`raw_key`) to
per-trial (per-seed) arrays, produced identically by the archive reader and the table.
``seed_mode="mean"`` averages over seeds like ``get_more_info(is_random=False)``;
``"random"`` reads one trial drawn from ``random.Random(candidate.seed)``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, NamedTuple

import numpy as np

from natsray.evaluators.base import EvaluatorError, Score
from natsray.records import EXTRA_CSV_GAP, Objective

__all__ = [
    "COST_HP",
    "COST_QUANTITIES",
    "DATASETS",
    "HPS",
    "HP_EPOCHS",
    "METRICS",
    "SEED_MODES",
    "TRIAL_QUANTITIES",
    "MeanColumns",
    "MetricQuery",
    "QueryConfig",
    "parse_metric",
    "raw_key",
    "raw_keys_for",
    "seeds_key",
    "test_split",
    "valid_run",
]

METRICS: dict[str, str] = {
    "valid_accuracy": "top-1 accuracy (%) on the validation split after the schedule",
    "valid_loss": "loss on the validation split after the schedule",
    "test_accuracy": "top-1 accuracy (%) on the test split after the schedule",
    "test_loss": "loss on the test split after the schedule",
    "train_accuracy": "top-1 accuracy (%) on the training set in the final epoch",
    "train_loss": "loss on the training set in the final epoch",
    "train_time": "seconds of training for the whole schedule",
    "epoch_time": "seconds of training per epoch",
    "params": "parameters (millions)",
    "flops": "FLOPs (millions)",
    "latency": "inference latency (seconds), absent where the archive has none",
}
"""Base metric names and their meaning."""

DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "ImageNet16-120")
HPS: tuple[str, ...] = ("12", "200")
HP_EPOCHS: dict[str, int] = {"12": 12, "200": 200}
SEED_MODES: tuple[str, ...] = ("mean", "random")
TRIAL_QUANTITIES: tuple[str, ...] = ("accuracy", "loss", "time")
"""Per-trial quantities of one split; ``time`` is the split's total seconds over all epochs."""
COST_QUANTITIES: tuple[str, ...] = ("params", "flops", "latency")
COST_HP = "12"
"""The one schedule whose record serves the schedule-independent :data:`COST_QUANTITIES`."""

# base metric -> (which run: "valid" or "test", split ("test" = dataset's test split), quantity)
_TRIAL_SOURCES: dict[str, tuple[str, str, str]] = {
    "valid_accuracy": ("valid", "x-valid", "accuracy"),
    "valid_loss": ("valid", "x-valid", "loss"),
    "test_accuracy": ("test", "test", "accuracy"),
    "test_loss": ("test", "test", "loss"),
    "train_accuracy": ("valid", "train", "accuracy"),
    "train_loss": ("valid", "train", "loss"),
    "train_time": ("valid", "train", "time"),
    "epoch_time": ("valid", "train", "time"),
}


def valid_run(dataset: str) -> str:
    """The NATS-Bench run whose validation accuracy (and training time) a dataset uses."""
    return "cifar10-valid" if dataset == "cifar10" else dataset


def test_split(dataset: str) -> str:
    """The evaluation set that ``test_*`` metrics read."""
    return "ori-test" if dataset == "cifar10" else "x-test"


def raw_key(run: str, hp: str, split: str, quantity: str) -> str:
    """Key of one raw record entry: per trial for a split, one value for a cost quantity.

    ``raw_key("cifar10-valid", "12", "x-valid", "accuracy")`` is ``"cifar10-valid/12/x-valid/accuracy"``;
    cost quantities use split ``"cost"``.
    """
    return f"{run}/{hp}/{split}/{quantity}"


def seeds_key(run: str, hp: str) -> str:
    """Key of a run's trial seeds (sorted, as in the archive)."""
    return f"{run}/{hp}/seeds"


def parse_metric(name: str, extra: Collection[str] = ()) -> tuple[str, str | None]:
    """Split ``name`` into its base metric and hp suffix (None when absent).

    Args:
        name: e.g. ``valid_accuracy``, ``test_accuracy@200``, or an ``extra`` column name.
        extra: Extra metric names (columns of a user CSV); they take no hp suffix.

    Raises:
        ValueError: one line listing the valid names when ``name`` is unknown.
    """
    if name in extra:
        return name, None
    base, sep, hp = name.partition("@")
    if base in METRICS and (not sep or hp in HPS):
        return base, (hp if sep else None)
    valid = ", ".join([*METRICS, *extra])
    raise ValueError(
        f"unknown metric {name!r}: expected one of {valid}, optionally suffixed @{' / @'.join(HPS)}"
    )


def _cost_sources(dataset: str, hp: str) -> tuple[tuple[str, str], ...]:
    """(train-time key, validation-time key) candidates for the cost of one evaluation."""
    run = valid_run(dataset)
    train = raw_key(run, hp, "train", "time")
    valid = raw_key(run, hp, "x-valid", "time")
    if run == dataset:  # cifar100 / ImageNet16-120: x-test is an equal-size half of the same set
        return ((train, valid), (train, raw_key(run, hp, "x-test", "time")))
    return ((train, valid),)


def _metric_keys(base: str, dataset: str, hp: str) -> tuple[str, ...]:
    """Raw keys that one (base metric, dataset, hp) reads, seeds keys included."""
    if base in COST_QUANTITIES:  # schedule-independent: one source whatever hp is asked for
        return (raw_key(dataset, COST_HP, "cost", base),)
    which, split, quantity = _TRIAL_SOURCES[base]
    run = valid_run(dataset) if which == "valid" else dataset
    split = test_split(dataset) if split == "test" else split
    return (seeds_key(run, hp), raw_key(run, hp, split, quantity))


def raw_keys_for(dataset: str, hp: str) -> tuple[str, ...]:
    """Every raw key any metric or the cost of (dataset, hp) can read, in a stable order."""
    keys: dict[str, None] = {}
    for base in METRICS:
        keys.update(dict.fromkeys(_metric_keys(base, dataset, hp)))
    for pair in _cost_sources(dataset, hp):
        keys.update(dict.fromkeys(pair))
    return tuple(keys)


@dataclass(frozen=True, kw_only=True)
class QueryConfig:
    """Fields shared by the benchmark and table evaluator configs.

    Attributes:
        dataset: ``cifar10``, ``cifar100`` or ``ImageNet16-120``.
        hp: Training schedule the search reads: ``"12"`` or ``"200"`` epochs.
        objective: Metric names, each optionally suffixed ``:max`` / ``:min``.
        report: Metric names reported alongside (not optimised).
        seed_mode: ``mean`` over the archive's trials, or one ``random`` trial per
            candidate drawn from ``random.Random(candidate.seed)``.
    """

    dataset: Literal["cifar10", "cifar100", "ImageNet16-120"] = "cifar10"
    hp: Literal["12", "200"] = "12"
    objective: tuple[str, ...] = ("valid_accuracy",)
    report: tuple[str, ...] = ()
    seed_mode: Literal["mean", "random"] = "mean"

    def __post_init__(self) -> None:
        if isinstance(self.hp, int) and not isinstance(self.hp, bool):
            object.__setattr__(self, "hp", str(self.hp))
        for name in ("objective", "report"):
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))
        _check_choice("dataset", self.dataset, DATASETS)
        _check_choice("hp", self.hp, HPS)
        _check_choice("seed_mode", self.seed_mode, SEED_MODES)
        if not self.objective:
            raise ValueError("objective: give at least one metric name")
        for spec in self.objective:
            try:
                self._check_metric(Objective.parse(spec).name)
            except ValueError as exc:
                raise ValueError(f"objective: {exc}") from None
        for name in self.report:
            try:
                self._check_metric(name)
            except ValueError as exc:
                raise ValueError(f"report: {exc}") from None

    def _check_metric(self, name: str) -> None:
        """Validate one metric name (subclasses with user columns accept more)."""
        parse_metric(name)

    @property
    def objectives(self) -> tuple[Objective, ...]:
        """The parsed ``objective`` entries."""
        return tuple(Objective.parse(spec) for spec in self.objective)


def _check_choice(field_name: str, value: object, choices: Sequence[str]) -> None:
    from natsray.config.typed_yaml import not_one_of

    if value not in choices:
        raise ValueError(f"{field_name}: {not_one_of(value, choices)}")


@dataclass(frozen=True, slots=True)
class _Metric:
    name: str
    keys: tuple[str, ...]  # (value key,) for single values, (seeds key, value key) per trial
    divisor: float = 1.0  # epoch_time = train time / epochs


class MeanColumns(NamedTuple):
    """:meth:`MetricQuery.mean_columns`: ``(values, present)`` column pairs over the cells."""

    objectives: dict[str, tuple[np.ndarray, np.ndarray]]
    metrics: dict[str, tuple[np.ndarray, np.ndarray]]
    cost: tuple[np.ndarray, np.ndarray]


@dataclass
class MetricQuery:
    """Turns a cell record into a :class:`Score` for one evaluator config.

    Args:
        config: The evaluator's :class:`QueryConfig`.
        extra: Extra single-value metrics (user CSV columns) -> raw key in the record.
    """

    config: QueryConfig
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [objective.name for objective in self.config.objectives]
        self._objectives = [self._resolve(name) for name in names]
        self._report = [self._resolve(name) for name in self.config.report]
        self._cost_pairs = _cost_sources(self.config.dataset, self.config.hp)
        keys: dict[str, None] = {}
        for metric in (*self._objectives, *self._report):
            keys.update(dict.fromkeys(metric.keys))
        for pair in self._cost_pairs:
            keys.update(dict.fromkeys(pair))
        self._cost_seeds = seeds_key(valid_run(self.config.dataset), self.config.hp)
        self._cost_epochs = HP_EPOCHS[self.config.hp]
        keys[self._cost_seeds] = None
        self.keys: tuple[str, ...] = tuple(keys)
        """Every raw key this query reads (what a reader must extract)."""
        self._seeds_keys = tuple(key for key in self.keys if key.endswith("/seeds"))
        self._at: dict[int, MetricQuery] = {}

    def at(self, budget: int | None) -> MetricQuery:
        """This query read at a candidate's budget: NATS-Bench's ``hp`` 12 or 200 (cached).

        Metrics without an ``@hp`` suffix, the objectives and ``cost_s`` then read that
        schedule; suffixed ones keep theirs. None (no budget) is this query itself.

        Raises:
            EvaluatorError: ``budget`` is not 12 or 200.
        """
        if budget is None:
            return self
        query = self._at.get(budget)
        if query is None:
            hp = str(budget)
            if hp not in HPS:
                raise EvaluatorError(
                    f"budget: {budget!r} is not a NATS-Bench hp; expected one of {', '.join(HPS)} (epochs)"
                )
            query = self if hp == self.config.hp else MetricQuery(replace(self.config, hp=hp), self.extra)
            self._at[budget] = query
        return query

    def all_keys(self) -> tuple[str, ...]:
        """The raw keys of this query at every hp (what serves any candidate budget)."""
        keys = dict.fromkeys(self.keys)
        for budget in HP_EPOCHS.values():
            keys.update(dict.fromkeys(self.at(budget).keys))
        return tuple(keys)

    def _resolve(self, name: str) -> _Metric:
        base, hp = parse_metric(name, self.extra)
        if base in self.extra:
            return _Metric(name, (self.extra[base],))
        hp = hp or self.config.hp
        divisor = float(HP_EPOCHS[hp]) if base == "epoch_time" else 1.0
        return _Metric(name, _metric_keys(base, self.config.dataset, hp), divisor)

    def require(self, record: Mapping[str, np.ndarray], source: str, extra_source: str | None = None) -> None:
        """Check ``record`` holds every requested metric and the cost (e.g. at setup).

        Args:
            record: A probe record.
            source: Where it came from, for the message (e.g. ``archive X (record 000000 lacks it)``).
            extra_source: Where the extra columns came from (e.g. ``extra_csv X (...)``), named for
                those absent instead of ``source``.

        Raises:
            EvaluatorError: one line naming every absent metric and where it was looked for.
        """
        absent: dict[str, list[str]] = {}
        for kind, metrics in (("objective", self._objectives), ("report", self._report)):
            for metric in metrics:
                if self._value(metric, record, None) is None:
                    if extra_source is not None and parse_metric(metric.name, self.extra)[0] in self.extra:
                        absent.setdefault(extra_source, []).append(f"{kind} {metric.name!r}")
                    else:
                        absent.setdefault(source, []).append(f"{kind} {self._describe(metric.name)}")
        if self._cost(record, None) is None:
            absent.setdefault(source, []).append(
                f"cost_s (train and validation times of {self.config.dataset} hp {self.config.hp})"
            )
        if absent:
            parts = [f"{', '.join(names)} not in {where}" for where, names in absent.items()]
            raise EvaluatorError(f"evaluator: {'; '.join(parts)}")

    def _describe(self, name: str) -> str:
        base, hp = parse_metric(name, self.extra)
        if base in self.extra:
            return f"{name!r} (extra column)"
        if base in COST_QUANTITIES:
            return f"{name!r} ({self.config.dataset}, hp {COST_HP} record)"
        return f"{name!r} ({self.config.dataset}, hp {hp or self.config.hp})"

    def score(self, record: Mapping[str, np.ndarray], seed: int, extra_metrics: Mapping[str, float]) -> Score:
        """Score one cell.

        Args:
            record: The cell's raw record (trial arrays trimmed to the cell's trials).
            seed: The candidate's seed (picks the trial in ``random`` seed mode).
            extra_metrics: Reported as-is (e.g. ``nats_index``).

        Raises:
            EvaluatorError: an objective or the cost is not in the record.
        """
        trials = self._trials(record, seed)
        objectives = {}
        for metric in self._objectives:
            value = self._value(metric, record, trials)
            if value is None:  # the cell is named; engine.fail_fast compares the error without it
                if parse_metric(metric.name, self.extra)[0] in self.extra:
                    raise EvaluatorError(f"objective {metric.name!r}: {EXTRA_CSV_GAP}{_cell(extra_metrics)}")
                raise EvaluatorError(
                    f"objective {self._describe(metric.name)} is not in this archive{_cell(extra_metrics)}"
                )
            objectives[metric.name] = value
        metrics: dict[str, float | None] = dict(extra_metrics)
        for metric in self._report:
            metrics[metric.name] = self._value(metric, record, trials)
        cost = self._cost(record, trials)
        if cost is None:
            raise EvaluatorError(
                f"cost_s needs the train and validation times of {self.config.dataset} "
                f"hp {self.config.hp}, not in this archive{_cell(extra_metrics)}"
            )
        return Score(objectives=objectives, metrics=metrics, cost_s=cost)

    def mean_columns(
        self, columns: Mapping[str, np.ndarray], trials: Mapping[str, np.ndarray]
    ) -> MeanColumns:
        """:meth:`score` in ``seed_mode: mean`` for every cell at once, from whole columns.

        Each value equals the one :meth:`score` gives for the cell's record, to the last bit: the
        per-trial means add the present trials left to right, as Python's ``sum`` (and
        NATS-Bench's ``mean``) do.

        Args:
            columns: Every raw key of :attr:`keys` -> its column over ``C`` cells: shape ``(C,)``
                for single values, ``(C, T)`` per trial (float; NaN = absent).
            trials: Each seeds key of :attr:`keys` -> ``(C,)`` int, the cell's trial count: a cell
                reads trials ``0 .. count - 1`` of its rows (the record :meth:`score` gets is cut so).

        Returns:
            Per objective, report metric and the cost, a ``(C,)`` float64 column and a ``(C,)``
            bool column that is False where :meth:`score` has None (an absent value; an absent
            objective or cost is an error there).
        """

        def reduce(seeds: str, key: str) -> tuple[np.ndarray, np.ndarray]:
            column = np.asarray(columns[key], dtype=np.float64)
            count = np.asarray(trials[seeds])
            total = np.zeros(len(column))
            present = np.zeros(len(column), dtype=np.int64)
            for j in range(column.shape[1]):
                value = column[:, j]
                use = (j < count) & ~np.isnan(value)
                total = np.where(use, total + value, total)
                present += use
            with np.errstate(invalid="ignore", divide="ignore"):
                return total / present, present > 0

        def value(metric: _Metric) -> tuple[np.ndarray, np.ndarray]:
            if len(metric.keys) == 1:
                column = np.asarray(columns[metric.keys[0]], dtype=np.float64)
                return column, ~np.isnan(column)
            mean, valid = reduce(*metric.keys)
            return mean / metric.divisor, valid

        cost = cost_valid = None
        for train_key, valid_key in self._cost_pairs:
            train, has_train = reduce(self._cost_seeds, train_key)
            valid, has_valid = reduce(self._cost_seeds, valid_key)
            pair = train + valid / self._cost_epochs
            usable = has_train & has_valid
            if cost is None or cost_valid is None:
                cost, cost_valid = pair, usable
            else:  # the first pair both of whose times the cell has
                cost = np.where(cost_valid, cost, pair)
                cost_valid = cost_valid | usable
        assert cost is not None and cost_valid is not None
        return MeanColumns(
            objectives={metric.name: value(metric) for metric in self._objectives},
            metrics={metric.name: value(metric) for metric in self._report},
            cost=(cost, cost_valid),
        )

    def _trials(self, record: Mapping[str, np.ndarray], seed: int) -> dict[int, int] | None:
        """Trial count -> index of the trial to read, or None in mean mode."""
        if self.config.seed_mode == "mean":
            return None
        counts = {len(record[key]) for key in self._seeds_keys if key in record}
        return {n: random.Random(seed).randrange(n) for n in counts if n > 0}

    @staticmethod
    def _reduce(
        record: Mapping[str, np.ndarray], seeds_key_: str, key: str, trials: dict[int, int] | None
    ) -> float | None:
        values = record.get(key)
        if values is None or len(record.get(seeds_key_, ())) == 0:
            return None
        if trials is not None:
            value = float(values[trials[len(values)]])
            return None if math.isnan(value) else value
        present = [float(v) for v in values if not math.isnan(v)]
        # same summation order as nats_bench's ``mean`` so both give identical floats
        return sum(present) / len(present) if present else None

    def _value(
        self, metric: _Metric, record: Mapping[str, np.ndarray], trials: dict[int, int] | None
    ) -> float | None:
        if len(metric.keys) == 1:
            value = record.get(metric.keys[0])
            return None if value is None or math.isnan(float(value)) else float(value)
        value = self._reduce(record, metric.keys[0], metric.keys[1], trials)
        return None if value is None else value / metric.divisor

    def _cost(self, record: Mapping[str, np.ndarray], trials: dict[int, int] | None) -> float | None:
        """NATS-Bench's ``simulate_train_eval`` time: whole training + one validation pass."""
        seeds = self._cost_seeds
        for train_key, valid_key in self._cost_pairs:
            train = self._reduce(record, seeds, train_key, trials)
            valid = self._reduce(record, seeds, valid_key, trials)
            if train is not None and valid is not None:
                return train + valid / self._cost_epochs
        return None


def _cell(extra_metrics: Mapping[str, Any]) -> str:
    """`` (NATS index N)``: the cell an error of one cell names (empty without its index)."""
    index = extra_metrics.get("nats_index")
    return "" if index is None else f" (NATS index {index})"
