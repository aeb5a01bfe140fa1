"""Requests still needed: from the boundary's closed form, and from projected counts for the count test."""

from __future__ import annotations

import math

import pytest

from analytics.canary.boundaries import normal_mixture_bound
from analytics.canary.requests_needed import compute_count_requests_needed, compute_requests_needed
from analytics.canary.sequential_counts import compute_count_test
from analytics.errors import CanaryError


def radius(n: float) -> float:
    """Half-width of a unit-variance mean's CS after n values, boundary tuned at 100 (0.3035 at n=100)."""
    return normal_mixture_bound(n, 0.05, 100, two_sided=True) / n


@pytest.mark.parametrize("n_star", [150, 400, 2500])
def test_the_closed_form_recovers_where_the_radius_reaches_the_gap(n_star: int) -> None:
    # At n = 100 the interval is 0 +- radius(100); a threshold radius(n*) away is cleared at exactly n*.
    needed = compute_requests_needed(n_per_side=100, estimate=0.0, lower=-radius(100), upper=radius(100),
                                     threshold=radius(n_star), rate_per_s=2.0)
    assert needed is not None
    assert needed.n_per_side == n_star
    assert needed.more_per_side == n_star - 100
    assert needed.eta_s == pytest.approx((n_star - 100) / 2.0)


def test_scaling_uses_the_side_facing_the_threshold() -> None:
    # An asymmetric interval: the lower side is 3x the upper, so a threshold below needs more requests.
    above = compute_requests_needed(n_per_side=100, estimate=0.0, lower=-0.9, upper=0.3, threshold=0.2)
    below = compute_requests_needed(n_per_side=100, estimate=0.0, lower=-0.9, upper=0.3, threshold=-0.2)
    assert above is not None and below is not None and above.n_per_side < below.n_per_side


def test_an_interval_already_clear_of_the_threshold_needs_nothing_more() -> None:
    needed = compute_requests_needed(n_per_side=500, estimate=0.5, lower=0.3, upper=0.7, threshold=0.2,
                                     rate_per_s=10.0)
    assert needed is not None and (needed.n_per_side, needed.more_per_side, needed.eta_s) == (500, 0, 0.0)


def test_an_estimate_on_the_threshold_can_never_decide() -> None:
    assert compute_requests_needed(n_per_side=100, estimate=0.2, lower=0.0, upper=0.4, threshold=0.2) is None


def test_bad_interval_is_a_canary_error() -> None:
    with pytest.raises(CanaryError, match="lower <= estimate <= upper"):
        compute_requests_needed(n_per_side=10, estimate=1.0, lower=0.0, upper=0.5, threshold=0.2)


def test_count_projection_is_the_first_request_count_whose_interval_clears_a_relative_threshold() -> None:
    # 300 vs 330 errors on 30,000 requests a side; is the canary's error ratio below +25 %?
    threshold = math.log(1.25)
    needed = compute_count_requests_needed(baseline_events=300, canary_events=330, canary_share=0.5,
                                           n_per_side=30_000, threshold=threshold)
    assert needed is not None and needed.more_per_side > 0
    at = needed.n_per_side / 30_000
    before = (needed.n_per_side - 1) / 30_000
    assert compute_count_test(300 * at, 330 * at, canary_share=0.5).upper < threshold
    assert compute_count_test(300 * before, 330 * before, canary_share=0.5).upper >= threshold


def test_count_projection_agrees_with_the_closed_form_within_a_tenth() -> None:
    look = compute_count_test(300, 330, canary_share=0.5)
    exact = compute_count_requests_needed(baseline_events=300, canary_events=330, canary_share=0.5,
                                          n_per_side=30_000, threshold=0.2)
    shaped = compute_requests_needed(n_per_side=30_000, estimate=look.log_ratio, lower=look.lower,
                                     upper=look.upper, threshold=0.2)
    assert exact is not None and shaped is not None
    assert shaped.n_per_side == pytest.approx(exact.n_per_side, rel=0.1)


def test_count_projection_without_events_on_a_side_is_unknown() -> None:
    assert compute_count_requests_needed(baseline_events=0, canary_events=3, canary_share=0.5,
                                         n_per_side=100, threshold=0.5) is None
