"""What the gate compares: the baseline's and the canary's requests over the same window, warm-up left out.

Both arms are cut from one window, so a load change hits both alike. Warm-up is left out of both:
the intervals come from the version timeline (``canary_warming`` rows from rollout events, and
``warmup_s`` after every change of the canary's weight, i.e. each step), or, when no rollout event
says anything, from the canary's own TTFT settling (:func:`compute_ttft_settled_at`).

Errors are ``error`` and ``timeout`` requests; ``cancelled`` (client aborts) count neither as errors
nor as successes. Latencies come from successful requests only, and a null latency is missing, never 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from analytics.canary.policy import CanarySignal
from analytics.schema import RequestStatus

Interval = tuple[datetime, datetime]
_LATENCY_COLUMNS: Mapping[CanarySignal, str] = {
    CanarySignal.E2E: "e2e_s", CanarySignal.TTFT: "ttft_s", CanarySignal.ITL: "itl_s", CanarySignal.QUEUE: "queue_s",
}
_ERRORS = [RequestStatus.ERROR.value, RequestStatus.TIMEOUT.value]
_OPEN_END = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ArmSamples:
    """One arm's requests in the window: counts and each latency signal's values (seconds, sorted)."""

    version: str
    requests: int  # ok + errors (cancelled left out)
    errors: int
    latencies: Mapping[CanarySignal, np.ndarray]


def compute_warmup_intervals(timeline: pl.DataFrame, *, tenant: str, model: str, canary_version: str,
                             warmup_s: float) -> list[Interval]:
    """Intervals to leave out: the canary warming per rollout events, and ``warmup_s`` after each weight change."""
    rows = timeline.filter(
        (pl.col("tenant") == tenant) & (pl.col("model") == model) & (pl.col("canary_version") == canary_version)
    ).sort("valid_from")
    out: list[Interval] = []
    last_weight: float | None = None
    for row in rows.iter_rows(named=True):
        start, end = row["valid_from"], row["valid_to"]
        if row["canary_warming"]:
            # Still warming at the last row: left out until further notice.
            out.append((start, end if end is not None else _OPEN_END))
        weight = row["canary_weight_pct"]
        if weight != last_weight and warmup_s > 0:
            out.append((start, start + timedelta(seconds=warmup_s)))
        last_weight = weight
    return _merged(out)


def compute_ttft_settled_at(ts: Sequence[datetime], ttft_s: Sequence[float], *, tolerance: float = 0.5,
                            min_per_minute: int = 5) -> datetime | None:
    """The start of the first minute from which every minute's median TTFT stays within ``tolerance`` of the
    settled level (the median of the later half's minute medians); None if it never settles.

    Used when no rollout event marks a version's warm-up: a cold engine (empty caches, compiling
    kernels) answers its first requests slowly, then settles.
    """
    frame = pl.DataFrame({"ts": list(ts), "v": list(ttft_s)}, schema={"ts": pl.Datetime("ms", "UTC"), "v": pl.Float64})
    minutes = (
        frame.drop_nulls().group_by(pl.col("ts").dt.truncate("1m").alias("m"))
        .agg(pl.col("v").median().alias("median"), pl.len().alias("n"))
        .filter(pl.col("n") >= min_per_minute).sort("m")
    )
    if minutes.height < 2:
        return None
    medians = minutes.get_column("median").to_numpy()
    settled = float(np.median(medians[minutes.height // 2:]))
    ok = medians <= settled * (1 + tolerance)
    # The first minute after the last one that was still above the settled level.
    bad = np.flatnonzero(~ok)
    first = 0 if bad.size == 0 else int(bad[-1]) + 1
    return None if first >= minutes.height else minutes.get_column("m")[first]


def build_arm_samples(requests: pl.DataFrame, *, tenant: str, model: str, version: str, window: Interval,
                      exclude: Sequence[Interval] = ()) -> ArmSamples:
    """The requests of ``version`` in ``[window)``, outside every ``exclude`` interval."""
    lo, hi = window
    keep = (
        (pl.col("tenant") == tenant) & (pl.col("model") == model) & (pl.col("model_version") == version)
        & (pl.col("ts") >= lo) & (pl.col("ts") < hi) & (pl.col("status") != RequestStatus.CANCELLED.value)
    )
    for a, b in exclude:
        keep &= ~((pl.col("ts") >= a) & (pl.col("ts") < b))
    rows = requests.filter(keep)
    errors = rows.filter(pl.col("status").is_in(_ERRORS)).height
    ok = rows.filter(pl.col("status") == RequestStatus.OK.value)
    latencies = {
        signal: np.sort(ok.get_column(col).drop_nulls().drop_nans().to_numpy()) if col in ok.columns
        else np.empty(0)
        for signal, col in _LATENCY_COLUMNS.items()
    }
    return ArmSamples(version=version, requests=rows.height, errors=errors, latencies=latencies)


def _merged(intervals: list[Interval]) -> list[Interval]:
    """Overlapping or touching intervals joined, in time order."""
    out: list[Interval] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out
