"""Plots of run directories (PNG, matplotlib's object API on the Agg backend, no pyplot state).

Best-so-far curves vs evaluations and vs (simulated) time, the fitness of every evaluation
with a rolling median, the Pareto front of two objectives, and seed-aggregated comparisons.
Every figure has a title, axis labels naming the metric's unit and schedule
(``valid_accuracy@12 (%)``, see :func:`metric_label`), compact tick labels (``12.5k``) and
labelled bands; a metric whose values span more than :data:`LOG_SPAN` (e.g. synflow, up to
~1e49) is drawn on a log scale. Curves over evaluations or time get a y axis fitted to all but
their first :data:`FOCUS_SKIP` of the x range (:func:`focus_y`), so that the first, poor
evaluations do not flatten what follows. Each plot function returns its figure (for tests).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc

from natsray.engine.summary import pareto_front
from natsray.experiment.run_data import RunData
from natsray.records import Objective

__all__ = [
    "FOCUS_SKIP",
    "LOG_SPAN",
    "curves",
    "focus_y",
    "metric_label",
    "plot_best",
    "plot_pareto",
    "plot_population",
    "plot_seeds",
    "rolling_quantiles",
]

_DPI = 100
LOG_SPAN = 1e3
"""Positive values whose max / min exceeds this are plotted on a log scale."""
FOCUS_SKIP = 0.1
"""The share of a curve plot's x range (its start) left out when the y axis is fitted (:func:`focus_y`)."""
FOCUS_MIN_GAIN = 1.5
"""Fit the y axis only where the whole y range is at least this many times the fitted one."""
FOCUS_MIN_SHARE = 0.05
"""... and where the fitted range is at least this share of the whole (at most 20 times magnified): a
1,000-evaluation quickstart whose best moved 0.25 points after its start, in a 12-point climb,
is shown whole."""
_UNITS = {
    "accuracy": "%",
    "loss": "cross-entropy",
    "time": "s",
    "params": "M",
    "flops": "MFLOPs",
    "latency": "s",
}
_PROXIES = ("synflow", "snip", "grad_norm", "jacov", "naswot")
_QUERY_EVALUATORS = ("benchmark", "table")


def metric_label(name: str, config: Mapping[str, Any] | None) -> str:
    """Axis label of a metric: name, the schedule it was read at, and its unit.

    ``valid_accuracy`` of a benchmark/table run with ``hp: "12"`` -> ``valid_accuracy@12 (%)``;
    of a training run -> ``valid_accuracy (%, 3 epochs)``; ``params`` -> ``params (M)``
    (schedule-independent); a proxy -> ``synflow (at init.)``; a user CSV column as is.
    """
    from natsray.evaluators.metrics import COST_QUANTITIES, METRICS

    evaluator = (config or {}).get("evaluator") or {}
    base = name.partition("@")[0]
    details = []
    if base in METRICS:
        details.append(_UNITS.get(base) or _UNITS[base.rsplit("_", 1)[-1]])
        schedule_free = base in COST_QUANTITIES
        if evaluator.get("type") in _QUERY_EVALUATORS and "@" not in name and not schedule_free:
            name = f"{name}@{evaluator.get('hp', '12')}"
        elif evaluator.get("type") == "train" and evaluator.get("epochs") and not schedule_free:
            details.append(f"{evaluator['epochs']} epochs")
    elif base in _PROXIES:
        details.append("at init.")
    return f"{name} ({', '.join(details)})" if details else name


def _compact(value: float, _position: Any = None) -> str:
    """Tick text that stays short: 17500 -> 17.5k, 2e6 -> 2M, 0.25 -> 0.25."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.4g}{suffix}"
    return f"{value:.4g}"


def _style(axis: Any, values: np.ndarray | None = None, *, x_values: np.ndarray | None = None) -> None:
    """Grid, few compact ticks, and a log y-axis for positive values spanning many decades."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    axis.grid(alpha=0.3)
    axis.xaxis.set_major_locator(MaxNLocator(nbins=5))
    axis.xaxis.set_major_formatter(FuncFormatter(_compact))
    if values is not None and _spans_decades(values):
        axis.set_yscale("log")
        axis.set_ylabel(axis.get_ylabel() + ", log scale")
    else:
        axis.yaxis.set_major_locator(MaxNLocator(nbins=6))
        axis.yaxis.set_major_formatter(FuncFormatter(_compact))


