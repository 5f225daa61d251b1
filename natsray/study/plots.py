"""Anytime plots of a sweep: best-so-far report metric, mean and shaded 95% CI across seeds, from the
first x at which every seed has a result.

One panel per dataset (their accuracies live on different scales), one line per grid point.
"""

from __future__ import annotations

import textwrap
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from natsray.study.stats import ci95

__all__ = ["plot_anytime", "preload"]

_DPI = 110


def _metric_label(metric: str) -> str:
    unit = " (%)" if "accuracy" in metric else ""
    return f"{metric}{unit} of the best cell so far"


def preload() -> None:
    """Import what :func:`plot_anytime` uses (most of the cost of a first figure)."""
    import matplotlib.figure
    import matplotlib.ticker  # noqa: F401


def _every_seed(x: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The points at which every seed has a result (a seed with none at all left out): before that, a
    mean and CI over the few seeds that have one would be over another population, and with two
    seeds the CI is 12.7 standard errors wide."""
    values = values[~np.isnan(values).all(axis=1)]
    full = ~np.isnan(values).any(axis=0)
    return (x[full], values[:, full]) if full.any() else (x, values)


def plot_anytime(
    curves: Sequence[tuple[str, str, np.ndarray, np.ndarray]],
    metric: str,
    objective: str,
    by_time: bool,
    path: Path,
) -> Any:
    """Write one anytime figure (and return it).

    Args:
        curves: ``(legend label, dataset, x grid (n_x,), values (n_seeds, n_x))`` per grid point.
        metric: The report metric on the y axis, e.g. ``test_accuracy@200``.
        objective: The searched objective that chooses the best cell, e.g. ``valid_accuracy@12``.
        by_time: x is simulated seconds (else evaluations).
        path: The PNG to write.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    datasets = list(dict.fromkeys(dataset for _, dataset, _, _ in curves))
    fig = Figure(figsize=(4.8 * len(datasets), 4.0), dpi=_DPI)
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    # the seeds with a result (one with none is not drawn)
    seeds = sorted({int((~np.isnan(values).all(axis=1)).sum()) for _, _, _, values in curves})
    for ax, dataset in zip(axes, datasets, strict=True):
        for label, _, x, values in (c for c in curves if c[1] == dataset):
            x, values = _every_seed(x, values)
            with warnings.catch_warnings():  # an all-NaN column (no seed with a result at all) stays NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(values, axis=0)
                half = ci95(values)
            (line,) = ax.plot(x, mean, label=f"{label} (mean)", linewidth=1.4)
            ax.fill_between(
                x, mean - half, mean + half, color=line.get_color(), alpha=0.25, linewidth=0,
                label=f"{label} (95% CI)",
            )  # fmt: skip
        ax.set_title(dataset or "all runs", fontsize=10)
        schedule = f" @{objective.split('@')[1]}" if "@" in objective else ""
        ax.set_xlabel(
            f"simulated training time{schedule} (s)" if by_time else f"evaluations (cells trained{schedule})"
        )
        ax.set_ylabel(_metric_label(metric))
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    seed_text = "/".join(map(str, seeds))
    title = f"Anytime {metric} of the best cell by {objective}, mean and 95% CI over {seed_text} seeds"
    # about 12 characters of 10-pt text per inch: a one-panel figure gets the title on two lines
    fig.suptitle(textwrap.fill(title, width=int(12 * fig.get_figwidth())), fontsize=10)
    fig.tight_layout()
    fig.set_layout_engine(None)  # laid out: else savefig lays it out again, in a draw that renders nothing
    fig.savefig(path, dpi=_DPI)
    return fig
