"""PromQL-exact rate, increase, instant selection, sum and histogram_quantile over polars frames.

The semantics are Prometheus **2.42**'s (``promql/functions.go`` ``extrapolatedRate`` and
``funcHistogramQuantile``, ``promql/quantile.go`` ``bucketQuantile``, ``coalesceBuckets``,
``ensureMonotonic``; ``promql/engine.go`` for range and lookback selection), checked point by point
against the real 2.42 binary in ``tests/analytics/test_promql_parity.py``:

- a range selector ``x[r]`` evaluated at ``t`` holds the samples with ``t - r <= ts <= t`` (both
  ends closed in 2.x; Prometheus 3 made the start open);
- an instant selector at ``t`` takes each series' latest sample with ``t - lookback <= ts <= t``;
- stale markers are not modelled: frames carry real samples only.

Frames: a *sample frame* has ``ts`` (Datetime, UTC), ``value`` (Float64) and the series key columns
named in ``by``; a *bucket frame* also has ``le`` (Float64, ``inf`` for +Inf). Every ``compute_*``
returns ``by`` + ``ts`` (the evaluation time, Datetime ms UTC) + ``value``, one row per point
Prometheus would return, sorted by key and time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

import numpy as np
import polars as pl

from analytics.errors import PromQLError
from analytics.schema import UTC_MS

TS = "ts"
VALUE = "value"
LE = "le"
DEFAULT_LOOKBACK_S = 300.0

Steps = pl.Series | Sequence[datetime]


class RangeFunction(StrEnum):
    """The range-vector functions built on ``extrapolatedRate``."""

    RATE = "rate"
    INCREASE = "increase"


def compute_increase(samples: pl.DataFrame, *, range_s: float, at: Steps, by: Sequence[str]) -> pl.DataFrame:
    """``increase(x[range])`` evaluated at each time in ``at``, per series keyed by ``by``."""
    return _extrapolated_rate(samples, range_s=range_s, at=at, by=by, fn=RangeFunction.INCREASE)


def compute_rate(samples: pl.DataFrame, *, range_s: float, at: Steps, by: Sequence[str]) -> pl.DataFrame:
    """``rate(x[range])`` (per second) evaluated at each time in ``at``, per series keyed by ``by``."""
    return _extrapolated_rate(samples, range_s=range_s, at=at, by=by, fn=RangeFunction.RATE)


def select_instant(
    samples: pl.DataFrame, *, at: Steps, by: Sequence[str], lookback_s: float = DEFAULT_LOOKBACK_S
) -> pl.DataFrame:
    """The instant vector ``x`` at each time in ``at``: each series' latest sample within the lookback."""
    by = list(by)
    series, steps = _series(samples, by, "select_instant"), _steps_ms(at)
    lookback_ms = _duration_ms(lookback_s, "lookback_s")
    parts: list[tuple[int, np.ndarray, np.ndarray]] = []
    for i, (ts, val) in enumerate(series.arrays):
        idx = np.searchsorted(ts, steps, side="right") - 1
        ok = idx >= 0
        ok[ok] = ts[idx[ok]] >= steps[ok] - lookback_ms
        parts.append((i, steps[ok], val[idx[ok]]))
    return _assemble(series.keys, parts, by)


def compute_sum(frame: pl.DataFrame, *, by: Sequence[str]) -> pl.DataFrame:
    """``sum by (by) (...)`` at each evaluation time of a ``compute_*`` result."""
    by = list(by)
    _require(frame, [*by, TS, VALUE], "compute_sum")
    if not frame.schema[VALUE].is_float():
        raise PromQLError(f"compute_sum: column {VALUE!r} must be Float64, got {frame.schema[VALUE]}")
    out = frame.group_by([*by, TS]).agg(pl.col(VALUE).sum())
    return out.select(*by, TS, VALUE).sort([*by, TS], nulls_last=True)


def compute_histogram_quantile(q: float, buckets: pl.DataFrame, *, by: Sequence[str]) -> pl.DataFrame:
    """``histogram_quantile(q, buckets)`` per group of ``by`` + ``ts`` (``le`` Float64, +Inf as inf)."""
    by = list(by)
    if LE in by:
        raise PromQLError("compute_histogram_quantile: 'le' cannot be a grouping column")
    _require(buckets, [*by, TS, LE, VALUE], "compute_histogram_quantile")
    for col in (LE, VALUE):
        if not buckets.schema[col].is_float():
            raise PromQLError(f"compute_histogram_quantile: column {col!r} must be Float64")
    if buckets[LE].is_null().any() or buckets[LE].is_nan().any():
        raise PromQLError("compute_histogram_quantile: 'le' has null or NaN upper bounds")
    if buckets[VALUE].is_null().any():
        raise PromQLError("compute_histogram_quantile: 'value' has nulls")
    if buckets.is_empty():
        return _empty(buckets, by)
    grouped = (
        buckets.sort(LE)
        .group_by([*by, TS], maintain_order=False)
        .agg(pl.col(LE), pl.col(VALUE))
        .sort([*by, TS], nulls_last=True)
    )
    values = [bucket_quantile(q, les, counts) for les, counts in zip(grouped[LE], grouped[VALUE], strict=True)]
    return grouped.select(*by, pl.col(TS).cast(UTC_MS)).with_columns(pl.Series(VALUE, values, pl.Float64))


