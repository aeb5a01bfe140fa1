"""The anytime-valid evidence per metric: an interval on canary - baseline that holds at every look.

Each arm gets its own time-uniform confidence sequence at ``alpha / 2``, so their difference holds
with ``1 - alpha`` however often the gate asks (a union bound; conservative, never optimistic):

- **latency quantiles**: the set of values ``x`` for which the count of samples at or below ``x`` is
  still plausible for a ``p``-quantile, under confseq's beta-binomial mixture for Bernoulli(``p``)
  increments (the construction of Howard & Ramdas' quantile sequences, at one fixed ``p``). It is an
  interval of order statistics; too few samples for the quantile leave an end unbounded (``inf``), which
  can never pass. So a p99 shift with the median unchanged shows at p99 and nowhere else.
- **error ratio**: confseq's Bernoulli confidence sequence per arm; the Poisson-process count test
  (errors of canary against baseline at the arms' traffic shares) gives the always-valid p-value.

Requests still needed come from ``requests_needed``. Signals not measured from requests (GPU memory,
probe pass rate) come from their own sources; without them a policy naming them stays undecided.
"""

from __future__ import annotations

import math

import numpy as np

from analytics.canary.boundaries import (
    compute_bernoulli_confidence_interval,
    compute_beta_binomial_log_mixture,
)
from analytics.canary.policy import LATENCY_SIGNALS, BadDirection, CanaryPolicy, CanarySignal, MetricPolicy
from analytics.canary.requests_needed import compute_requests_needed
from analytics.canary.samples import ArmSamples
from analytics.canary.sequential_counts import compute_count_test
from analytics.canary.sequential_quantiles import compute_quantile_ab_p_value
from analytics.canary.verdict import MetricEvidence

DEFAULT_T_OPT = 500.0  # the sample size at which the sequences are tightest


def compute_quantile_sequence(values: np.ndarray, p: float, *, alpha: float,
                              t_opt: float = DEFAULT_T_OPT) -> tuple[float, float]:
    """Time-uniform ``1 - alpha`` interval for the ``p``-quantile from sorted ``values`` (ends may be inf)."""
    n = values.size
    if n == 0:
        return -math.inf, math.inf
    k = np.arange(n + 1, dtype=np.float64)
    log_mg = compute_beta_binomial_log_mixture(k - n * p, p * (1 - p) * n, p * (1 - p) * t_opt, p, 1 - p,
                                               alpha_opt=alpha, two_sided=True)
    plausible = np.flatnonzero(log_mg < math.log(1 / alpha))
    if plausible.size == 0:  # cannot happen for a valid mixture (k near n*p is always plausible); be safe
        return -math.inf, math.inf
    k_lo, k_hi = int(plausible[0]), int(plausible[-1])
    # K(x) >= k_lo <=> x >= x_(k_lo); K(x) <= k_hi <=> x < x_(k_hi + 1) (1-based order statistics).
    lower = -math.inf if k_lo == 0 else float(values[k_lo - 1])
    upper = math.inf if k_hi >= n else float(values[k_hi])
    return lower, upper


def compute_metric_evidence(metric: MetricPolicy, baseline: ArmSamples, canary: ArmSamples, *, alpha: float,
                            p_values: bool = True) -> MetricEvidence | None:
    """One metric's evidence from the two arms; None for signals not measured from requests.

    ``p_values=False`` leaves out the always-valid p-values (shown as evidence, not used by the verdict),
    which cost most of the time at large samples.
    """
    if metric.signal in LATENCY_SIGNALS and metric.quantile is not None:
        return _latency(metric, baseline.latencies[metric.signal], canary.latencies[metric.signal], alpha=alpha,
                        p_values=p_values)
    if metric.signal is CanarySignal.ERROR_RATIO:
        return _errors(metric, baseline, canary, alpha=alpha)
    return None


def compute_canary_evidence(policy: CanaryPolicy, baseline: ArmSamples, canary: ArmSamples, *,
                            p_values: bool = True) -> dict[str, MetricEvidence]:
    """Evidence for every policy metric measured from requests, keyed by metric name."""
    out: dict[str, MetricEvidence] = {}
    for metric in policy.metrics:
        got = compute_metric_evidence(metric, baseline, canary, alpha=policy.alpha, p_values=p_values)
        if got is not None:
            out[metric.name] = got
    return out


def _latency(metric: MetricPolicy, base: np.ndarray, can: np.ndarray, *, alpha: float,
             p_values: bool) -> MetricEvidence:
    p = float(metric.quantile or 0.5)
    n_b, n_c = int(base.size), int(can.size)
    if n_b == 0 or n_c == 0:
        return MetricEvidence(metric.name, n_b, n_c, None, None, None, None)
    b_lo, b_hi = compute_quantile_sequence(base, p, alpha=alpha / 2)
    c_lo, c_hi = compute_quantile_sequence(can, p, alpha=alpha / 2)
    b_q, c_q = float(np.quantile(base, p)), float(np.quantile(can, p))
    lower, upper = c_lo - b_hi, c_hi - b_lo
    p_value = compute_quantile_ab_p_value(base, can, p, alpha_opt=alpha) if p_values and min(n_b, n_c) > 1 else None
    return MetricEvidence(metric.name, n_b, n_c, b_q, c_q, lower, upper, p_value,
                          _needed(metric, min(n_b, n_c), c_q - b_q, lower, upper, b_q, alpha))


def _errors(metric: MetricPolicy, base: ArmSamples, can: ArmSamples, *, alpha: float) -> MetricEvidence:
    if base.requests == 0 or can.requests == 0:
        return MetricEvidence(metric.name, base.requests, can.requests, None, None, None, None)
    b_lo, b_hi = compute_bernoulli_confidence_interval(base.errors, base.requests, alpha / 2, DEFAULT_T_OPT)
    c_lo, c_hi = compute_bernoulli_confidence_interval(can.errors, can.requests, alpha / 2, DEFAULT_T_OPT)
    b_r, c_r = base.errors / base.requests, can.errors / can.requests
    share = can.requests / (can.requests + base.requests)
    p_value = compute_count_test(base.errors, can.errors, canary_share=share, alpha=alpha).p_value \
        if base.errors + can.errors > 0 else None
    lower, upper = c_lo - b_hi, c_hi - b_lo
    return MetricEvidence(metric.name, base.requests, can.requests, b_r, c_r, lower, upper, p_value,
                          _needed(metric, min(base.requests, can.requests), c_r - b_r, lower, upper, b_r, alpha))


def _needed(metric: MetricPolicy, n: int, estimate: float, lower: float, upper: float, baseline: float,
            alpha: float) -> int | None:
    """Requests per side until the interval clears the tolerance; None when it cannot be said yet."""
    if not (math.isfinite(lower) and math.isfinite(upper)) or not lower <= estimate <= upper:
        return None
    tol = metric.tolerance(baseline)
    up = metric.bad is BadDirection.INCREASE or (metric.bad is BadDirection.EITHER and estimate >= 0)
    got = compute_requests_needed(n_per_side=n, estimate=estimate, lower=lower, upper=upper,
                                  threshold=tol if up else -tol, alpha=alpha, t_opt=DEFAULT_T_OPT)
    return None if got is None else got.n_per_side
