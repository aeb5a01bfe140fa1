"""Kayenta's Mann-Whitney interval: the Hodges-Lehmann shift of x - y and its confidence interval.

Follows spinnaker/kayenta ``kayenta-mannwhitney`` (``MannWhitney.scala``, ``BrentSolver.java``), itself a
port of R's ``wilcox.test(x, y, conf.int=TRUE, exact=FALSE, correct=TRUE)``: the interval ends and the
estimate are the shifts ``mu`` at which the tie-corrected, continuity-corrected normal statistic of the
rank sum of ``x - mu`` among ``(x - mu) ++ y`` equals +z, -z and 0. The roots come from R's ``zeroin``
(Brent's method, tolerance 1e-4) transcribed step for step, not from ``scipy.optimize.brentq``: the
statistic is a step function in ``mu``, so where a solver stops on a flat step depends on its path, and
Kayenta's own tie-outs (``tests/fixtures/upstream/kayenta/mannwhitney_cases.json``) pin R's path. With
heavy ties this can give ``lower > upper`` (upstream's "Large Input" case); that is reproduced, not fixed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm, rankdata

from analytics.errors import CanaryError

ZEROIN_TOLERANCE = 1e-4  # BrentSolver.TOLERANCE, R's wilcox.test tol.root
_ZEROIN_MAX_ITERATIONS = 1000
_EPSILON = 2.220446049250313e-16  # DBL_EPSILON, as BrentSolver hard-codes it
_TINY = 5e-324  # commons-math Precision.equals(f, 0) with 1 ulp: f is 0, -0 or the smallest subnormal


@dataclass(frozen=True, slots=True)
class ShiftInterval:
    """The Hodges-Lehmann estimate of the shift x - y and its two-sided confidence interval."""

    lower: float
    upper: float
    estimate: float
    conf_level: float
    mu_min: float  # the root search bracket: min(x) - max(y) ...
    mu_max: float  # ... to max(x) - min(y)


def compute_wilcoxon_diff(mu: float, quantile: float, x: np.ndarray, y: np.ndarray) -> float:
    """Kayenta's ``wilcoxonDiff``: the corrected normal statistic of the shift ``mu``, minus ``quantile``."""
    nx, ny = float(len(x)), float(len(y))
    pooled = np.concatenate([np.asarray(x, dtype=np.float64) - mu, np.asarray(y, dtype=np.float64)])
    ranks = rankdata(pooled, method="average")
    dz = float(ranks[: len(x)].sum()) - nx * (nx + 1) / 2 - nx * ny / 2
    correction = math.copysign(0.5, dz) if dz != 0 else 0.0
    _, ties = np.unique(pooled, return_counts=True)
    tie_sum = float(np.sum(ties.astype(np.float64) ** 3 - ties))
    sigma = math.sqrt((nx * ny / 12) * ((nx + ny + 1) - tie_sum / ((nx + ny) * (nx + ny - 1))))
    if sigma == 0:
        raise CanaryError("cannot compute a confidence interval when all observations are tied")
    return (dz - correction) / sigma - quantile


def compute_critical_z(conf_level: float) -> float:
    """The lower alpha/2 standard-normal quantile of a two-sided ``conf_level`` interval (negative)."""
    if not 0 < conf_level < 1:
        raise ValueError(f"conf_level must be in (0, 1), got {conf_level!r}")
    return float(norm.ppf((1.0 - conf_level) / 2))


def compute_shift_interval(x: np.ndarray, y: np.ndarray, *, conf_level: float = 0.95) -> ShiftInterval:
    """Kayenta's ``mannWhitneyUTest(x, y, confLevel)``: estimate and interval of x - y (x the canary)."""
    z = compute_critical_z(conf_level)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size == 0 or y.size == 0:
        raise CanaryError(f"cannot compare empty samples (n_x={x.size}, n_y={y.size})")
    if np.isnan(x).any() or np.isnan(y).any():
        raise CanaryError("samples hold NaN: remove or replace them first (Kayenta's nanStrategy)")
    mu_min = float(x.min() - y.max())
    mu_max = float(x.max() - y.min())

    def root(quantile: float) -> float:
        f_lower = compute_wilcoxon_diff(mu_min, quantile, x, y)
        f_upper = compute_wilcoxon_diff(mu_max, quantile, x, y)
        if f_lower <= 0:
            return mu_min
        if f_upper >= 0:
            return mu_max
        return _zeroin(mu_min, mu_max, f_lower, f_upper, lambda mu: compute_wilcoxon_diff(mu, quantile, x, y))

    lower, upper = root(-z), root(z)
    # The estimate skips root()'s end checks: MannWhitney.scala calls the solver directly.
    estimate = _zeroin(
        mu_min, mu_max, compute_wilcoxon_diff(mu_min, 0.0, x, y), compute_wilcoxon_diff(mu_max, 0.0, x, y),
        lambda mu: compute_wilcoxon_diff(mu, 0.0, x, y),
    )
    return ShiftInterval(lower=lower, upper=upper, estimate=estimate, conf_level=conf_level, mu_min=mu_min,
                         mu_max=mu_max)


def _zeroin(ax: float, bx: float, fa: float, fb: float, f: Callable[[float], float]) -> float:
    """R's ``zeroin`` as ``BrentSolver.solve`` writes it: a root of ``f`` in [ax, bx] within 1e-4."""
    a, b, c = ax, bx, ax
    fc = fa
    if abs(fa) <= _TINY:
        return a
    if abs(fb) <= _TINY:
        return b
    for _ in range(_ZEROIN_MAX_ITERATIONS + 1):
        prev_step = b - a
        if abs(fc) < abs(fb):  # keep b the best guess so far
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol_act = 2 * _EPSILON * abs(b) + ZEROIN_TOLERANCE / 2
        new_step = (c - b) / 2
        if abs(new_step) <= tol_act or abs(fb) <= _TINY:
            return b
        if abs(prev_step) >= tol_act and abs(fa) > abs(fb):  # interpolation may be tried
            cb = c - b
            if a == c:  # secant
                t1 = fb / fa
                p = cb * t1
                q = 1.0 - t1
            else:  # inverse quadratic interpolation
                q = fa / fc
                t1 = fb / fc
                t2 = fb / fa
                p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1.0))
                q = (q - 1.0) * (t1 - 1.0) * (t2 - 1.0)
            if p > 0.0:
                q = -q
            else:
                p = -p
            if p < (0.75 * cb * q - abs(tol_act * q) / 2) and p < abs(prev_step * q / 2):
                new_step = p / q
        if abs(new_step) < tol_act:
            new_step = tol_act if new_step > 0 else -tol_act
        a, fa = b, fb
        b += new_step
        fb = f(b)
        if (fb > 0 and fc > 0) or (fb < 0 and fc < 0):
            c, fc = a, fa
    return b  # BrentSolver gives up silently after its iteration budget; so does this