def focus_y(axis: Any, series: Sequence[tuple[np.ndarray, np.ndarray]], skip: float = FOCUS_SKIP) -> bool:
    """Fit ``axis``'s y limits to the ``series`` drawn on it, leaving out the start of each one's x range.

    Anytime curves start with a few poor evaluations (a best-so-far accuracy from 10 % to 94 %, say);
    an axis that holds them flattens the rest of the search into a line. Each ``(x, y)`` series (a
    line, a band edge; ``x`` ascending) contributes its points from ``x_min + skip * (x_max - x_min)``
    of its own x range on, and the value it holds there (a step curve's level at that x), so a short
    run counts over its own end and a level held across the cut counts too. The limits become the
    range of those values plus 5 % of it on each side; the curves' start then enters from the
    axis's edge. Nothing changes on a log-scale axis, where the whole y range is less than
    :data:`FOCUS_MIN_GAIN` times the fitted one, or where the fitted range is under
    :data:`FOCUS_MIN_SHARE` of the whole (a search that barely moves after its start is shown whole,
    not magnified).

    Returns:
        Whether the limits were set.
    """
    if axis.get_yscale() != "linear":
        return False
    late, every = [], []
    for x, y in series:
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        finite = np.isfinite(x) & np.isfinite(y) if x.shape == y.shape else np.zeros(0, dtype=bool)
        x, y = x[finite], y[finite]
        if not x.size:
            continue
        start = x[0] + skip * (x[-1] - x[0])  # x ascending: from the point that holds at the cut on
        late.append(y[np.searchsorted(x, start, side="right") - 1 :])
        every.append(y)
    if not late:
        return False
    values, whole = np.concatenate(late), np.concatenate(every)
    low, high = float(values.min()), float(values.max())
    span, full = high - low, float(whole.max() - whole.min())
    if span <= 0 or full < FOCUS_MIN_GAIN * span or span < FOCUS_MIN_SHARE * full:
        return False
    axis.set_ylim(low - 0.05 * span, high + 0.05 * span)
    return True


def _spans_decades(values: np.ndarray) -> bool:
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    return bool(finite.size) and bool((finite > 0).all()) and finite.max() / finite.min() > LOG_SPAN


def _values(run: RunData, objective: Objective) -> np.ndarray:
    """Each evaluation's raw objective value, NaN where it failed or lacks it."""
    values = run.column(f"objective.{objective.name}")
    ok = _ok(run)
    return values if ok.all() else np.where(ok, values, np.nan)


def _ok(run: RunData) -> np.ndarray:
    table = run.evaluated_table
    if not table.num_rows:
        return np.zeros(0, dtype=bool)
    return pc.fill_null(pc.equal(table.column("status"), "ok"), False).to_numpy(zero_copy_only=False)


def _best_so_far(values: np.ndarray, maximize: bool) -> np.ndarray:
    """Running best of ``values`` (NaN until the first finite value)."""
    filled = np.where(np.isnan(values), -np.inf if maximize else np.inf, values)
    best = np.maximum.accumulate(filled) if maximize else np.minimum.accumulate(filled)
    return np.where(np.isinf(best), np.nan, best)


def _clock(run: RunData) -> tuple[np.ndarray, str]:
    """Each evaluation's finish time: simulated if recorded, else the run's own wall seconds since its
    first submit (the time it was stopped before a resume left out: :meth:`RunData.wall_clock`)."""
    simulated = _first_of(run, "sim_finish", "sim_finish_time")
    if simulated.size and not np.isnan(simulated).any():
        return simulated, "simulated seconds"
    return run.wall_clock(), "wall seconds"


def _first_of(run: RunData, *names: str) -> np.ndarray:
    """Per evaluation, the first of the fields ``names`` it has (NaN where it has none)."""
    values = run.column(names[0])
    for name in names[1:]:
        values = np.where(np.isnan(values), run.column(name), values)
    return values


def curves(run: RunData) -> dict[str, np.ndarray | str]:
    """Best-so-far of the first objective (raw units) against evaluation count and against time.

    Computed once per :class:`RunData` (kept in its ``__dict__``, as ``functools.cached_property``
    does), since every plot of a run draws from it.
    """
    cached = run.__dict__.get("_curves")
    if cached is None:
        cached = run.__dict__["_curves"] = _curves(run)
    return cached


