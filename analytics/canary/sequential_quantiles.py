"""Anytime-valid test that two arms share a quantile (Howard & Ramdas 2022), from samples or histograms.

A port of confseq's ``QuantileABTest`` (gostevehoward/confseq, ``uniform_boundaries.h``, MIT). For a
candidate common ``p``-quantile ``x``, each arm's count of values at or below ``x`` is a sum of
Bernoulli(``p``) draws under H0, so the beta-binomial mixture (``v = p(1-p)N``, tuned at ``t_opt``
values per arm) is a super-martingale ``G_arm(x)`` for it. H0 holds for *some* ``x``, so the evidence
against it is ``min_x G_a(x) + G_b(x)`` and the p-value ``exp(-min)``, valid at every look. The
always-valid p-value over looks is the running minimum.

From histograms (Prometheus ``le`` buckets, rollup buckets) only the cumulative count at each bound is
known, so on each cell ``(b_j, b_j+1]`` an arm's share at or below ``x`` is only known to lie in
``[C_j, C_j+1] / N``; the minimum of the (convex) log super-martingale over that range bounds
``G_arm`` from below on the whole cell, and the p-value is conservative (never below the samples').
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize_scalar

from analytics.canary.boundaries import compute_beta_binomial_log_mixture
from analytics.errors import CanaryError

DEFAULT_T_OPT = 100  # values per arm where the boundary is tightest (confseq's tests use 100)


def _arm_log_mg(prop_below: NDArray[np.float64], n: int, p: float, t_opt: float,
                alpha_opt: float) -> NDArray[np.float64]:
    """One arm's log super-martingale when a share ``prop_below`` of its ``n`` values is ``<= x``."""
    return compute_beta_binomial_log_mixture((prop_below - p) * n, p * (1 - p) * n, t_opt * p * (1 - p),
                                             p, 1 - p, alpha_opt=alpha_opt, two_sided=True)


def _minimiser(n: int, p: float, t_opt: float, alpha_opt: float) -> float:
    """The share below that minimises the arm's log super-martingale (near ``p``; convex in it)."""
    def objective(a: float) -> float:
        return float(_arm_log_mg(np.asarray(a), n, p, t_opt, alpha_opt))

    return float(minimize_scalar(objective, bounds=(0.0, 1.0), method="bounded",
                                 options={"xatol": 1e-10}).x)


def _check(p: float, t_opt: float, sizes: tuple[int, int]) -> None:
    """Raise ``CanaryError`` on a quantile, tuning or arm size the test cannot use."""
    if not 0 < p < 1 or not t_opt > 0:
        raise CanaryError(f"quantile test needs 0 < p < 1 and t_opt > 0, got p={p}, t_opt={t_opt}")
    if min(sizes) < 1:
        raise CanaryError(f"quantile test needs values on both arms, got {sizes[0]} and {sizes[1]}")


def _arm_g(sorted_values: NDArray[np.float64], x: NDArray[np.float64], p: float, t_opt: float,
           alpha_opt: float) -> NDArray[np.float64]:
    """``G_arm(x)`` at each ``x``: confseq's share below (``<=`` left of the minimum, ``<`` right of it)."""
    n = sorted_values.size
    m = _minimiser(n, p, t_opt, alpha_opt)
    x_lower = sorted_values[max(math.ceil(m * n), 1) - 1]  # order statistics are 1-based in confseq
    x_upper = sorted_values[min(math.floor(m * n) + 1, n) - 1]
    le = np.searchsorted(sorted_values, x, side="right") / n
    lt = np.searchsorted(sorted_values, x, side="left") / n
    prop = np.where(x < x_lower, le, np.where(x > x_upper, lt, m))
    return _arm_log_mg(prop, n, p, t_opt, alpha_opt)


