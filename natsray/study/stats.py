"""Confidence intervals across seeds."""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["ci95"]


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
    from scipy.stats import t

    values = np.asarray(values, dtype=float)
    n = np.sum(~np.isnan(values), axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "Degrees of freedom <= 0" where n < 2
        std = np.nanstd(values, axis=axis, ddof=1)
        half = t.ppf(0.975, np.maximum(n - 1, 1)) * std / np.sqrt(n)
    return np.where(n > 1, half, 0.0)
