"""From per-metric intervals to one verdict: promote, continue, inconclusive or rollback, with every number.

Each metric arrives as the interval of the canary's change against the baseline (canary - baseline, in
the signal's unit), computed by the statistics of the policy's method. A metric

- **fails** when the whole interval lies beyond its tolerance in the bad direction;
- **passes** when the whole interval lies within the tolerance (so a wide interval never passes);
- is **undecided** otherwise, and **nodata** when either side has fewer than ``min_requests`` requests
  or no values: missing data is never good data.

The verdict: a failed critical metric rolls back at once. With every metric decided, the weighted
share of passing metrics (the score, 0-100) promotes at ``pass_score`` or above and rolls back below
``marginal_score``; in between is ``inconclusive``. While metrics are undecided the answer is
``continue`` (Argo's default ``inconclusiveLimit: 0`` would pause a rollout on its first
Inconclusive), unless the failures so far already keep the score below ``marginal_score`` (rollback),
and ``inconclusive`` once the step has run ``step_limit_s``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from analytics.canary.policy import BadDirection, CanaryPolicy, MetricPolicy


class Classification(StrEnum):
    """One metric's outcome."""

    PASS = "pass"
    FAIL = "fail"
    UNDECIDED = "undecided"
    NODATA = "nodata"


class Verdict(StrEnum):
    """The gate's answer (the Argo Rollouts web provider's ``result.verdict``)."""

    PROMOTE = "promote"
    CONTINUE = "continue"
    INCONCLUSIVE = "inconclusive"
    ROLLBACK = "rollback"


@dataclass(frozen=True, slots=True)
class MetricEvidence:
    """The statistics of one metric: each side's size and value, and the interval of the change."""

    name: str
    n_baseline: int
    n_canary: int
    baseline: float | None  # the baseline's value (its quantile, ratio ...), for a relative tolerance
    canary: float | None
    lower: float | None  # interval of canary - baseline; None when it could not be computed
    upper: float | None
    p_value: float | None = None
    requests_needed: int | None = None  # per side, for the interval to become narrow enough


@dataclass(frozen=True, slots=True)
class MetricOutcome:
    """One metric judged: its evidence, tolerance, classification and the reason in words."""

    policy: MetricPolicy
    evidence: MetricEvidence
    tolerance: float | None
    classification: Classification
    reason: str


@dataclass(frozen=True, slots=True)
class VerdictResult:
    """The verdict with the score and every metric's outcome."""

    verdict: Verdict
    score: float
    final: bool  # promote, rollback and inconclusive end the analysis; continue asks again later
    reasons: tuple[str, ...]
    metrics: tuple[MetricOutcome, ...]


def classify_metric(policy: MetricPolicy, evidence: MetricEvidence, *, min_requests: int) -> MetricOutcome:
    """Judge one metric's interval against its tolerance in its bad direction."""
    short = min(evidence.n_baseline, evidence.n_canary)
    if short < min_requests or evidence.lower is None or evidence.upper is None or evidence.baseline is None:
        why = f"{short} requests on the smaller side, {min_requests} needed" if short < min_requests \
            else "no interval: a side has no values"
        return MetricOutcome(policy, evidence, None, Classification.NODATA, why)
    tol = policy.tolerance(evidence.baseline)
    lo, hi = evidence.lower, evidence.upper
    worse_up = lo > tol
    worse_down = hi < -tol
    if (policy.bad is BadDirection.INCREASE and worse_up) or (policy.bad is BadDirection.DECREASE and worse_down) \
            or (policy.bad is BadDirection.EITHER and (worse_up or worse_down)):
        return MetricOutcome(policy, evidence, tol, Classification.FAIL,
                             f"change [{lo:.6g}, {hi:.6g}] lies beyond the tolerance {tol:.6g} ({policy.bad})")
    within = {BadDirection.INCREASE: hi <= tol, BadDirection.DECREASE: lo >= -tol,
              BadDirection.EITHER: -tol <= lo and hi <= tol}[policy.bad]
    if within:
        return MetricOutcome(policy, evidence, tol, Classification.PASS,
                             f"change [{lo:.6g}, {hi:.6g}] lies within the tolerance {tol:.6g}")
    return MetricOutcome(policy, evidence, tol, Classification.UNDECIDED,
                         f"change [{lo:.6g}, {hi:.6g}] straddles the tolerance {tol:.6g}")


def compute_verdict(policy: CanaryPolicy, evidence: dict[str, MetricEvidence], *, elapsed_s: float) -> VerdictResult:
    """The verdict of one look at a canary step that has run ``elapsed_s`` seconds."""
    outcomes = tuple(
        classify_metric(m, evidence[m.name], min_requests=policy.min_requests) if m.name in evidence
        else MetricOutcome(m, MetricEvidence(m.name, 0, 0, None, None, None, None), None, Classification.NODATA,
                           "no evidence for this metric")
        for m in policy.metrics
    )
    total = sum(o.policy.weight for o in outcomes) or 1.0
    passed = sum(o.policy.weight for o in outcomes if o.classification is Classification.PASS)
    failed = sum(o.policy.weight for o in outcomes if o.classification is Classification.FAIL)
    score = 100.0 * passed / total
    best_possible = 100.0 * (total - failed) / total
    critical = [o for o in outcomes if o.policy.critical and o.classification is Classification.FAIL]
    open_ = [o for o in outcomes if o.classification in (Classification.UNDECIDED, Classification.NODATA)]
    reasons = tuple(f"{o.policy.name}: {o.classification}: {o.reason}" for o in outcomes
                    if o.classification is not Classification.PASS)
    if critical:
        verdict, why = Verdict.ROLLBACK, f"critical metric failed: {', '.join(o.policy.name for o in critical)}"
    elif best_possible < policy.marginal_score:
        verdict, why = Verdict.ROLLBACK, f"failures keep the score below {policy.marginal_score:g} at best"
    elif not open_:
        if score >= policy.pass_score:
            verdict, why = Verdict.PROMOTE, f"score {score:.1f} >= {policy.pass_score:g}"
        elif score < policy.marginal_score:
            verdict, why = Verdict.ROLLBACK, f"score {score:.1f} < {policy.marginal_score:g}"
        else:
            verdict, why = Verdict.INCONCLUSIVE, f"score {score:.1f} is marginal"
    elif elapsed_s >= policy.step_limit_s:
        verdict, why = Verdict.INCONCLUSIVE, f"undecided after the step's limit of {policy.step_limit_s:g} s"
    else:
        verdict, why = Verdict.CONTINUE, f"{len(open_)} metric(s) still undecided"
    return VerdictResult(verdict, score, verdict is not Verdict.CONTINUE, (why, *reasons), outcomes)