def compute_quantile_ab_p_value(a: ArrayLike, b: ArrayLike, p: float, *, t_opt: float = DEFAULT_T_OPT,
                                alpha_opt: float = 0.05) -> float:
    """Two-sided p-value that arms ``a`` and ``b`` (values) share their ``p``-quantile (confseq's)."""
    a_sorted = np.sort(np.asarray(a, dtype=np.float64))
    b_sorted = np.sort(np.asarray(b, dtype=np.float64))
    _check(p, t_opt, (a_sorted.size, b_sorted.size))
    if np.isnan(a_sorted).any() or np.isnan(b_sorted).any():
        raise CanaryError("quantile test values must not be NaN")
    # Both G are step functions of x that change only at data points, and each is constant between
    # neighbouring points, so the data points, the midpoints between them and +-inf cover every value
    # the sum takes: its minimum over all x, which confseq finds by a scan between the arms' minima.
    points = np.unique(np.concatenate([a_sorted, b_sorted]))
    x = np.concatenate([[-np.inf], points, (points[:-1] + points[1:]) / 2, [np.inf]])
    total = _arm_g(a_sorted, x, p, t_opt, alpha_opt) + _arm_g(b_sorted, x, p, t_opt, alpha_opt)
    return min(1.0, math.exp(-float(total.min())))


def _cell_ranges(le: NDArray[np.float64], cumulative: NDArray[np.float64],
                 cells: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per union cell ``(cells[i-1], cells[i]]``, the arm's count at or below x: its known range."""
    n = cumulative[-1]
    lo_idx = np.searchsorted(le, np.concatenate([[-np.inf], cells[:-1]]), side="right") - 1
    hi_idx = np.searchsorted(le, cells, side="left")
    lo = np.where(lo_idx >= 0, cumulative[np.clip(lo_idx, 0, None)], 0.0)
    hi = np.where(hi_idx < le.size, cumulative[np.clip(hi_idx, None, le.size - 1)], n)
    return lo, hi


def _check_histogram(le: NDArray[np.float64], cumulative: NDArray[np.float64], arm: str) -> None:
    """Raise ``CanaryError`` unless bounds increase, end at +Inf, and counts are cumulative."""
    if le.size == 0 or le.shape != cumulative.shape or le[-1] != np.inf:
        raise CanaryError(f"{arm} histogram needs one cumulative count per bound, the last bound +Inf")
    if (np.diff(le) <= 0).any() or (np.diff(cumulative) < 0).any() or cumulative[0] < 0:
        raise CanaryError(f"{arm} histogram bounds must increase and counts must not decrease")


def compute_quantile_ab_p_value_from_histograms(a_le: ArrayLike, a_cumulative: ArrayLike, b_le: ArrayLike,
                                                b_cumulative: ArrayLike, p: float, *,
                                                t_opt: float = DEFAULT_T_OPT, alpha_opt: float = 0.05) -> float:
    """Conservative two-sided p-value of equal ``p``-quantiles from cumulative bucket counts (``le``)."""
    arms = []
    for name, le_in, cum_in in (("a", a_le, a_cumulative), ("b", b_le, b_cumulative)):
        le, cum = np.asarray(le_in, dtype=np.float64), np.asarray(cum_in, dtype=np.float64)
        _check_histogram(le, cum, name)
        arms.append((le, cum))
    sizes = (int(arms[0][1][-1]), int(arms[1][1][-1]))
    _check(p, t_opt, sizes)
    cells = np.unique(np.concatenate([arms[0][0], arms[1][0]]))  # union bounds, +Inf last
    total = np.zeros(cells.size)
    for (le, cum), n in zip(arms, sizes, strict=True):
        lo, hi = _cell_ranges(le, cum, cells)
        best = np.clip(_minimiser(n, p, t_opt, alpha_opt), lo / n, hi / n)  # convex: clip the minimiser
        total += _arm_log_mg(best, n, p, t_opt, alpha_opt)
    return min(1.0, math.exp(-float(total.min())))