def bucket_quantile(q: float, upper_bounds: Sequence[float], counts: Sequence[float]) -> float:
    """Prometheus 2.42 ``bucketQuantile`` over one histogram's classic buckets (any order)."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    pairs = sorted(zip((float(u) for u in upper_bounds), (float(c) for c in counts), strict=True),
                   key=lambda p: p[0])
    if not pairs or pairs[-1][0] != math.inf:
        return math.nan
    les, cnt = _coalesce(pairs)
    _ensure_monotonic(cnt)
    if len(les) < 2:
        return math.nan
    observations = cnt[-1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = _go_search(len(les) - 1, lambda i: cnt[i] >= rank)
    if b == len(les) - 1:
        return les[-2]
    if b == 0 and les[0] <= 0:
        return les[0]
    start, end, count = 0.0, les[b], cnt[b]
    if b > 0:
        start = les[b - 1]
        count -= cnt[b - 1]
        rank -= cnt[b - 1]
    return start + (end - start) * _go_div(rank, count)


def _coalesce(pairs: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """Merge buckets with the same upper bound by adding their counts (``coalesceBuckets``)."""
    les: list[float] = []
    cnt: list[float] = []
    for le, c in pairs:
        if les and les[-1] == le:
            cnt[-1] += c
        else:
            les.append(le)
            cnt.append(c)
    return les, cnt


def _ensure_monotonic(cnt: list[float]) -> None:
    """Raise each count to the running maximum, with Go's NaN comparisons (``ensureMonotonic``)."""
    top = cnt[0]
    for i in range(1, len(cnt)):
        # Go's `>` and `<` are both false against NaN, so a NaN count is left alone and never becomes
        # the maximum; a NaN first count freezes the maximum. Python's float comparisons agree.
        if cnt[i] > top:
            top = cnt[i]
        elif cnt[i] < top:
            cnt[i] = top


