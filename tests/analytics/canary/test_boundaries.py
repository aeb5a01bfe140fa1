"""Time-uniform boundaries against confseq's own vectors (test/uniform_boundaries_unittest.cpp).

confseq's targets come "from a reference implementation in R" and are asserted there to 1e-5; the
values below are copied from that file (gostevehoward/confseq, MIT) and from research note
canary-sequential.md, never from this code.
"""

from __future__ import annotations

import pytest

from analytics.canary.boundaries import (
    best_rho,
    compute_bernoulli_confidence_interval,
    compute_beta_binomial_log_mixture,
    compute_normal_log_mixture,
    normal_mixture_bound,
)
from analytics.errors import CanaryError

V_OPT, ALPHA = 100, 0.05


def test_best_rho_matches_confseq() -> None:
    assert best_rho(V_OPT, ALPHA) == pytest.approx(12.60056, abs=1e-5)


@pytest.mark.parametrize(("two_sided", "log_mixture", "bound"), [
    pytest.param(True, -0.6510052, 30.35209, id="two-sided normal mixture at v=100, alpha=.05, v_opt=100"),
    pytest.param(False, -0.06502391, 27.66071, id="one-sided normal mixture at v=100, alpha=.05, v_opt=100"),
])
def test_normal_mixture_matches_confseq(two_sided: bool, log_mixture: float, bound: float) -> None:
    assert float(compute_normal_log_mixture(10, 100, V_OPT, alpha_opt=ALPHA, two_sided=two_sided)) == \
        pytest.approx(log_mixture, abs=1e-5)
    assert normal_mixture_bound(100, ALPHA, V_OPT, alpha_opt=ALPHA, two_sided=two_sided) == \
        pytest.approx(bound, abs=1e-5)


def test_radius_at_v_opt_100_with_unit_sigma_is_0_3035() -> None:
    # Research note: at t = V_opt = 100 with sigma = 1, the radius S_t / t is 0.3035 (fixed-n: 0.196).
    assert normal_mixture_bound(100, ALPHA, 100, two_sided=True) / 100 == pytest.approx(0.3035, abs=1e-4)


@pytest.mark.parametrize(("two_sided", "expected"), [
    pytest.param(True, -0.6941012, id="two-sided beta-binomial mixture, g=.2, h=.8"),
    pytest.param(False, -0.07134019, id="one-sided beta-binomial mixture, g=.2, h=.8"),
])
def test_beta_binomial_log_mixture_matches_confseq(two_sided: bool, expected: float) -> None:
    value = compute_beta_binomial_log_mixture(10, 100, V_OPT, 0.2, 0.8, alpha_opt=ALPHA, two_sided=two_sided)
    assert float(value) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(("successes", "trials", "t_opt", "lower", "upper"), [
    pytest.param(700, 1000, 100, 0.651629, 0.745949, id="700 of 1000, t_opt 100"),
    pytest.param(15, 50, 50, 0.129556, 0.511896, id="low success count 15 of 50"),
    pytest.param(5, 50, 50, 0.013021, 0.269264, id="low success count 5 of 50"),
    pytest.param(1, 50, 50, 0.0, 0.13489, id="one success of 50 reaches zero"),
    pytest.param(1, 2, 50, 0.0, 1.0, id="two trials give the whole unit interval"),
    pytest.param(100, 200, 1, 0.328923, 0.671076, id="t_opt 1, far below n"),
    pytest.param(0, 1, 50, 0.0, 1.0, id="no successes"),
    pytest.param(1, 1, 50, 0.0, 1.0, id="all successes"),
])
def test_bernoulli_confidence_interval_matches_confseq(successes: int, trials: int, t_opt: float,
                                                       lower: float, upper: float) -> None:
    got = compute_bernoulli_confidence_interval(successes, trials, ALPHA, t_opt)
    assert got == pytest.approx((lower, upper), abs=1e-5)


@pytest.mark.parametrize("args", [
    pytest.param((0, 0.05), id="v_opt zero"),
    pytest.param((100, 1.0), id="alpha one"),
])
def test_best_rho_rejects_bad_settings(args: tuple[float, float]) -> None:
    with pytest.raises(CanaryError):
        best_rho(*args)


def test_bernoulli_interval_rejects_more_successes_than_trials() -> None:
    with pytest.raises(CanaryError, match="successes"):
        compute_bernoulli_confidence_interval(3, 2, ALPHA, 50)
