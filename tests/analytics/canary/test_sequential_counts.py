"""The Poisson-process count test against savvi's example, its guarantees as properties, and an A/A run.

Oracle: savvi's ``examples/InhomogeneousPoissonProcess.qmd`` (assuncaolfi/savvi, MIT): with
``np.random.seed(1)``, ``rho = [.8, .2]``, ``delta = [1.5, 2]`` and 1,500 single events, the first look
with ``p <= .05`` is n = 210 with p = 0.045579631759249686 and CS(delta_1 - delta_0) =
[0.00464625, 0.75493987] (asserted there to 7 decimals). savvi intersects its CS over looks, so the
upper end at n = 210 is the one reached earlier; from the counts at n = 210 alone ([148, 62]) the p and
the lower end are the same (research note canary-sequential.md).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.canary.sequential_counts import (
    compute_count_p_values,
    compute_count_test,
    compute_count_test_sequence,
)
from analytics.errors import CanaryError

SAVVI_P = 0.045579631759249686
SAVVI_CS = (0.00464625, 0.75493987)


def savvi_example_counts() -> np.ndarray:
    """Cumulative [baseline, canary] counts of savvi's example, drawn as it draws them (legacy seed 1)."""
    rho, delta = np.array([0.8, 0.2]), np.array([1.5, 2.0])
    theta = rho * np.exp(delta) / np.sum(rho * np.exp(delta))
    draws = np.random.RandomState(1).multinomial(1, theta, size=1500)  # = np.random.seed(1); multinomial
    return np.cumsum(draws, axis=0)


def test_savvi_example_stops_at_210_with_its_p_value_and_confidence_sequence() -> None:
    counts = savvi_example_counts()
    looks = compute_count_test_sequence(counts[:, 0], counts[:, 1], canary_share=0.2, alpha=0.05)
    stop = next(n for n, look in enumerate(looks, start=1) if look.p_value <= 0.05)
    assert stop == 210
    assert (looks[stop - 1].baseline_events, looks[stop - 1].canary_events) == (148, 62)
    assert looks[stop - 1].p_value == pytest.approx(SAVVI_P, abs=1e-12)
    assert (looks[stop - 1].lower, looks[stop - 1].upper) == pytest.approx(SAVVI_CS, abs=1e-7)


def test_closed_form_on_counts_148_62_gives_savvis_p_and_lower_end() -> None:
    look = compute_count_test(148, 62, canary_share=0.2, alpha=0.05, k=100)
    assert look.p_value == pytest.approx(SAVVI_P, abs=1e-12)
    assert look.lower == pytest.approx(SAVVI_CS[0], abs=1e-7)
    assert look.log_ratio == pytest.approx(math.log(62 / 148) - math.log(0.2 / 0.8))
    assert look.upper > SAVVI_CS[1]  # this look alone; the sequence's upper end is an earlier look's


def test_vectorised_p_values_equal_the_sequence() -> None:
    counts = savvi_example_counts()[:400]
    looks = compute_count_test_sequence(counts[:, 0], counts[:, 1], canary_share=0.2)
    vectorised = compute_count_p_values(counts[:, 0], counts[:, 1], canary_share=0.2)
    np.testing.assert_allclose(vectorised, [look.p_value for look in looks], rtol=1e-10)


@pytest.mark.parametrize(("baseline", "canary", "lower_finite", "upper_finite"), [
    pytest.param(0, 5, True, False, id="no baseline events: bounded below only"),
    pytest.param(5, 0, False, True, id="no canary events: bounded above only"),
    pytest.param(0, 0, False, False, id="no events: the whole line, p = 1"),
])
def test_an_arm_without_events_leaves_its_side_unbounded(baseline: int, canary: int, lower_finite: bool,
                                                         upper_finite: bool) -> None:
    look = compute_count_test(baseline, canary, canary_share=0.5)
    assert (math.isfinite(look.lower), math.isfinite(look.upper)) == (lower_finite, upper_finite)
    assert look.lower < 0 < look.upper  # a handful of events cannot reject equal rates


@pytest.mark.parametrize(("kwargs", "match"), [
    pytest.param({"baseline_events": -1, "canary_events": 2, "canary_share": 0.5}, "counts", id="negative count"),
    pytest.param({"baseline_events": 1, "canary_events": 2, "canary_share": 0.0}, "shares", id="zero share"),
    pytest.param({"baseline_events": 1, "canary_events": 2, "canary_share": 0.5, "alpha": 1.5}, "alpha",
                 id="alpha above one"),
])
def test_bad_input_is_a_canary_error(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(CanaryError, match=match):
        compute_count_test(**kwargs)


@settings(max_examples=40, deadline=None)
@given(events=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), min_size=1, max_size=25),
       share=st.floats(0.05, 0.95))
def test_p_values_never_rise_and_the_sequence_is_nested_and_agrees_with_the_test(
        events: list[tuple[int, int]], share: float) -> None:
    baseline = np.cumsum([e[0] for e in events])
    canary = np.cumsum([e[1] for e in events])
    looks = compute_count_test_sequence(baseline, canary, canary_share=share, alpha=0.05)
    for before, after in itertools.pairwise(looks):
        assert after.p_value <= before.p_value
        assert before.lower <= after.lower and after.upper <= before.upper  # nested
    for c0, c1 in zip(baseline, canary, strict=True):
        one = compute_count_test(c0, c1, canary_share=share, alpha=0.05)
        # The CS is the set of log ratios the test does not reject: 0 is outside iff p <= alpha.
        assert (one.lower <= 0 <= one.upper) == (one.p_value > 0.05) or math.isclose(one.p_value, 0.05)
        if math.isfinite(one.log_ratio):
            assert one.lower <= one.log_ratio <= one.upper


RUNS, LOOKS, ALPHA = 2000, 60, 0.05


def simulate(rng: np.random.Generator, requests_per_min: int, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """RUNS x LOOKS cumulative error counts per arm: 1 % errors on the baseline, ``ratio`` x on the canary."""
    baseline = rng.binomial(requests_per_min, 0.01, size=(RUNS, LOOKS)).cumsum(axis=1)
    canary = rng.binomial(requests_per_min, 0.01 * ratio, size=(RUNS, LOOKS)).cumsum(axis=1)
    return baseline, canary


@pytest.mark.parametrize("requests_per_min", [100, 1000])
def test_aa_false_rejections_over_60_per_minute_looks_stay_within_alpha(requests_per_min: int) -> None:
    baseline, canary = simulate(np.random.default_rng(20261204 + requests_per_min), requests_per_min, 1.0)
    rejected = (compute_count_p_values(baseline, canary, canary_share=0.5) <= ALPHA).any(axis=1)
    se = math.sqrt(ALPHA * (1 - ALPHA) / RUNS)
    assert rejected.mean() <= ALPHA + 3 * se


def test_doubled_error_ratio_is_detected_within_the_hour() -> None:
    baseline, canary = simulate(np.random.default_rng(7), 1000, 2.0)
    p = compute_count_p_values(baseline, canary, canary_share=0.5)
    assert (p[:, -1] <= ALPHA).mean() >= 0.99
    # The hour's intervals on the log ratio exclude 0 and cover the true ln 2 (checked on 200 runs).
    final = [compute_count_test(b, c, canary_share=0.5) for b, c in zip(baseline[:200, -1], canary[:200, -1],
                                                                         strict=True)]
    assert all(look.lower > 0 for look in final)
    assert np.mean([look.lower <= math.log(2) <= look.upper for look in final]) >= 1 - ALPHA