def _curves(run: RunData) -> dict[str, np.ndarray | str]:
    objective = run.objectives[0]
    values = _values(run, objective)
    times, clock = _clock(run)
    order = np.argsort(times, kind="stable")
    return {
        "evaluations": np.arange(1, len(values) + 1),
        "values": values,
        "best": _best_so_far(values, objective.maximize),
        "times": times[order],
        "best_by_time": _best_so_far(values[order], objective.maximize),
        "clock": clock,
    }


def _figure(ncols: int = 1) -> tuple[Any, Any]:
    """A figure and its row of axes; matplotlib's object API renders with Agg, no pyplot state."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5 * ncols, 3.4), dpi=_DPI)
    return fig, fig.subplots(1, ncols, squeeze=False)[0]


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    # a legend below the axes (:func:`_legend`) is outside the figure: the saved image grows to hold it
    fig.savefig(path, dpi=_DPI, bbox_inches="tight" if fig.legends else None)


ROLLING_POINTS = 1000
"""The rolling median and band of :func:`plot_population` are computed at up to this many evenly
spaced evaluations (every evaluation of a shorter run); a 450-pixel-wide axis shows no more."""


def rolling_quantiles(
    values: np.ndarray, window: int, quantiles: Sequence[float] = (25, 50, 75), points: int = ROLLING_POINTS
) -> tuple[np.ndarray, np.ndarray]:
    """Quantiles of the trailing ``window`` of ``values`` (NaN and infinite values left out: an
    infinite one cannot be drawn, and interpolating next to it gives NaN; linear interpolation as
    ``np.percentile``; the first windows are shorter), at up to ``points`` evenly spaced positions.

    Args:
        values: Shape ``(n,)``.
        window: Trailing window length (>= 1).
        quantiles: Percentiles in [0, 100].
        points: Most positions to compute.

    Returns:
        ``(positions, q)``: 0-based indices of the last value of each window, shape ``(m,)`` with
        ``m = min(n, points)``, and ``q`` of shape ``(len(quantiles), m)`` (NaN for an all-NaN window).
    """
    n = len(values)
    ends = np.unique(np.linspace(0, n - 1, min(n, points)).round().astype(int)) if n else np.zeros(0, int)
    result = np.full((len(quantiles), ends.size), np.nan)
    for j, end in enumerate(ends):
        chunk = values[max(0, end + 1 - window) : end + 1]
        chunk = chunk[np.isfinite(chunk)]
        if chunk.size:
            result[:, j] = np.percentile(chunk, quantiles)
    return ends, result


def plot_population(run: RunData, path: Path) -> Any:
    """Every evaluation's first objective with a rolling median and its 25-75 % band."""
    data = curves(run)
    values, index = data["values"], data["evaluations"]
    objective = run.objectives[0]
    fig, (axis,) = _figure()
    # markers of one Line2D: Agg stamps them (a scatter's PathCollection draws 100k paths one by one)
    axis.plot(index, values, "o", ms=2.4, mew=0, alpha=0.4, label="evaluation")
    window = max(5, len(values) // 20)
    ends, (q25, q50, q75) = rolling_quantiles(values, window)
    ok = ~np.isnan(q50)
    if ok.any():
        x = index[ends][ok]
        # over the evaluations (a band's default layer is under them: hidden by a dense run's dots)
        axis.fill_between(
            x, q25[ok], q75[ok], color="C1", alpha=0.35, zorder=3, label="25-75 % of the window"
        )
        axis.plot(x, q50[ok], color="C1", zorder=4, label=f"rolling median ({window})")
    axis.set_xlabel("evaluation (count)")
    _integer_ticks(axis.xaxis)
    axis.set_ylabel(metric_label(objective.name, run.config))
    title = f"{run.path.name}: {objective.name} of every evaluation"
    infinite = int(np.isinf(values).sum())
    if infinite:
        title += f"\n({infinite} evaluations with an infinite value not shown)"
    axis.set_title(title, fontsize=9)
    _style(axis, values)
    axis.legend(fontsize=7, loc="best" if len(values) < 5000 else "lower right")  # "best" is slow on big data
    _save(fig, path)
    return fig


def plot_pareto(run: RunData, path: Path) -> Any:
    """Evaluated cells and the Pareto front of the first two objectives (the rest named in the title).

    The front is found among all cells, infinite values included (``naswot``'s ``-inf``); cells with
    an infinite value cannot be drawn and are counted in the title instead. NaN values are left out.
    """
    first, second = run.objectives[:2]
    every: dict[str, tuple[float, float]] = {}
    archs = run.evaluated_table.column("arch").to_pylist()
    for arch, x, y in zip(archs, _values(run, first).tolist(), _values(run, second).tolist(), strict=True):
        if not (math.isnan(x) or math.isnan(y)):
            every.setdefault(arch, (x, y))
    fitness = [
        (arch, (x if first.maximize else -x, y if second.maximize else -y)) for arch, (x, y) in every.items()
    ]
    points = {arch: p for arch, p in every.items() if math.isfinite(p[0]) and math.isfinite(p[1])}
    front = sorted((points[a] for a, _ in pareto_front(fitness) if a in points), key=lambda p: p[0])
    fig, (axis,) = _figure()
    if points:
        axis.scatter(*zip(*points.values(), strict=True), s=6, alpha=0.3, label="evaluated cells")
    if front:
        axis.plot(
            *zip(*front, strict=True), "o-", drawstyle="steps-pre", color="C3", ms=3, label="Pareto front"
        )
    if points:
        axis.legend(fontsize=7)
    axis.set_xlabel(f"{metric_label(first.name, run.config)}, {_direction(first)}")
    axis.set_ylabel(f"{metric_label(second.name, run.config)}, {_direction(second)}")
    title = f"{run.path.name}: Pareto front"
    left_out = [str(objective) for objective in run.objectives[2:]]
    if left_out:
        title += f" of 2 of {len(run.objectives)} objectives\n(not shown: {', '.join(left_out)})"
    infinite = len(every) - len(points)
    if infinite:
        title += f"\n({infinite} cells with an infinite value not shown)"
    axis.set_title(title, fontsize=9)
    _style(axis, None)
    _save(fig, path)
    return fig


def _direction(objective: Objective) -> str:
    return "higher is better" if objective.maximize else "lower is better"


def _on_grid(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], grid: np.ndarray) -> np.ndarray:
    """Each step curve (best-so-far, held after its last point) sampled on ``grid``: shape (runs, grid)."""
    rows = []
    for x, y in zip(xs, ys, strict=True):
        at = np.searchsorted(x, grid, side="right") - 1
        rows.append(
            np.where(at >= 0, y[np.clip(at, 0, None)], np.nan) if x.size else np.full(grid.shape, np.nan)
        )
    return np.array(rows)