def _go_search(n: int, pred: object) -> int:
    """Go's ``sort.Search``: the smallest i in [0, n) with pred(i), by the same bisection."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) >> 1
        if not pred(mid):  # type: ignore[operator]
            lo = mid + 1
        else:
            hi = mid
    return lo


def _go_div(a: float, b: float) -> float:
    """IEEE division as Go does it (x/0 is +-Inf or NaN instead of an exception)."""
    with np.errstate(all="ignore"):
        return float(np.float64(a) / np.float64(b))


class _Series:
    """Samples split per series: the key frame and, per key row, sorted (ts ms, value) arrays."""

    __slots__ = ("arrays", "keys")

    def __init__(self, keys: pl.DataFrame, arrays: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.keys = keys
        self.arrays = arrays


def _extrapolated_rate(
    samples: pl.DataFrame, *, range_s: float, at: Steps, by: Sequence[str], fn: RangeFunction
) -> pl.DataFrame:
    """``extrapolatedRate`` with isCounter=true, vectorised over the evaluation steps of each series."""
    by = list(by)
    series, steps = _series(samples, by, f"compute_{fn}"), _steps_ms(at)
    range_ms = _duration_ms(range_s, "range_s")
    range_sec = range_ms / 1000
    parts: list[tuple[int, np.ndarray, np.ndarray]] = []
    for i, (ts, val) in enumerate(series.arrays):
        lo = np.searchsorted(ts, steps - range_ms, side="left")
        hi = np.searchsorted(ts, steps, side="right")
        ok = hi - lo >= 2
        if not ok.any():
            continue
        lo, hi, t_eval = lo[ok], hi[ok], steps[ok]
        n = (hi - lo).astype(np.float64)
        first_v, last_v = val[lo], val[hi - 1]
        first_t, last_t = ts[lo], ts[hi - 1]
        result = last_v - first_v
        # A drop in value is a counter reset: add back the value before the drop, in sample order.
        resets = np.flatnonzero(val[1:] < val[:-1]) + 1
        if resets.size:
            r_lo = np.searchsorted(resets, lo + 1, side="left")
            r_hi = np.searchsorted(resets, hi, side="left")
            for k in np.flatnonzero(r_hi > r_lo):
                acc = result[k]
                for j in resets[r_lo[k] : r_hi[k]]:
                    acc += val[j - 1]
                result[k] = acc
        to_start = (first_t - (t_eval - range_ms)) / 1000
        to_end = (t_eval - last_t) / 1000
        sampled = (last_t - first_t) / 1000
        avg = sampled / (n - 1)
        with np.errstate(all="ignore"):
            # Counters cannot go below zero: never extrapolate the start past the zero point.
            clamp = (result > 0) & (first_v >= 0)
            to_zero = sampled * (first_v / result)
            to_start = np.where(clamp & (to_zero < to_start), to_zero, to_start)
            threshold = avg * 1.1
            interval = sampled + np.where(to_start < threshold, to_start, avg / 2)
            interval = interval + np.where(to_end < threshold, to_end, avg / 2)
            factor = interval / sampled
            if fn is RangeFunction.RATE:
                factor = factor / range_sec
            parts.append((i, t_eval, result * factor))
    return _assemble(series.keys, parts, by)


def _series(samples: pl.DataFrame, by: list[str], what: str) -> _Series:
    """Validate a sample frame and split it into per-series sorted arrays."""
    _require(samples, [*by, TS, VALUE], what)
    if not isinstance(samples.schema[TS], pl.Datetime):
        raise PromQLError(f"{what}: column {TS!r} must be a Datetime, got {samples.schema[TS]}")
    if not samples.schema[VALUE].is_float():
        raise PromQLError(f"{what}: column {VALUE!r} must be Float64, got {samples.schema[VALUE]}")
    if samples[TS].is_null().any() or samples[VALUE].is_null().any():
        raise PromQLError(f"{what}: null timestamps or values")
    frame = samples.select(*by, pl.col(TS).dt.epoch("ms").alias(TS), pl.col(VALUE).cast(pl.Float64))
    dup = frame.select(*by, TS).is_duplicated()
    if dup.any():
        row = frame.filter(dup).row(0, named=True)
        raise PromQLError(f"{what}: two samples of one series at the same time: {row}")
    if frame.is_empty():
        return _Series(frame.select(by), [])
    # Without key columns everything is one series: group on a constant.
    keys_cols = by or [pl.lit(0).alias("__one__")]
    grouped = frame.sort(TS).group_by(keys_cols, maintain_order=False).agg(pl.col(TS), pl.col(VALUE))
    grouped = grouped.sort(by, nulls_last=True) if by else grouped
    arrays = [
        (t.to_numpy().astype(np.int64), v.to_numpy().astype(np.float64))
        for t, v in zip(grouped[TS], grouped[VALUE], strict=True)
    ]
    return _Series(grouped.select(by), arrays)


def _assemble(keys: pl.DataFrame, parts: list[tuple[int, np.ndarray, np.ndarray]], by: list[str]) -> pl.DataFrame:
    """Build the result frame from per-series (key row, eval times, values) parts."""
    schema = {**{c: keys.schema[c] for c in by}, TS: UTC_MS, VALUE: pl.Float64}
    if not parts:
        return pl.DataFrame(schema=schema)
    rows = np.concatenate([np.full(len(t), i, dtype=np.int64) for i, t, _ in parts])
    ts = pl.Series(TS, np.concatenate([t for _, t, _ in parts])).cast(pl.Datetime("ms")).dt.replace_time_zone("UTC")
    values = pl.Series(VALUE, np.concatenate([v for _, _, v in parts]), pl.Float64)
    if not by:
        return pl.DataFrame([ts, values])
    return keys[rows].with_columns(ts, values).select(list(schema))


def _empty(frame: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """An empty result with the key columns' dtypes."""
    return pl.DataFrame(schema={**{c: frame.schema[c] for c in by}, TS: UTC_MS, VALUE: pl.Float64})


def _require(frame: pl.DataFrame, cols: list[str], what: str) -> None:
    """Raise PromQLError naming the columns ``frame`` lacks."""
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise PromQLError(f"{what}: missing column(s) {missing}; has {frame.columns}")
    if len(set(cols)) != len(cols):
        raise PromQLError(f"{what}: a key column repeats or is named like ts/value/le: {cols}")


def _steps_ms(at: Steps) -> np.ndarray:
    """Evaluation times as int64 epoch milliseconds (naive datetimes are taken as UTC)."""
    s = at if isinstance(at, pl.Series) else pl.Series("at", list(at))
    if s.is_empty():
        return np.empty(0, dtype=np.int64)
    if not isinstance(s.dtype, pl.Datetime):
        raise PromQLError(f"evaluation times must be datetimes, got {s.dtype}")
    if s.is_null().any():
        raise PromQLError("evaluation times contain nulls")
    return s.dt.epoch("ms").to_numpy().astype(np.int64)


def _duration_ms(seconds: float, name: str) -> int:
    """A positive duration in whole milliseconds, as PromQL durations are."""
    if not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds <= 0:
        raise PromQLError(f"{name} must be a positive number of seconds, got {seconds!r}")
    ms = round(seconds * 1000)
    if ms < 1:
        raise PromQLError(f"{name} must be at least 1 ms, got {seconds!r}")
    return ms
