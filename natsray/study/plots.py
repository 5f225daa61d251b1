"""Anytime plots of a sweep: best-so-far report metric, mean and shaded 95% CI across seeds, from the
first x at which every seed has a result.

One panel per dataset (their accuracies live on different scales), one line per grid point; each
panel's y axis is fitted to all but the start of its x range (:func:`natsray.experiment.plots.focus_y`).
"""

from __future__ import annotations

import textwrap
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from natsray.experiment.plots import focus_y, metric_label
from natsray.study.stats import ci95

__all__ = ["plot_anytime", "preload"]

_DPI = 110
LEGEND_INSIDE_GROUPS = 3
LEGEND_INSIDE_CHARS = 32
"""A panel's legend is drawn inside it (lower right) for up to this many grid points whose entries
are up to this many characters long; below it otherwise."""
_TIME_LABELS = {
    "simulated": "simulated training time{schedule} (s)",
    "wall": "wall-clock time (s, pauses left out)",
    "mixed": "simulated or wall-clock time (s)",
}


def _metric_label(metric: str) -> str:
    """``test_accuracy@200 (%) of the best cell so far``, ``params (M) ...``: units as in runs' plots."""
    return f"{metric_label(metric, None)} of the best cell so far"


def preload() -> None:
    """Import what :func:`plot_anytime` uses (most of the cost of a first figure)."""
    import matplotlib.figure
    import matplotlib.ticker  # noqa: F401


def _every_seed(x: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The points at which every seed has a result (a seed with none at all left out): before that, a
    mean and CI over the few seeds that have one would be over another population, and with two
    seeds the CI is ±12.7 standard errors."""
    values = values[~np.isnan(values).all(axis=1)]
    full = ~np.isnan(values).any(axis=0)
    return (x[full], values[:, full]) if full.any() else (x, values)


def plot_anytime(
    curves: Sequence[tuple[str, str, np.ndarray, np.ndarray]],
    metric: str,
    objective: str,
    by_time: bool,
    path: Path,
    clock: str = "simulated",
) -> Any:
    """Write one anytime figure (and return it).

    Args:
        curves: ``(legend label, dataset, x grid (n_x,), values (n_seeds, n_x))`` per grid point.
        metric: The report metric on the y axis, e.g. ``test_accuracy@200``.
        objective: The searched objective that chooses the best cell, e.g. ``valid_accuracy@12``.
        by_time: x is seconds (else evaluations).
        path: The PNG to write.
        clock: The runs' clock for ``by_time``: ``simulated`` (simulated training time), ``wall``
            (each run's own wall-clock time, the time it was stopped before a resume left out) or
            ``mixed`` (simulated where a run has a simulated clock, else wall-clock).
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    datasets = list(dict.fromkeys(dataset for _, dataset, _, _ in curves))
    fig = Figure(figsize=(4.8 * len(datasets), 4.0), dpi=_DPI)
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    # the seeds with a result (one with none is not drawn)
    seeds = sorted({int((~np.isnan(values).all(axis=1)).sum()) for _, _, _, values in curves})
    below = False  # a legend below its panel
    inside: list[tuple[Any, list[tuple[np.ndarray, np.ndarray, np.ndarray]], str]] = []  # legends to place
    for ax, dataset in zip(axes, datasets, strict=True):
        drawn: list[tuple[np.ndarray, np.ndarray]] = []
        shapes: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (x, low, high): what a legend covers
        ends: list[tuple[float, float]] = []  # each mean's first and last value: where the legend fits
        for label, _, x, values in (c for c in curves if c[1] == dataset):
            x, values = _every_seed(x, values)
            with warnings.catch_warnings():  # an all-NaN column (no seed with a result at all) stays NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(values, axis=0)
                half = ci95(values)
            (line,) = ax.plot(x, mean, label=f"{label} (mean)", linewidth=1.4)
            drawn.append((x, mean))
            shapes.append((x, mean, mean))
            finite = mean[np.isfinite(mean)]
            if finite.size:
                ends.append((float(finite[0]), float(finite[-1])))
            if values.shape[0] < 2:
                continue  # one seed: no interval to draw, and no legend entry for it
            with warnings.catch_warnings():  # cut to the seeds' own range: a mean is never outside it
                warnings.simplefilter("ignore", RuntimeWarning)
                lower = np.fmax(mean - half, np.nanmin(values, axis=0))
                upper = np.fmin(mean + half, np.nanmax(values, axis=0))
            ax.fill_between(
                x, lower, upper, color=line.get_color(), alpha=0.25, linewidth=0, label=f"{label} (95% CI)",
            )  # fmt: skip
            shapes.append((x, lower, upper))
            if values.shape[0] >= 3:  # two seeds' CI is ±12.7 standard errors: the axis fits the means
                drawn += [(x, lower), (x, upper)]
        focus_y(ax, drawn)  # the first evaluations (a few % of the x range) would flatten the rest
        ax.set_title(dataset or "all runs", fontsize=10)
        schedule = f" @{objective.split('@')[1]}" if "@" in objective else ""
        ax.set_xlabel(
            _TIME_LABELS.get(clock, _TIME_LABELS["simulated"]).format(schedule=schedule)
            if by_time
            else f"evaluations (cells trained{schedule})"
        )
        ax.set_ylabel(_metric_label(metric))
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.xaxis.set_major_formatter(FuncFormatter(_tick))
        ax.grid(alpha=0.3)
        labels = ax.get_legend_handles_labels()[1]
        if len(labels) > 2 * LEGEND_INSIDE_GROUPS or max(map(len, labels), default=0) > LEGEND_INSIDE_CHARS:
            below = True  # many or long names (many axes): below the panel, once it is laid out
        else:
            # the curves end high where the metric rises (accuracy), low where it falls (params, latency)
            falling = sum(last < first for first, last in ends) > len(ends) / 2
            inside.append((ax, shapes, "upper right" if falling else "lower right"))
    seed_text = "/".join(map(str, seeds))
    seed_word = "seed" if seeds == [1] else "seeds"
    title = f"Anytime {metric} of the best cell by {objective}, mean and 95% CI over {seed_text} {seed_word}"
    # about 12 characters of 10-pt text per inch: a one-panel figure gets the title on two lines
    fig.suptitle(textwrap.fill(title, width=int(12 * fig.get_figwidth())), fontsize=10)
    fig.tight_layout()
    fig.set_layout_engine(None)  # laid out: else savefig lays it out again, in a draw that renders nothing
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    if not below:  # inside each panel, in the first corner where it covers no curve nor band
        below = not all(_place_legend(ax, shapes, first, renderer) for ax, shapes, first in inside)
    if below:  # under each panel's x label; the saved image grows to hold them
        for ax in axes:
            if ax.get_legend() is not None:
                ax.get_legend().remove()
            bottom = ax.xaxis.label.get_window_extent(renderer).y0
            y = ax.transAxes.inverted().transform((0, bottom))[1]
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, y - 0.02), frameon=False)
    fig.savefig(path, dpi=_DPI, bbox_inches="tight" if below else None)
    return fig


