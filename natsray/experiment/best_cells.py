"""The best cells of several runs: identifiers are never averaged, the most frequent one is given.

A run's best cell carries identifiers among its report metrics (:data:`IDENTIFIERS`:
``nats_index``). Across the seeds of one config, a mean of them names no cell, so every comparison
of runs (a sweep's report, :mod:`natsray.study.report`; runs compared or aggregated,
:mod:`natsray.experiment.report`) gives instead the cell that is the best cell of the most runs,
and of how many (:func:`most_frequent`: a tie goes to the better mean report metric, then to the
lower identifier).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from natsray.experiment.run_data import RunData
from natsray.records import Objective

__all__ = [
    "IDENTIFIERS",
    "best_value",
    "describe",
    "maximized",
    "most_frequent",
    "most_frequent_best",
    "report_metric",
]

IDENTIFIERS: tuple[str, ...] = ("nats_index",)
"""Report metrics that identify a cell rather than measure it: never averaged."""


def most_frequent(
    cells: Sequence[Hashable | None], scores: Sequence[float | None], maximize: bool = True
) -> tuple[Hashable, int] | None:
    """The cell that is the best cell of the most seeds, and of how many: a sweep report's
    "most frequent best nats_index".

    A tie in that count goes to the cell whose seeds' mean score is better (higher when
    ``maximize``, else lower; a cell without a finite score ranks below one with), then to the
    lowest cell (the lowest ``nats_index``). The answer depends only on which (cell, score) pairs
    there are, never on their order (a parallel sweep's runs finish in any order): the means are
    ``math.fsum`` sums, correctly rounded whatever the order.

    Args:
        cells: One per seed: its best cell's identifier (``nats_index``), None where it has none
            (left out, as is its score).
        scores: One per seed, in the same order: its best cell's report metric (e.g.
            ``test_accuracy@200``, percent); None or NaN where missing.
        maximize: Whether a higher score is better.

    Returns:
        ``(cell, seeds that found it)``, or None when no seed has a cell.

    Raises:
        ValueError: ``cells`` and ``scores`` differ in length.
    """
    if len(cells) != len(scores):
        raise ValueError(f"most_frequent: {len(cells)} cells but {len(scores)} scores")
    found: dict[Hashable, list[float]] = {}
    counts: dict[Hashable, int] = {}
    for cell, score in zip(cells, scores, strict=True):
        if cell is None:
            continue
        counts[cell] = counts.get(cell, 0) + 1
        values = found.setdefault(cell, [])
        if score is not None and math.isfinite(score):
            values.append(float(score))

    def rank(cell: Hashable) -> tuple[int, bool, float, Hashable]:
        values = found[cell]
        mean = math.fsum(values) / len(values) if values else 0.0
        return (-counts[cell], not values, -mean if maximize else mean, cell)

    if not counts:
        return None
    best = min(counts, key=rank)
    return best, counts[best]


def report_metric(run: RunData) -> str:
    """The run's first report metric that is not an identifier (else its first objective: its value
    is then :func:`best_value`'s ``best_objectives`` entry, as a sweep's anytime curves draw it)."""
    metrics = [m for m in ((run.summary or {}).get("best_metrics") or {}) if m not in IDENTIFIERS]
    return metrics[0] if metrics else run.objectives[0].name


def best_value(
    metric: str, metrics: Mapping[str, Any] | None, objectives: Mapping[str, Any] | None = None
) -> Any:
    """The ``metric`` (a :func:`report_metric`) of a run's best cell: its report metric of that name,
    else its objective of that name (a config without ``report:`` reports its first objective), else
    None.

    Args:
        metrics: The best cell's report metrics (``summary.json`` ``best_metrics``).
        objectives: The best cell's objectives (``summary.json`` ``best_objectives``).
    """
    found = (metrics or {}).get(metric)
    return (objectives or {}).get(metric) if found is None else found


def maximized(metric: str, run: RunData) -> bool:
    """Whether a higher ``metric`` is better: as the run's objective of that name is directed, else
    by natsray's rule for objectives named without a direction (:meth:`Objective.parse`)."""
    for objective in run.objectives:
        if objective.name == metric:
            return objective.maximize
    return Objective.parse(metric.replace(":", "_")).maximize


def most_frequent_best(
    best_metrics: Sequence[Mapping[str, Any] | None],
    run: RunData,
    best_objectives: Sequence[Mapping[str, Any] | None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per identifier, the most frequent best cell of a group of runs (seeds of one config).

    Args:
        best_metrics: Per run, its best cell's report metrics (``summary.json`` ``best_metrics``;
            None or empty for a run without one).
        run: One of the runs: its :func:`report_metric` (and that metric's direction) breaks ties.
        best_objectives: Per run, in the same order, its best cell's objectives (``summary.json``
            ``best_objectives``): the tie-breaking score when the report metric is an objective
            (:func:`best_value`).

    Returns:
        ``{"most frequent best <identifier>": {"value": cell, "seeds": runs that found it, "of":
        len(best_metrics)}}`` for each identifier that some run's best cell has.
    """
    metric = report_metric(run)
    rows = [row or {} for row in best_metrics]
    objectives = list(best_objectives) if best_objectives is not None else [None] * len(rows)
    if len(objectives) != len(rows):
        raise ValueError(
            f"most_frequent_best: {len(rows)} runs' metrics but {len(objectives)} runs' objectives"
        )
    scores = [best_value(metric, row, found) for row, found in zip(rows, objectives, strict=True)]
    found = {}
    for identifier in IDENTIFIERS:
        best = most_frequent([row.get(identifier) for row in rows], scores, maximized(metric, run))
        if best is not None:
            found[f"most frequent best {identifier}"] = {"value": best[0], "seeds": best[1], "of": len(rows)}
    return found


def describe(entry: Mapping[str, Any]) -> str:
    """A :func:`most_frequent_best` entry as text: ``2581 (2 of 5 seeds)``."""
    return f"{entry['value']} ({entry['seeds']} of {entry['of']} seeds)"
