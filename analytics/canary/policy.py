"""A canary policy: which metrics the gate compares, in which direction a change is bad, and how much.

A policy is data: the gate's statistics read it, the YAML reader (``fleetlens/canary_policy.py``) builds
it and checks every value. Each metric names a signal (what is measured per request or per sample) and,
for latencies, the quantile compared. A change is judged against both an absolute and a relative
threshold: the canary fails a metric only when the whole interval of the difference lies past the
threshold in the bad direction, and passes it only when the whole interval lies inside it, so a wide
interval can never pass (spinnaker/spinnaker#6278).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CanarySignal(StrEnum):
    """What a canary metric measures."""

    E2E = "e2e"  # end-to-end request latency, seconds
    TTFT = "ttft"  # time to first token, seconds
    ITL = "itl"  # inter-token latency, seconds
    QUEUE = "queue"  # time queued before prefill, seconds
    ERROR_RATIO = "error_ratio"  # failed requests / requests
    GPU_MEMORY = "gpu_memory"  # framebuffer used, bytes
    PROBE_PASS_RATE = "probe_pass_rate"  # correctness probes passed / probes run


# Signals whose values are latencies (compared at a quantile).
LATENCY_SIGNALS = frozenset({CanarySignal.E2E, CanarySignal.TTFT, CanarySignal.ITL, CanarySignal.QUEUE})


class BadDirection(StrEnum):
    """Which way a change of the canary against the baseline is a regression (Kayenta's ``direction``)."""

    INCREASE = "increase"
    DECREASE = "decrease"
    EITHER = "either"


class CanaryMethod(StrEnum):
    """The statistics behind a verdict."""

    SEQUENTIAL = "sequential"  # anytime-valid confidence sequences: safe to ask every minute
    KAYENTA = "kayenta"  # Mann-Whitney U with a Hodges-Lehmann interval, as Kayenta; for comparison


@dataclass(frozen=True, slots=True)
class MetricPolicy:
    """One compared metric: ``signal`` at ``quantile`` (latencies), judged by its thresholds."""

    name: str
    signal: CanarySignal
    quantile: float | None = None
    bad: BadDirection = BadDirection.INCREASE
    critical: bool = False  # a failure rolls back whatever the score
    weight: float = 1.0
    # Largest tolerated change in the bad direction: absolute (the signal's unit) and relative (0.1 = 10 %).
    # Both given: the larger tolerance applies, so a tiny baseline is not held to a tiny absolute change.
    threshold_abs: float | None = None
    threshold_rel: float | None = None

    def tolerance(self, baseline: float) -> float:
        """The tolerated change for a baseline value ``baseline`` (0 when no threshold is set)."""
        parts = [t for t in (self.threshold_abs, None if self.threshold_rel is None
                             else self.threshold_rel * abs(baseline)) if t is not None]
        return max(parts) if parts else 0.0


@dataclass(frozen=True, slots=True)
class CanaryPolicy:
    """The metrics and the decision rule of one canary analysis."""

    metrics: tuple[MetricPolicy, ...]
    method: CanaryMethod = CanaryMethod.SEQUENTIAL
    alpha: float = 0.05  # the false-rollback rate kept however often the gate is asked
    min_requests: int = 50  # per side, before any metric may pass
    step_limit_s: float = 1800.0  # after this long in one step, undecided is "inconclusive"
    warmup_s: float = 120.0  # after each step or restart, left out of the comparison
    pass_score: float = 95.0  # a score at or above this promotes (no critical failure)
    marginal_score: float = 75.0  # below this rolls back


def default_metrics() -> tuple[MetricPolicy, ...]:
    """The metrics a platform can ship: tails and medians of latency, errors and correctness."""
    s, d = CanarySignal, BadDirection
    return (
        MetricPolicy("error_ratio", s.ERROR_RATIO, critical=True, weight=3.0, threshold_abs=0.002, threshold_rel=0.5),
        MetricPolicy("e2e_p50", s.E2E, quantile=0.5, threshold_rel=0.1),
        MetricPolicy("e2e_p99", s.E2E, quantile=0.99, weight=2.0, threshold_rel=0.2),
        MetricPolicy("ttft_p95", s.TTFT, quantile=0.95, weight=2.0, threshold_rel=0.2),
        MetricPolicy("itl_p95", s.ITL, quantile=0.95, threshold_rel=0.2),
        MetricPolicy("queue_p95", s.QUEUE, quantile=0.95, threshold_abs=0.05, threshold_rel=0.5),
        MetricPolicy("gpu_memory", s.GPU_MEMORY, threshold_rel=0.1),
        MetricPolicy("probe_pass_rate", s.PROBE_PASS_RATE, bad=d.DECREASE, critical=True, threshold_abs=0.0),
    )


def default_policy() -> CanaryPolicy:
    """The policy used when none is given."""
    return CanaryPolicy(metrics=default_metrics())