def _steps(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The points of a best-so-far step curve where it changes, plus its last point: the same
    ``where="post"`` drawing from a few dozen points instead of one per evaluation."""
    if y.size < 3:
        return x, y
    keep = np.ones(y.size, dtype=bool)
    keep[1:] = ~((y[1:] == y[:-1]) | (np.isnan(y[1:]) & np.isnan(y[:-1])))
    keep[-1] = True
    return x[keep], y[keep]


MANY_RUNS = 8
"""A group with more runs than this is drawn as thin translucent runs under its median (:func:`plot_best`)."""


def _outline() -> list[Any]:
    from matplotlib import patheffects

    return [patheffects.withStroke(linewidth=3.5, foreground="white")]


def plot_best(runs: Sequence[RunData], groups: Mapping[str, list[int]], path: Path) -> Any:
    """Every run's best-so-far curve vs evaluations and vs time, coloured by group.

    A group of more than :data:`MANY_RUNS` runs draws them thin and translucent (opacity
    ``MANY_RUNS / runs``, at least 0.05) under its median curve, so that hundreds of runs read as a
    distribution rather than a solid block.
    """
    data = [curves(run) for run in runs]
    fig, axes = _figure(2)
    drawn: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {0: [], 1: []}
    for color, (name, members) in enumerate(groups.items()):
        many = len(members) > MANY_RUNS
        alpha, width = (max(0.05, MANY_RUNS / len(members)), 0.6) if many else (1.0, 1.0)
        for k, (axis, x_key, y_key) in enumerate(
            zip(axes, ("evaluations", "times"), ("best", "best_by_time"), strict=True)
        ):
            for n, i in enumerate(members):
                label = (
                    (f"{name}, each run (n={len(members)})" if many else name) if n == 0 and k == 0 else None
                )
                x, y = _steps(data[i][x_key], data[i][y_key])
                axis.step(x, y, where="post", color=f"C{color}", lw=width, alpha=alpha, label=label)
                drawn[k].append((np.asarray(x, dtype=float), np.asarray(y, dtype=float)))
            if many:
                xs = [np.asarray(data[i][x_key], dtype=float) for i in members]
                grid = np.unique(np.concatenate(xs))
                grid = grid[np.isfinite(grid)]
                if grid.size:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        median = np.nanmedian(_on_grid(xs, [data[i][y_key] for i in members], grid), axis=0)
                    axis.step(
                        grid, median, where="post", color=f"C{color}", lw=2, zorder=5,
                        path_effects=_outline(), label=f"{name}, median" if k == 0 else None,
                    )  # fmt: skip
    what = "best so far, every run" if len(runs) > 1 else f"{runs[0].path.name}: best so far" if runs else ""
    _label_compare(axes, runs, data, what)
    for k, axis in enumerate(axes):
        focus_y(axis, drawn[k])
    _save(fig, path)
    return fig


def plot_seeds(runs: Sequence[RunData], groups: Mapping[str, list[int]], path: Path) -> Any:
    """Per group, the mean best-so-far over its runs with a ±1 std band, cut to the range the runs
    themselves span at each point (a std band around a skewed spread, e.g. one seed far behind the
    others, would otherwise reach values that no run had)."""
    data = [curves(run) for run in runs]
    fig, axes = _figure(2)
    drawn: list[list[tuple[np.ndarray, np.ndarray]]] = [[], []]
    for color, (name, members) in enumerate(groups.items()):
        for k, (axis, x_key, y_key) in enumerate(
            zip(axes, ("evaluations", "times"), ("best", "best_by_time"), strict=True)
        ):
            xs = [np.asarray(data[i][x_key], dtype=float) for i in members]
            grid = np.unique(np.concatenate(xs))
            grid = grid[np.isfinite(grid)]
            if not grid.size:
                continue
            table = _on_grid(xs, [data[i][y_key] for i in members], grid)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                mean, std = np.nanmean(table, axis=0), np.nanstd(table, axis=0)
                lower = np.fmax(mean - std, np.nanmin(table, axis=0))
                upper = np.fmin(mean + std, np.nanmax(table, axis=0))
            first = k == 0
            drawn[k].append((grid, mean))
            axis.step(
                grid,
                mean,
                where="post",
                color=f"C{color}",
                label=f"{name} mean (n={len(members)})" if first else None,
            )
            if len(members) < 2:  # one run: no spread to draw, and no empty legend entry
                continue
            band = f"{name} ±1 std" if first else None
            drawn[k] += [(grid, lower), (grid, upper)]
            axis.fill_between(grid, lower, upper, step="post", color=f"C{color}", alpha=0.2, label=band)
    _label_compare(axes, runs, data, "best so far, mean over seeds")
    for axis, series in zip(axes, drawn, strict=True):
        focus_y(axis, series)
    _save(fig, path)
    return fig


def _integer_ticks(axis: Any) -> None:
    """Whole-number ticks on a count axis (no "evaluation 2.5" on a short run)."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _label_compare(
    axes: Sequence[Any], runs: Sequence[RunData], data: Sequence[Mapping[str, Any]], what: str
) -> None:
    axes[0].set_xlabel("evaluations (count)")
    _integer_ticks(axes[0].xaxis)
    axes[1].set_xlabel(
        " / ".join(
            f"{clock} (s)".replace(" seconds", " time") for clock in sorted({str(d["clock"]) for d in data})
        )
    )
    labels = sorted({metric_label(run.objectives[0].name, run.config) for run in runs})
    values = np.concatenate([np.asarray(d["best"], dtype=float) for d in data]) if data else None
    for axis, x_name in zip(axes, ("evaluations", "time"), strict=True):
        axis.set_ylabel("best " + " / ".join(labels))
        axis.set_title(f"{what}, vs {x_name}", fontsize=9)
        _style(axis, values)
    _legend(axes)


LEGEND_INSIDE = 40
"""Legends with at most this many characters in their longest entry, and 6 entries, are drawn inside
the first axis; longer ones (groups named by many settings) below both axes, as a figure legend."""


def _legend(axes: Sequence[Any]) -> None:
    """The first axis's entries as its legend, or below the axes when they are long or many."""
    handles, labels = axes[0].get_legend_handles_labels()
    if not labels:
        return
    if len(labels) <= 6 and max(map(len, labels)) <= LEGEND_INSIDE:
        axes[0].legend(fontsize=7)
        return
    columns = 2 if max(map(len, labels)) <= 2 * LEGEND_INSIDE else 1
    axes[0].figure.legend(
        handles,
        labels,
        fontsize=7,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncols=columns,
        frameon=False,
    )
