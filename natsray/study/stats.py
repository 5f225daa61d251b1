"""Statistics across seeds: confidence intervals of means, the most frequent best cell
(:func:`most_frequent`, from :mod:`natsray.experiment.best_cells`, which run comparisons share)."""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np

from natsray.experiment.best_cells import most_frequent

__all__ = ["ci95", "most_frequent", "t_quantile_975"]


@functools.lru_cache(maxsize=1024)
def _t_within(t: float, df: int) -> float:
    """``P(|T| < t)`` for Student's t with ``df`` degrees of freedom (Abramowitz & Stegun 26.7.3-4)."""
    theta = math.atan(t / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    if df % 2:  # odd: (2/pi) (theta + sin cos (1 + 2/3 c2 + 2*4/(3*5) c2^2 + ... up to c2^((df-3)/2)))
        total, term = 0.0, 1.0
        if df > 1:
            total = term
            for k in range(1, (df - 1) // 2):
                term *= c2 * (2 * k) / (2 * k + 1)
                total += term
        return (2 / math.pi) * (theta + math.sin(theta) * math.cos(theta) * total)
    total, term = 1.0, 1.0  # even: sin (1 + 1/2 c2 + 1*3/(2*4) c2^2 + ... up to c2^((df-2)/2))
    for k in range(1, df // 2):
        term *= c2 * (2 * k - 1) / (2 * k)
        total += term
    return math.sin(theta) * total


@functools.lru_cache(maxsize=1024)
def t_quantile_975(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df >= 1`` degrees of freedom (``scipy.stats.t.ppf``'s
    value to 1e-12; bisection on the closed-form CDF, so the report needs no scipy import)."""
    low, high = 0.0, 20.0 if df > 1 else 100.0
    for _ in range(200):
        middle = (low + high) / 2
        if _t_within(middle, df) < 0.95:
            low = middle
        else:
            high = middle
        if high - low < 1e-13:
            break
    return (low + high) / 2


def ci95(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """Half-width of the 95% confidence interval of the mean along ``axis``.

    Student t: ``t(0.975, n-1) * std(ddof=1) / sqrt(n)`` over the non-NaN values; 0 where
    fewer than two values exist.

    Args:
        values: Samples, e.g. ``(n_seeds, n_points)``.
        axis: The seed axis.

    Returns:
        The half-widths, ``values`` with ``axis`` removed.
    """
    values = np.asarray(values, dtype=float)
    n = np.sum(~np.isnan(values), axis=axis)
    dfs = np.maximum(n - 1, 1)
    quantiles = {int(df): t_quantile_975(int(df)) for df in np.unique(dfs)}
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "Degrees of freedom <= 0" where n < 2
        std = np.nanstd(values, axis=axis, ddof=1)
        half = np.vectorize(quantiles.__getitem__, otypes=[float])(dfs) * std / np.sqrt(n)
    return np.where(n > 1, half, 0.0)