_CORNERS = ("lower right", "upper right", "lower left", "upper left")


def _place_legend(
    ax: Any, shapes: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], first: str, renderer: Any
) -> bool:
    """Put ``ax``'s legend in the first corner, trying ``first`` first, where it covers none of ``shapes``
    (``(x, low, high)``: a curve, ``low`` = ``high``, or a band); False (no legend left) when it covers
    one in every corner."""
    for loc in (first, *(corner for corner in _CORNERS if corner != first)):
        legend = ax.legend(fontsize=7, loc=loc)
        if not _covers(ax, legend.get_window_extent(renderer), shapes):
            return True
        legend.remove()
    return False


def _covers(ax: Any, box: Any, shapes: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> bool:
    """Whether the display-space ``box`` holds a point of any curve or band of ``shapes``: each sampled at
    its own x values and at 512 points between (a line crosses a box between its points)."""
    to_display = ax.transData.transform
    for x, low, high in shapes:
        ok = np.isfinite(x) & np.isfinite(low) & np.isfinite(high)
        if not ok.any():
            continue
        x, low, high = x[ok], low[ok], high[ok]
        xs = np.union1d(x, np.linspace(x[0], x[-1], 512))
        bottom = to_display(np.column_stack([xs, np.interp(xs, x, low)]))
        top = to_display(np.column_stack([xs, np.interp(xs, x, high)]))
        across = (bottom[:, 0] >= box.x0) & (bottom[:, 0] <= box.x1)
        if (across & (np.fmax(bottom[:, 1], box.y0) <= np.fmin(top[:, 1], box.y1))).any():
            return True
    return False


def _tick(value: float, _position: Any = None) -> str:
    """x tick text: thousands separated (``120,000``), small values with their decimals (``0.02``)."""
    return f"{value:,.0f}" if value == 0 or abs(value) >= 100 else f"{value:.3g}"
