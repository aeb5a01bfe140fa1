"""The quantile A/B test against confseq's vectors, and its histogram form against the samples'.

Oracle: confseq ``test/uniform_boundaries_unittest.cpp`` ``QuantileABTest.TestPValue`` (gostevehoward/
confseq, MIT; asserted there to 1e-5): arms 1..1000 and 1+offset..1000+offset, ``t_opt = 100``,
``alpha_opt = .05``; the last three are also in research note canary-sequential.md.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.canary.sequential_quantiles import (
    compute_quantile_ab_p_value,
    compute_quantile_ab_p_value_from_histograms,
)
from analytics.errors import CanaryError

A = np.arange(1, 1001, dtype=np.float64)


@pytest.mark.parametrize(("p", "offset", "expected", "tolerance"), [
    pytest.param(0.5, 70, 0.814704, 1e-5, id="median, offset 70: no evidence"),
    pytest.param(0.5, 85, 0.0838055, 1e-6, id="median, offset 85"),
    pytest.param(0.5, 100, 0.0054947, 1e-6, id="median, offset 100"),
    pytest.param(0.9, 55, 0.0340463, 1e-6, id="p90, offset 55"),
])
def test_quantile_ab_p_value_matches_confseq(p: float, offset: int, expected: float, tolerance: float) -> None:
    assert compute_quantile_ab_p_value(A, A + offset, p, t_opt=100) == pytest.approx(expected, abs=tolerance)


def cumulative(values: np.ndarray, le: np.ndarray) -> np.ndarray:
    """Prometheus-style cumulative bucket counts (values <= le) at each bound."""
    return np.searchsorted(np.sort(values), le, side="right").astype(np.float64)


@pytest.mark.parametrize(("p", "offset"), [(0.5, 85), (0.5, 100), (0.9, 55)])
def test_histogram_with_a_bucket_per_value_equals_the_samples(p: float, offset: int) -> None:
    le = np.append(np.arange(1.0, 1101.0), np.inf)
    from_hist = compute_quantile_ab_p_value_from_histograms(le, cumulative(A, le), le, cumulative(A + offset, le), p)
    assert from_hist == pytest.approx(compute_quantile_ab_p_value(A, A + offset, p), rel=1e-12)


def test_coarse_buckets_are_conservative_but_still_see_a_large_shift() -> None:
    le = np.array([100, 200, 300, 400, 450, 500, 550, 600, 650, 700, 800, 900, 1000, 1200, np.inf])
    b = A + 150
    from_hist = compute_quantile_ab_p_value_from_histograms(le, cumulative(A, le), le, cumulative(b, le), 0.5)
    assert compute_quantile_ab_p_value(A, b, 0.5) <= from_hist < 0.05


def test_arms_may_have_different_bucket_bounds() -> None:
    a_le = np.array([250.0, 500.0, 750.0, np.inf])
    b_le = np.array([300.0, 600.0, 900.0, np.inf])
    equal = compute_quantile_ab_p_value_from_histograms(a_le, cumulative(A, a_le), b_le, cumulative(A, b_le), 0.5)
    assert equal == 1.0


def test_a_tail_only_p99_shift_is_seen_at_p99_and_not_at_the_median() -> None:
    # Lognormal latency with the median unchanged and the log-sd raised .5 -> .613: p99 +30 %.
    rng = np.random.default_rng(99)
    baseline = np.exp(rng.normal(0.0, 0.5, 6000))
    canary = np.exp(rng.normal(0.0, 0.613, 6000))
    assert compute_quantile_ab_p_value(baseline, canary, 0.99, t_opt=1000) < 0.05
    assert compute_quantile_ab_p_value(baseline, canary, 0.5, t_opt=1000) > 0.05


@settings(max_examples=40, deadline=None)
@given(a=st.lists(st.integers(0, 60), min_size=1, max_size=80),
       b=st.lists(st.integers(0, 60), min_size=1, max_size=80),
       bounds=st.sets(st.integers(0, 60), min_size=1, max_size=12),
       p=st.sampled_from([0.1, 0.5, 0.9, 0.99]))
def test_histogram_p_value_never_undercuts_the_samples(a: list[int], b: list[int], bounds: set[int],
                                                       p: float) -> None:
    le = np.append(np.sort(np.array(list(bounds), dtype=np.float64)), np.inf)
    a_arr, b_arr = np.array(a, dtype=np.float64), np.array(b, dtype=np.float64)
    from_hist = compute_quantile_ab_p_value_from_histograms(le, cumulative(a_arr, le), le, cumulative(b_arr, le), p)
    assert from_hist >= compute_quantile_ab_p_value(a_arr, b_arr, p) - 1e-12


@pytest.mark.parametrize(("le", "counts", "match"), [
    pytest.param([1.0, 2.0], [1.0, 2.0], "Inf", id="no +Inf bucket"),
    pytest.param([2.0, 1.0, np.inf], [1.0, 2.0, 3.0], "increase", id="bounds out of order"),
    pytest.param([1.0, 2.0, np.inf], [2.0, 1.0, 3.0], "increase", id="counts not cumulative"),
])
def test_bad_histograms_are_canary_errors(le: list[float], counts: list[float], match: str) -> None:
    good = np.array([1.0, np.inf])
    with pytest.raises(CanaryError, match=match):
        compute_quantile_ab_p_value_from_histograms(le, counts, good, [1.0, 2.0], 0.5)


def test_empty_arm_is_a_canary_error() -> None:
    with pytest.raises(CanaryError, match="both arms"):
        compute_quantile_ab_p_value([], A, 0.5)
