"""Time-uniform boundaries (Howard et al. 2021): normal and beta-binomial mixtures, Bernoulli CSs.

A port of confseq's ``uniform_boundaries.h`` (gostevehoward/confseq, MIT), checked against its own
test vectors. A *boundary* ``u(v)`` bounds a zero-mean martingale ``S_t`` with intrinsic time (variance
process) ``V_t = v`` so that ``P(exists t: S_t >= u(V_t)) <= alpha``: asking at every look is free.
The mixture's spread ``rho`` is tuned by ``best_rho`` so the boundary is tightest at ``v = v_opt``;
it stays valid at every other ``v``. The log super-martingales are vectorised over ``s``.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import brentq
from scipy.special import betainc, betaln, log_ndtr

from analytics.errors import CanaryError

_XTOL = 1e-12


def best_rho(v_opt: float, alpha_opt: float) -> float:
    """The two-sided normal mixture's ``rho`` that minimises the boundary at ``v_opt`` (confseq)."""
    if not v_opt > 0 or not 0 < alpha_opt < 1:
        raise CanaryError(f"best_rho needs v_opt > 0 and 0 < alpha_opt < 1, got {v_opt}, {alpha_opt}")
    ell = 2 * math.log(1 / alpha_opt)
    return v_opt / (ell + math.log(1 + ell))


def compute_normal_log_mixture(s: ArrayLike, v: float, v_opt: float, *, alpha_opt: float = 0.05,
                               two_sided: bool = False) -> NDArray[np.float64]:
    """Log of the normal-mixture super-martingale at sum ``s`` and intrinsic time ``v``."""
    s_arr = np.asarray(s, dtype=np.float64)
    if two_sided:
        rho = best_rho(v_opt, alpha_opt)
        return 0.5 * np.log(rho / (v + rho)) + s_arr**2 / (2 * (v + rho))
    rho = best_rho(v_opt, 2 * alpha_opt)  # one-sided: the two-sided rho at twice the error
    return (0.5 * np.log(4 * rho / (v + rho)) + s_arr**2 / (2 * (v + rho))
            + log_ndtr(s_arr / np.sqrt(v + rho)))


def normal_mixture_bound(v: float, alpha: float, v_opt: float, *, alpha_opt: float = 0.05,
                         two_sided: bool = False) -> float:
    """The normal-mixture boundary ``u(v)`` crossed with probability at most ``alpha`` (confseq's)."""
    if not 0 < alpha < 1 or v < 0:
        raise CanaryError(f"normal_mixture_bound needs 0 < alpha < 1 and v >= 0, got {alpha}, {v}")
    log_threshold = math.log(1 / alpha)
    if two_sided:  # closed form: sqrt((v + rho) (ln(1 + v/rho) + 2 ln(1/alpha)))
        rho = best_rho(v_opt, alpha_opt)
        return math.sqrt((v + rho) * (math.log(1 + v / rho) + 2 * log_threshold))

    def excess(s: float) -> float:
        return float(compute_normal_log_mixture(s, v, v_opt, alpha_opt=alpha_opt)) - log_threshold

    upper = max(v, 1.0)
    while excess(upper) <= 0:  # the super-martingale grows without bound in s
        upper *= 2
    return float(brentq(excess, 0.0, upper, xtol=_XTOL))


def _log_incomplete_beta(a: NDArray[np.float64], b: NDArray[np.float64], x: float) -> NDArray[np.float64]:
    """ln of the (unregularised) incomplete beta ``B(x; a, b)``; the complete one at ``x = 1``."""
    if x == 1:
        return np.asarray(betaln(a, b), dtype=np.float64)
    return np.asarray(np.log(betainc(a, b, x)) + betaln(a, b), dtype=np.float64)


def compute_beta_binomial_log_mixture(s: ArrayLike, v: float, v_opt: float, g: float, h: float, *,
                                      alpha_opt: float = 0.05, two_sided: bool = False) -> NDArray[np.float64]:
    """Log of the beta-binomial mixture super-martingale for increments in ``[-g, h]`` (confseq)."""
    s_arr = np.asarray(s, dtype=np.float64)
    rho = best_rho(v_opt, alpha_opt) if two_sided else best_rho(v_opt, 2 * alpha_opt)
    r = max(rho - g * h, 1e-3 * g * h)
    x = 1.0 if two_sided else h / (g + h)
    normalizer = _log_incomplete_beta(np.asarray(r / (g * (g + h))), np.asarray(r / (h * (g + h))), x)
    return (v / (g * h) * math.log(g + h)
            - (v + h * s_arr) / (h * (g + h)) * math.log(g)
            - (v - g * s_arr) / (g * (g + h)) * math.log(h)
            + _log_incomplete_beta((r + v - g * s_arr) / (g * (g + h)), (r + v + h * s_arr) / (h * (g + h)), x)
            - normalizer)


def compute_bernoulli_confidence_interval(successes: float, trials: int, alpha: float, t_opt: float, *,
                                          alpha_opt: float = 0.05) -> tuple[float, float]:
    """Time-uniform CI for a success probability after ``trials`` Bernoulli draws (confseq's)."""
    if trials <= 0 or not 0 <= successes <= trials:
        raise CanaryError(f"bernoulli interval needs 0 <= successes <= trials > 0, got {successes}/{trials}")
    log_threshold = math.log(1 / alpha)
    p_hat = successes / trials

    def excess(p: float, at_zero: float, at_one: float) -> float:
        if p <= 0 or p >= 1:  # confseq's convention at the ends: outside the side searched
            return at_zero if p <= 0 else at_one
        log_mg = compute_beta_binomial_log_mixture((p_hat - p) * trials, p * (1 - p) * trials,
                                                   p * (1 - p) * t_opt, p, 1 - p,
                                                   alpha_opt=alpha_opt, two_sided=True)
        return float(log_mg) - log_threshold

    lower = 0.0 if p_hat <= 0 else float(brentq(excess, 0.0, p_hat, args=(1.0, -1.0), xtol=_XTOL))
    upper = 1.0 if p_hat >= 1 else float(brentq(excess, p_hat, 1.0, args=(-1.0, 1.0), xtol=_XTOL))
    return lower, upper
