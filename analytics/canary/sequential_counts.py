"""Anytime-valid comparison of two event counts: the Poisson-process test of Lindon & Malek (NeurIPS 2022).

Each arm's events (errors, or requests over a latency bound) are an inhomogeneous Poisson process
``lambda_i(t) = rho_i exp(delta_i) lambda(t)``, with ``rho`` the arms' traffic shares, so the next event
is arm ``i``'s with probability ``theta_i(delta) = rho_i e^delta_i / sum_j rho_j e^delta_j`` whatever
the load ``lambda(t)`` does. Under H0 (``delta`` equal) ``theta = rho``. A Dirichlet(``k rho``) mixture
gives the Bayes factor in closed form,

    BF_n = [B(k rho + c) / B(k rho)] / prod_i rho_i^c_i,    B(a) = prod Gamma(a_i) / Gamma(sum a_i),

an e-process, so ``p_n = min(1, min_{s <= n} 1/BF_s)`` is valid at every look, and the confidence
sequence on the log rate ratio ``d = delta_canary - delta_baseline`` is
``{d: sum_i c_i ln theta_i(d) >= ln B(k rho + c) - ln B(k rho) + ln alpha}`` (savvi's
``InhomogeneousPoissonProcess``, assuncaolfi/savvi, whose example is the test oracle). Arm 0 is the
baseline and arm 1 the canary throughout. ``rho`` must hold for the whole window (one rollout step).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import brentq
from scipy.special import gammaln, xlogy

from analytics.errors import CanaryError

DEFAULT_K = 100.0  # savvi's default Dirichlet concentration
_XTOL = 1e-12


@dataclass(frozen=True, slots=True)
class CountTest:
    """One look of the count test: counts, the log rate ratio's estimate and CS, and the p-value."""

    baseline_events: float
    canary_events: float
    canary_share: float  # rho_1, the canary's share of the traffic
    log_ratio: float  # MLE of delta_canary - delta_baseline (+-inf when one arm has no events)
    lower: float  # confidence sequence on the log ratio (-inf/+inf when unbounded)
    upper: float
    p_value: float  # 1/BF at this look; the always-valid p-value is the running minimum over looks
    log_bayes_factor: float


def _log_dirichlet_beta(a: np.ndarray) -> float:
    """``ln B(a) = sum ln Gamma(a_i) - ln Gamma(sum a_i)``."""
    return float(gammaln(a).sum() - gammaln(a.sum()))


def _log_likelihood(d: float, counts: np.ndarray, rho: np.ndarray) -> float:
    """``sum_i c_i ln theta_i(d)`` for two arms, with ``theta_1 = rho_1 e^d / (rho_0 + rho_1 e^d)``."""
    log_norm = np.logaddexp(math.log(rho[0]), math.log(rho[1]) + d)
    return float(xlogy(counts[0], rho[0]) - counts[0] * log_norm
                 + counts[1] * (math.log(rho[1]) + d - log_norm))


def _check(counts: np.ndarray, rho: np.ndarray, alpha: float, k: float) -> None:
    """Raise ``CanaryError`` on counts, shares or settings the test cannot use."""
    if counts.shape != (2,) or rho.shape != (2,):
        raise CanaryError(f"count test compares two arms, got counts {counts.tolist()} and shares {rho.tolist()}")
    if (counts < 0).any() or not np.isfinite(counts).all():
        raise CanaryError(f"event counts must be finite and >= 0, got {counts.tolist()}")
    if (rho <= 0).any() or not math.isclose(float(rho.sum()), 1.0, rel_tol=1e-9):
        raise CanaryError(f"traffic shares must be > 0 and sum to 1, got {rho.tolist()}")
    if not 0 < alpha < 1 or not k > 0:
        raise CanaryError(f"count test needs 0 < alpha < 1 and k > 0, got alpha={alpha}, k={k}")


