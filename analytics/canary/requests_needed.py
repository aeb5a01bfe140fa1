"""How many more requests per side until a confidence sequence can decide against a threshold.

A metric is decided once its interval lies wholly on one side of the threshold (a relative threshold
enters as a log ratio, ``ln(1 + r)``). With the estimate holding still, the side of the interval facing
the threshold shrinks as the boundary does, ``u(n) / n`` for ``n`` values per side: the two-sided
normal-mixture boundary in closed form (``boundaries.normal_mixture_bound``), whose shape does not
depend on the variance. So ``n*`` solves ``w(n) u(n*) / n* = |threshold - estimate| * u(n) / n``. For
the count test the counts themselves are projected forward at their current ratio and the exact
interval is solved, so that answer carries no shape approximation. Neither promises the estimate will
stay put: the gate re-asks at every look, which the anytime-valid intervals allow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.optimize import brentq

from analytics.canary.boundaries import normal_mixture_bound
from analytics.canary.sequential_counts import DEFAULT_K, compute_count_test
from analytics.errors import CanaryError

_MAX_DOUBLINGS = 60


@dataclass(frozen=True, slots=True)
class RequestsNeeded:
    """Where the interval is expected to clear the threshold: requests per side, and how many more."""

    n_per_side: int
    more_per_side: int
    eta_s: float | None  # seconds until then at ``rate_per_s`` (None without a rate)


def _needed(n_per_side: int, n_star: float, rate_per_s: float | None) -> RequestsNeeded:
    """The answer for ``n*`` (rounded up), with the ETA at the current rate per side."""
    total = max(n_per_side, math.ceil(n_star - 1e-6))  # the root is found to 1e-9
    more = total - n_per_side
    eta = None if rate_per_s is None or rate_per_s <= 0 else more / rate_per_s
    return RequestsNeeded(n_per_side=total, more_per_side=more, eta_s=eta)


def _facing_gap(estimate: float, lower: float, upper: float, threshold: float) -> tuple[float, float]:
    """The interval's extent towards the threshold and the estimate's distance to it."""
    if threshold > estimate:
        return upper - estimate, threshold - estimate
    return estimate - lower, estimate - threshold


def compute_requests_needed(*, n_per_side: int, estimate: float, lower: float, upper: float,
                            threshold: float, alpha: float = 0.05, t_opt: float = 100.0,
                            rate_per_s: float | None = None) -> RequestsNeeded | None:
    """Requests per side until ``[lower, upper]`` shrinks past ``threshold``; None when it never can."""
    if n_per_side < 1 or not lower <= estimate <= upper:
        raise CanaryError(f"requests needed: need n >= 1 and lower <= estimate <= upper, got n={n_per_side}, "
                          f"[{lower}, {upper}] around {estimate}")
    if not lower <= threshold <= upper:
        return _needed(n_per_side, n_per_side, rate_per_s)
    width, gap = _facing_gap(estimate, lower, upper, threshold)
    if gap <= 0 or not math.isfinite(width):
        return None  # the estimate sits on the threshold, or there is no interval to scale yet

    def shape(n: float) -> float:
        return normal_mixture_bound(n, alpha, t_opt, alpha_opt=alpha, two_sided=True) / n

    target = gap / width * shape(n_per_side)

    def excess(n: float) -> float:
        return shape(n) - target

    far = 2.0 * n_per_side
    for _ in range(_MAX_DOUBLINGS):
        if excess(far) < 0:
            return _needed(n_per_side, brentq(excess, n_per_side, far, xtol=1e-9), rate_per_s)
        far *= 2
    return None


def compute_count_requests_needed(*, baseline_events: float, canary_events: float, canary_share: float,
                                  n_per_side: int, threshold: float, alpha: float = 0.05,
                                  k: float = DEFAULT_K, rate_per_s: float | None = None) -> RequestsNeeded | None:
    """Requests per side until the count test's CS clears ``threshold`` (a log rate ratio), counts scaled."""
    now = compute_count_test(baseline_events, canary_events, canary_share=canary_share, alpha=alpha, k=k)
    if n_per_side < 1:
        raise CanaryError(f"requests needed: need n >= 1, got {n_per_side}")
    if not now.lower <= threshold <= now.upper:
        return _needed(n_per_side, n_per_side, rate_per_s)
    if not math.isfinite(now.log_ratio) or now.log_ratio == threshold:
        return None  # no events on a side yet, or the estimate sits on the threshold

    def excess(factor: float) -> float:
        scaled = compute_count_test(baseline_events * factor, canary_events * factor, canary_share=canary_share,
                                    alpha=alpha, k=k)
        return scaled.upper - threshold if threshold > now.log_ratio else threshold - scaled.lower

    far = 2.0
    for _ in range(_MAX_DOUBLINGS):
        if excess(far) < 0:
            return _needed(n_per_side, n_per_side * brentq(excess, 1.0, far, xtol=1e-9), rate_per_s)
        far *= 2
    return None
