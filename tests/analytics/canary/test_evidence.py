"""Evidence per metric and the verdicts it leads to: coverage at every look, injected regressions rolled
back, clean canaries promoted, low traffic answered with continue and the requests still needed."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from analytics.canary.evidence import compute_canary_evidence, compute_quantile_sequence
from analytics.canary.policy import CanaryPolicy, CanarySignal, MetricPolicy
from analytics.canary.samples import ArmSamples
from analytics.canary.verdict import Classification, Verdict, compute_verdict

LATENCY = (CanarySignal.E2E, CanarySignal.TTFT, CanarySignal.ITL, CanarySignal.QUEUE)
POLICY = CanaryPolicy(metrics=(
    MetricPolicy("errors", CanarySignal.ERROR_RATIO, critical=True, threshold_abs=0.005),
    MetricPolicy("e2e_p50", CanarySignal.E2E, 0.5, threshold_rel=0.1),
    MetricPolicy("e2e_p99", CanarySignal.E2E, 0.99, weight=2.0, threshold_rel=0.15),
), min_requests=50, pass_score=95, marginal_score=75, step_limit_s=1800)


def arm(version: str, e2e: np.ndarray, errors: int = 0) -> ArmSamples:
    lat = {s: np.empty(0) for s in LATENCY} | {CanarySignal.E2E: np.sort(e2e)}
    return ArmSamples(version, requests=int(e2e.size) + errors, errors=errors, latencies=lat)


def lognormal(rng: np.random.Generator, n: int, *, tail: float = 1.0) -> np.ndarray:
    """Latencies around 1 s; ``tail`` stretches the values above the median (p99 moves, p50 does not)."""
    x = rng.lognormal(0.0, 0.5, n)
    return np.where(x > 1.0, 1.0 + (x - 1.0) * tail, x)


def test_the_quantile_sequence_covers_the_true_quantile_at_every_look() -> None:
    rng = np.random.default_rng(11)
    runs, misses, alpha = 300, 0, 0.05
    for _ in range(runs):
        x = rng.standard_normal(2000)
        for n in range(50, 2001, 50):  # 40 looks
            lo, hi = compute_quantile_sequence(np.sort(x[:n]), 0.9, alpha=alpha)
            if not lo <= stats.norm.ppf(0.9) <= hi:
                misses += 1
                break
    assert misses / runs <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)


def test_the_quantile_sequence_narrows_with_data_and_is_unbounded_without_enough() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal(20_000)
    widths = [np.subtract(*compute_quantile_sequence(np.sort(x[:n]), 0.5, alpha=0.05)[::-1]) for n in (200, 2000, 20000)]
    assert widths[0] > widths[1] > widths[2] > 0
    assert compute_quantile_sequence(np.sort(x[:20]), 0.99, alpha=0.05)[1] == math.inf


def test_a_p99_shift_with_the_median_unchanged_is_rolled_back() -> None:
    rng = np.random.default_rng(5)
    base, can = arm("v1", lognormal(rng, 20_000)), arm("v2", lognormal(rng, 20_000, tail=1.9))
    assert np.quantile(can.latencies[CanarySignal.E2E], 0.99) > 1.3 * np.quantile(base.latencies[CanarySignal.E2E], 0.99)
    got = compute_verdict(POLICY, compute_canary_evidence(POLICY, base, can), elapsed_s=600)
    by = {o.policy.name: o.classification for o in got.metrics}
    assert by["e2e_p99"] is Classification.FAIL and by["e2e_p50"] is Classification.PASS
    assert got.verdict is Verdict.ROLLBACK


def test_a_doubled_error_ratio_rolls_back_as_a_critical_metric() -> None:
    rng = np.random.default_rng(6)
    base, can = arm("v1", lognormal(rng, 10_000), errors=100), arm("v2", lognormal(rng, 10_000), errors=250)
    evidence = compute_canary_evidence(POLICY, base, can)
    assert evidence["errors"].p_value is not None and evidence["errors"].p_value < 0.05
    got = compute_verdict(POLICY, evidence, elapsed_s=600)
    assert got.verdict is Verdict.ROLLBACK and "critical metric failed: errors" in got.reasons[0]


def test_a_clean_canary_with_enough_traffic_is_promoted() -> None:
    rng = np.random.default_rng(7)
    base, can = arm("v1", lognormal(rng, 30_000), errors=30), arm("v2", lognormal(rng, 30_000), errors=30)
    got = compute_verdict(POLICY, compute_canary_evidence(POLICY, base, can), elapsed_s=900)
    assert got.verdict is Verdict.PROMOTE, got.reasons


def test_low_traffic_continues_with_the_requests_still_needed_then_is_inconclusive() -> None:
    rng = np.random.default_rng(8)
    base, can = arm("v1", lognormal(rng, 400)), arm("v2", lognormal(rng, 400))
    evidence = compute_canary_evidence(POLICY, base, can)
    early = compute_verdict(POLICY, evidence, elapsed_s=300)
    assert early.verdict is Verdict.CONTINUE
    p50 = evidence["e2e_p50"]
    assert p50.requests_needed is not None and p50.requests_needed > 400
    assert compute_verdict(POLICY, evidence, elapsed_s=1800).verdict is Verdict.INCONCLUSIVE


@pytest.mark.parametrize("per_side", [100, 1000])
def test_clean_canaries_asked_every_minute_are_rarely_rolled_back(per_side: int) -> None:
    rng = np.random.default_rng(per_side)
    runs, rolled_back = 60, 0
    for _ in range(runs):
        b, c = lognormal(rng, per_side * 30), lognormal(rng, per_side * 30)
        be, ce = rng.binomial(1, 0.01, per_side * 30), rng.binomial(1, 0.01, per_side * 30)
        for minute in range(1, 31):  # 30 looks, one a minute
            n = per_side * minute
            got = compute_verdict(POLICY, compute_canary_evidence(
                POLICY, arm("v1", b[:n], int(be[:n].sum())), arm("v2", c[:n], int(ce[:n].sum())), p_values=False), elapsed_s=60 * minute)
            if got.verdict is Verdict.ROLLBACK:
                rolled_back += 1
                break
    assert rolled_back / runs <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / runs)