def compute_count_test(baseline_events: float, canary_events: float, *, canary_share: float,
                       alpha: float = 0.05, k: float = DEFAULT_K) -> CountTest:
    """Test and CS for the canary/baseline event-rate ratio from cumulative counts at one look."""
    counts = np.array([baseline_events, canary_events], dtype=np.float64)
    rho = np.array([1.0 - canary_share, canary_share], dtype=np.float64)
    _check(counts, rho, alpha, k)
    log_mixture = _log_dirichlet_beta(k * rho + counts) - _log_dirichlet_beta(k * rho)
    log_bf = log_mixture - float(xlogy(counts, rho).sum())
    threshold = log_mixture + math.log(alpha)
    if counts[0] > 0 and counts[1] > 0:
        mle = math.log(counts[1] / counts[0]) - math.log(rho[1] / rho[0])
    else:
        mle = math.inf if counts[1] > 0 else -math.inf if counts[0] > 0 else 0.0

    def excess(d: float) -> float:
        return _log_likelihood(d, counts, rho) - threshold

    # The log-likelihood is concave in d and exceeds the threshold at the MLE (the mixture never beats
    # the maximum, and ln alpha < 0): one root on each side that has events to pull it down.
    inside = mle if math.isfinite(mle) else _inside_towards(excess, mle)
    lower = -math.inf if counts[1] == 0 else _root_beyond(excess, inside, -1.0)
    upper = math.inf if counts[0] == 0 else _root_beyond(excess, inside, 1.0)
    return CountTest(baseline_events=float(counts[0]), canary_events=float(counts[1]), canary_share=canary_share,
                     log_ratio=mle, lower=lower, upper=upper, p_value=min(1.0, math.exp(-log_bf)),
                     log_bayes_factor=log_bf)


def _inside_towards(excess: Callable[[float], float], mle: float) -> float:
    """A point of the CS when the MLE is infinite (one arm has no events): walk towards it."""
    d, step = 0.0, math.copysign(1.0, mle)
    while excess(d) <= 0:
        d, step = d + step, 2 * step
    return d


def _root_beyond(excess: Callable[[float], float], inside: float, direction: float) -> float:
    """The root of ``excess`` on the ``direction`` side of ``inside`` (where ``excess > 0``)."""
    step = 1.0
    while excess(inside + direction * step) > 0:
        step *= 2
    a, b = sorted((inside, inside + direction * step))
    return float(brentq(excess, a, b, xtol=_XTOL))


def compute_count_test_sequence(baseline_events: Sequence[float], canary_events: Sequence[float], *,
                                canary_share: float, alpha: float = 0.05, k: float = DEFAULT_K) -> list[CountTest]:
    """Every look's test from cumulative counts, with the running minimum p and intersected CS."""
    if len(baseline_events) != len(canary_events):
        raise CanaryError(f"{len(baseline_events)} baseline looks but {len(canary_events)} canary looks")
    looks: list[CountTest] = []
    p, lower, upper = 1.0, -math.inf, math.inf
    for c0, c1 in zip(baseline_events, canary_events, strict=True):
        look = compute_count_test(c0, c1, canary_share=canary_share, alpha=alpha, k=k)
        p, lower, upper = min(p, look.p_value), max(lower, look.lower), min(upper, look.upper)
        looks.append(CountTest(baseline_events=look.baseline_events, canary_events=look.canary_events,
                               canary_share=canary_share, log_ratio=look.log_ratio, lower=lower, upper=upper,
                               p_value=p, log_bayes_factor=look.log_bayes_factor))
    return looks


def compute_count_p_values(baseline_events: ArrayLike, canary_events: ArrayLike, *, canary_share: float,
                           k: float = DEFAULT_K) -> NDArray[np.float64]:
    """Always-valid p-values (running minimum along the last axis) for cumulative counts, vectorised."""
    c0 = np.asarray(baseline_events, dtype=np.float64)
    c1 = np.asarray(canary_events, dtype=np.float64)
    rho = np.array([1.0 - canary_share, canary_share], dtype=np.float64)
    _check(np.array([c0.min(initial=0.0), c1.min(initial=0.0)]), rho, 0.05, k)  # alpha plays no part here
    a0, a1 = k * rho
    log_mixture = (gammaln(a0 + c0) + gammaln(a1 + c1) - gammaln(k + c0 + c1)
                   - (gammaln(a0) + gammaln(a1) - gammaln(k)))
    log_bf = log_mixture - xlogy(c0, rho[0]) - xlogy(c1, rho[1])
    return np.minimum.accumulate(np.minimum(1.0, np.exp(-log_bf)), axis=-1)
