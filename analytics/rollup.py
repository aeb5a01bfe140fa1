"""Per tenant x model x model_version x minute rollups of requests, engine metrics and GPU use.

Minutes. A row stands for the minute ``[ts, ts + 60 s)``. Only *whole* minutes inside
``[start, end)`` are emitted: from ``start`` rounded up to the minute to ``end`` rounded down, so a
window edge never yields a partial row. A minute's row depends only on the raw data of that minute
(and, for counters and allocations, the samples either side of it), never on where the window
starts, so recomputing it from the same raw data gives the identical row and the store's merge on
``ROLLUPS.key`` replaces it in place.

Requests (by arrival ``ts``): counts, errors (status ``error`` or ``timeout``; ``cancelled`` is the
client's doing), token sums, and exact TTFT / ITL / E2E / queue quantiles with linear
interpolation between order statistics (``pos = q (n - 1)``, as numpy's default, polars'
``"linear"`` and DuckDB's ``quantile_cont``; nulls are ignored), plus one mergeable histogram per
latency (:mod:`analytics.histogram`) so :func:`window_quantiles` answers any window.

Engine histograms: ``histogram_quantile(q, sum by (tenant, model, model_version, le)
(increase(x_bucket[1m])))`` evaluated at the minute's end with :mod:`analytics.promql` (so the range
is Prometheus 2.42's closed ``[ts, ts + 60 s]``). KV cache: the highest ``kv_cache_usage_ratio``
sampled in the minute by any pod of the version. GPU-seconds and energy: :mod:`analytics.gpu_use`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import polars as pl

from analytics import histogram as hist
from analytics.errors import SchemaError
from analytics.promql import compute_histogram_quantile, compute_increase
from analytics.schema import ROLLUPS, TS, RequestStatus, conform

KEY = ["tenant", "model", "model_version"]
MINUTE = timedelta(minutes=1)
QUANTILES = (0.5, 0.95, 0.99)
LATENCIES = ("ttft", "itl", "e2e", "queue")  # request column <name>_s, engine_hist metric <name>_s
ERROR_STATUSES = (RequestStatus.ERROR.value, RequestStatus.TIMEOUT.value)
COUNTS = ("requests", "errors", "prompt_tokens", "output_tokens")


def minute_bounds(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The whole minutes inside ``[start, end)``: ``start`` rounded up, ``end`` rounded down."""
    lo = _floor_minute(start)
    if lo < start:
        lo += MINUTE
    hi = _floor_minute(end)
    return lo, max(lo, hi)


def rollup_requests(requests: pl.DataFrame | pl.LazyFrame, *, start: datetime, end: datetime) -> pl.LazyFrame:
    """The request columns of the rollups (counts, tokens, exact quantiles, histograms) per key and minute."""
    lo, hi = minute_bounds(start, end)
    lf = (
        requests.lazy()
        .filter((pl.col("ts") >= lo) & (pl.col("ts") < hi))
        .with_columns(pl.col("ts").dt.truncate("1m"))
    )
    by = ["ts", *KEY]
    aggs: list[pl.Expr] = [
        pl.len().cast(pl.Int64).alias("requests"),
        pl.col("status").is_in(ERROR_STATUSES).sum().cast(pl.Int64).alias("errors"),
        pl.col("prompt_tokens").sum().cast(pl.Int64).alias("prompt_tokens"),
        pl.col("output_tokens").sum().cast(pl.Int64).alias("output_tokens"),
    ]
    for name in LATENCIES:
        col = pl.col(f"{name}_s")
        aggs += [col.quantile(q, interpolation="linear").alias(_qcol(name, q)) for q in QUANTILES]
    out = lf.group_by(by).agg(aggs)
    for name in LATENCIES:
        out = out.join(hist.compute_histograms(lf, f"{name}_s", by, name=f"{name}_hist"), on=by, how="left", nulls_equal=True)
    return out


def window_quantiles(
    rollups: pl.DataFrame, q: float | Sequence[float], *, start: datetime, end: datetime,
    by: Sequence[str] = KEY, metrics: Sequence[str] = LATENCIES,
) -> pl.DataFrame:
    """Quantiles of each latency over the minutes in ``[start, end)``, by merging the minute histograms.

    Returns ``by`` + ``<metric>_count`` + ``<metric>_<pN>_s`` per metric and quantile; accurate to
    :data:`analytics.histogram.RELATIVE_ACCURACY` of the exact quantile of the same requests.
    """
    qs = [q] if isinstance(q, int | float) else list(q)
    by = list(by)
    rows = rollups.lazy().filter((pl.col("ts") >= start) & (pl.col("ts") < end))
    out = rows.select(by).unique()
    for name in metrics:
        part = hist.histogram_quantiles(rows, f"{name}_hist", qs, by, prefix=name)
        part = part.rename({f"{name}_{hist.quantile_label(x)}": _qcol(name, x) for x in qs})
        out = out.join(part, on=by, how="left", nulls_equal=True)
    return out.with_columns(pl.col(f"{m}_count").fill_null(0) for m in metrics).sort(by, nulls_last=True).collect()


def _qcol(name: str, q: float) -> str:
    return f"{name}_{hist.quantile_label(q)}_s"


def _floor_minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def build_rollups(
    *, requests: pl.DataFrame, engine_samples: pl.DataFrame | None = None, engine_hist: pl.DataFrame | None = None,
    gpu_samples: pl.DataFrame | None = None, allocations: pl.DataFrame | None = None,
    timeline: pl.DataFrame | None = None, start: datetime, end: datetime,
) -> pl.DataFrame:
    """ROLLUPS rows for every whole minute in ``[start, end)``."""
    by = ["ts", *KEY]
    out = rollup_requests(requests, start=start, end=end).collect()
    return out.sort(by, nulls_last=True)
