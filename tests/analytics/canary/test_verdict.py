"""Verdicts from per-metric intervals: hand-computed cases of every rule, and that no missing data promotes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics.canary.policy import BadDirection, CanaryPolicy, CanarySignal, MetricPolicy
from analytics.canary.verdict import Classification, MetricEvidence, Verdict, classify_metric, compute_verdict

TTFT = MetricPolicy("ttft_p95", CanarySignal.TTFT, 0.95, threshold_rel=0.2)  # tolerance: 20 % of the baseline
ERRORS = MetricPolicy("errors", CanarySignal.ERROR_RATIO, critical=True, threshold_abs=0.01)
PROBES = MetricPolicy("probes", CanarySignal.PROBE_PASS_RATE, bad=BadDirection.DECREASE, threshold_abs=0.05)
MEMORY = MetricPolicy("mem", CanarySignal.GPU_MEMORY, bad=BadDirection.EITHER, threshold_abs=10.0)


def ev(name: str, lo: float | None, hi: float | None, *, baseline: float = 1.0, n: int = 500) -> MetricEvidence:
    return MetricEvidence(name, n, n, baseline, None if lo is None else baseline + lo, lo, hi)


@pytest.mark.parametrize(
    ("policy", "lo", "hi", "want"),
    [
        (TTFT, 0.21, 0.5, Classification.FAIL),       # whole interval above +0.2
        (TTFT, -0.1, 0.2, Classification.PASS),        # whole interval at or below +0.2
        (TTFT, 0.1, 0.3, Classification.UNDECIDED),    # straddles
        (TTFT, -5.0, 5.0, Classification.UNDECIDED),   # wide: never a pass
        (TTFT, -0.9, -0.5, Classification.PASS),       # faster is fine when only an increase is bad
        (PROBES, -0.2, -0.06, Classification.FAIL),
        (PROBES, -0.04, 0.1, Classification.PASS),
        (MEMORY, -30.0, -11.0, Classification.FAIL),   # either direction is bad
        (MEMORY, 11.0, 30.0, Classification.FAIL),
        (MEMORY, -9.0, 9.0, Classification.PASS),
        (MEMORY, -9.0, 12.0, Classification.UNDECIDED),
    ],
)
def test_a_metric_is_judged_by_where_its_whole_interval_lies(policy: MetricPolicy, lo: float, hi: float,
                                                             want: Classification) -> None:
    assert classify_metric(policy, ev(policy.name, lo, hi), min_requests=50).classification is want


def test_too_few_requests_or_no_interval_is_nodata_never_a_pass() -> None:
    few = classify_metric(TTFT, ev("ttft_p95", -0.01, 0.01, n=49), min_requests=50)
    assert few.classification is Classification.NODATA and "49 requests" in few.reason
    empty = classify_metric(TTFT, MetricEvidence("ttft_p95", 500, 500, None, None, None, None), min_requests=50)
    assert empty.classification is Classification.NODATA


POLICY = CanaryPolicy(metrics=(ERRORS, TTFT, PROBES), pass_score=95, marginal_score=60, step_limit_s=600)


def test_all_passing_promotes_with_full_score() -> None:
    got = compute_verdict(POLICY, {"errors": ev("errors", -0.001, 0.001), "ttft_p95": ev("ttft_p95", 0.0, 0.1),
                                   "probes": ev("probes", -0.01, 0.0)}, elapsed_s=120)
    assert (got.verdict, got.score, got.final) == (Verdict.PROMOTE, 100.0, True)


def test_a_critical_failure_rolls_back_whatever_the_rest() -> None:
    got = compute_verdict(POLICY, {"errors": ev("errors", 0.015, 0.03), "ttft_p95": ev("ttft_p95", 0.0, 0.1),
                                   "probes": ev("probes", -0.01, 0.0)}, elapsed_s=120)
    assert got.verdict is Verdict.ROLLBACK and "critical metric failed: errors" in got.reasons[0]
    assert got.score == pytest.approx(200 / 3)


def test_undecided_metrics_continue_then_become_inconclusive_at_the_step_limit() -> None:
    evidence = {"errors": ev("errors", -0.001, 0.001), "ttft_p95": ev("ttft_p95", 0.1, 0.3),
                "probes": ev("probes", -0.01, 0.0)}
    early = compute_verdict(POLICY, evidence, elapsed_s=300)
    late = compute_verdict(POLICY, evidence, elapsed_s=600)
    assert (early.verdict, early.final) == (Verdict.CONTINUE, False)
    assert (late.verdict, late.final) == (Verdict.INCONCLUSIVE, True)


def test_missing_evidence_never_promotes() -> None:
    got = compute_verdict(POLICY, {"errors": ev("errors", -0.001, 0.001)}, elapsed_s=60)
    assert got.verdict is Verdict.CONTINUE
    assert {o.policy.name: o.classification for o in got.metrics} == {
        "errors": Classification.PASS, "ttft_p95": Classification.NODATA, "probes": Classification.NODATA}


def test_non_critical_failures_roll_back_once_the_score_cannot_reach_marginal() -> None:
    policy = CanaryPolicy(metrics=(TTFT, PROBES, MEMORY), marginal_score=60, pass_score=95)
    got = compute_verdict(policy, {"ttft_p95": ev("ttft_p95", 0.3, 0.5), "probes": ev("probes", -0.3, -0.1),
                                   "mem": ev("mem", -1.0, 30.0)}, elapsed_s=10)
    assert got.verdict is Verdict.ROLLBACK and "below 60" in got.reasons[0]


def test_a_marginal_score_with_everything_decided_is_inconclusive() -> None:
    policy = CanaryPolicy(metrics=(TTFT, PROBES, MEMORY), marginal_score=60, pass_score=95)
    got = compute_verdict(policy, {"ttft_p95": ev("ttft_p95", 0.3, 0.5), "probes": ev("probes", -0.01, 0.0),
                                   "mem": ev("mem", -1.0, 1.0)}, elapsed_s=10)
    assert (got.verdict, round(got.score, 3)) == (Verdict.INCONCLUSIVE, 66.667)


@given(st.lists(st.sampled_from([None, "pass", "fail", "undecided"]), min_size=3, max_size=3),
       st.floats(0, 10_000))
def test_promote_needs_every_metric_present_and_passing(kinds: list[str | None], elapsed: float) -> None:
    def interval(m: MetricPolicy, kind: str) -> tuple[float, float]:
        worse = (0.5, 0.9) if m.bad is BadDirection.INCREASE else (-0.9, -0.5)
        return {"pass": (-0.001, 0.0), "fail": worse, "undecided": (-0.5, 0.5)}[kind]

    evidence = {m.name: ev(m.name, *interval(m, k)) for m, k in zip(POLICY.metrics, kinds) if k is not None}
    got = compute_verdict(POLICY, evidence, elapsed_s=elapsed)
    if got.verdict is Verdict.PROMOTE:
        assert kinds == ["pass"] * 3
