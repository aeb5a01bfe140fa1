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
sampled in the minute by any pod of the version. GPU-seconds and energy: :func:`analytics.join.compute_gpu_use`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pyarrow as pa

from analytics import histogram as hist
from analytics.join import (
    PodGroups,
    assign_request_versions,
    compute_gpu_use,
    fill_holders_from_allocations,
    pod_models,
)
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


def rollup_requests(requests: pl.DataFrame | pl.LazyFrame, *, start: datetime, end: datetime) -> pl.DataFrame:
    """The request columns of the rollups (counts, tokens, exact quantiles, histograms) per key and minute.

    Rows are sorted by an integer group id once; each latency is then sorted within its group (a
    cheap slice sort), and the exact quantiles and the sparse histograms are read off the sorted
    values with array arithmetic, so one pass serves both.
    """
    lo, hi = minute_bounds(start, end)
    lat = [f"{m}_s" for m in LATENCIES]
    df = (
        requests.lazy()
        .filter((pl.col("ts") >= lo) & (pl.col("ts") < hi))
        .select(
            pl.col("ts").dt.truncate("1m"), *KEY,
            pl.col("status").is_in(ERROR_STATUSES).fill_null(False).alias("__err__"),
            "prompt_tokens", "output_tokens",
            *(pl.col(c).cast(pl.Float64).fill_nan(None) for c in lat),
        )
        .collect()
    )
    if df.is_empty():
        return _empty_requests()
    # Sort only the numeric columns (moving the strings is the expensive part); each group's key
    # strings are fetched from its first row afterwards.
    num = (
        df.select("__err__", "prompt_tokens", "output_tokens", *lat)
        .with_columns(_group_id(df), pl.int_range(pl.len(), dtype=pl.UInt32).alias("__row__"))
        .sort("__gid__")
    )
    grouped = num.group_by("__gid__", maintain_order=True).agg(
        pl.col("__row__").first(),
        pl.len().cast(pl.Int64).alias("requests"),
        pl.col("__err__").sum().cast(pl.Int64).alias("errors"),
        pl.col("prompt_tokens").sum().cast(pl.Int64),
        pl.col("output_tokens").sum().cast(pl.Int64),
        *(pl.col(c).drop_nulls().sort() for c in lat),
    )
    keys = df.select("ts", *KEY)[grouped.get_column("__row__")]
    cols: list[pl.Series] = []
    for name in LATENCIES:
        offsets, values = _flat(grouped.get_column(f"{name}_s"))
        cols += [pl.Series(_qcol(name, q), _sorted_quantile(offsets, values, q), pl.Float64, nan_to_null=True) for q in QUANTILES]
        cols.append(_sorted_histograms(offsets, values, f"{name}_hist"))
    return pl.concat([keys, grouped.select(*COUNTS)], how="horizontal").with_columns(cols)


def _group_id(df: pl.DataFrame) -> pl.Series:
    """A unique Int64 per (minute, tenant, model, model_version), cheap to sort by."""
    minute = (pl.col("ts").dt.epoch("ms") // 60_000).cast(pl.Int64)
    codes = df.select(
        (minute - minute.min()).alias("ts"),
        *(pl.col(c).cast(pl.Categorical).to_physical().cast(pl.Int64).fill_null(-1).add(1).alias(c) for c in KEY),
    )
    widths = [int(codes.get_column(c).max() or 0) + 1 for c in ("ts", *KEY)]  # type: ignore[arg-type]
    if math.prod(widths) >= 2**62:
        # Categorical codes index a process-wide pool: re-number densely before they can overflow.
        codes = codes.with_columns(pl.col(c).rank("dense").cast(pl.Int64) for c in KEY)
        widths = [widths[0], *(int(codes.get_column(c).max() or 0) + 1 for c in KEY)]  # type: ignore[arg-type]
    gid = codes.get_column("ts")
    for c, width in zip(KEY, widths[1:], strict=True):
        gid = gid * width + codes.get_column(c)
    return gid.alias("__gid__")


def _flat(lists: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (len n+1) and flat values of a List(Float64) column without nulls inside."""
    arr = lists.rechunk().to_arrow()
    arr = arr.combine_chunks() if hasattr(arr, "combine_chunks") else arr
    offsets = np.asarray(arr.offsets, dtype=np.int64)
    values = np.asarray(arr.values, dtype=np.float64)[offsets[0]:offsets[-1]]
    return offsets - offsets[0], values


def _sorted_quantile(offsets: np.ndarray, values: np.ndarray, q: float) -> np.ndarray:
    """Linear-interpolation quantile of each sorted segment; NaN (then null) for an empty one."""
    n = np.diff(offsets)
    out = np.full(n.size, np.nan)
    ok = n > 0
    pos = q * (n[ok] - 1).astype(np.float64)
    lo = np.floor(pos)
    base = offsets[:-1][ok]
    v_lo = values[base + lo.astype(np.int64)]
    v_hi = values[base + np.ceil(pos).astype(np.int64)]
    out[ok] = v_lo + (pos - lo) * (v_hi - v_lo)
    return out


def _sorted_histograms(offsets: np.ndarray, values: np.ndarray, name: str) -> pl.Series:
    """The sparse histogram of each sorted segment: buckets are runs, since buckets rise with values."""
    buckets = pl.select(hist.bucket_of(pl.lit(pl.Series(values)))).to_series().to_numpy()
    new_run = np.empty(buckets.size, dtype=bool)
    if buckets.size:
        new_run[0] = True
        np.not_equal(buckets[1:], buckets[:-1], out=new_run[1:])
    new_run[offsets[1:-1][offsets[1:-1] < buckets.size]] = True  # every segment starts a run
    starts = np.flatnonzero(new_run)
    counts = np.diff(np.append(starts, buckets.size))
    list_offsets = np.searchsorted(starts, offsets).astype(np.int64)  # segment i's runs: [o[i], o[i+1])
    structs = pa.StructArray.from_arrays(
        [pa.array(buckets[starts], type=pa.int32()), pa.array(counts, type=pa.int64())], names=[hist.BUCKET, hist.COUNT]
    )
    lists = pa.LargeListArray.from_arrays(pa.array(list_offsets, type=pa.int64()), structs)
    return pl.Series(name, lists).cast(hist.HIST_DTYPE)


def _empty_requests() -> pl.DataFrame:
    schema = {"ts": TS, **{c: pl.Utf8 for c in KEY}, **{c: pl.Int64 for c in COUNTS}}
    for name in LATENCIES:
        schema |= {_qcol(name, q): pl.Float64 for q in QUANTILES}
        schema[f"{name}_hist"] = hist.HIST_DTYPE
    return pl.DataFrame(schema=schema)


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
    *, requests: pl.DataFrame | None, engine_samples: pl.DataFrame | None = None,
    engine_hist: pl.DataFrame | None = None, gpu_samples: pl.DataFrame | None = None,
    allocations: pl.DataFrame | None = None, timeline: pl.DataFrame | None = None,
    pod_groups: PodGroups = None, start: datetime, end: datetime,
) -> pl.DataFrame:
    """ROLLUPS rows for every whole minute in ``[start, end)`` (see the module doc for each column)."""
    lo, hi = minute_bounds(start, end)
    by = ["ts", *KEY]
    if timeline is not None:
        requests = assign_request_versions(requests, timeline) if requests is not None else None
        engine_samples = _versioned(engine_samples, timeline)
        engine_hist = _versioned(engine_hist, timeline)
    parts = [rollup_requests(requests, start=lo, end=hi) if requests is not None else _empty_requests()]
    parts.append(rollup_engine_hist(engine_hist, lo, hi))
    parts.append(_kv_peak(engine_samples, lo, hi))
    gpu_samples = fill_holders_from_allocations(gpu_samples, allocations) if gpu_samples is not None else None
    parts.append(compute_gpu_use(gpu_samples, allocations, pod_models(engine_samples, pod_groups), lo=lo, hi=hi))
    keys = pl.concat([p.select(pl.col("ts").cast(TS), *(pl.col(c).cast(pl.Utf8) for c in KEY)) for p in parts]).unique()
    out = keys
    for part in parts:
        out = out.join(part.with_columns(pl.col("ts").cast(TS)), on=by, how="left", nulls_equal=True)
    out = out.with_columns(
        *(pl.col(c).fill_null(0) for c in COUNTS),
        *(pl.col(f"{m}_hist").fill_null(pl.lit(pl.Series([[]], dtype=hist.HIST_DTYPE))) for m in LATENCIES),
    )
    return conform(out.select(list(ROLLUPS.columns)), ROLLUPS).sort(by, nulls_last=True)


def rollup_engine_hist(engine_hist: pl.DataFrame | None, lo: datetime, hi: datetime) -> pl.DataFrame:
    """``histogram_quantile(q, sum by (tenant, model, model_version, le) (increase(x_bucket[1m])))`` per minute."""
    cols = [f"engine_{_qcol(m, q)}" for m in LATENCIES for q in QUANTILES]
    schema = {"ts": TS, **{c: pl.Utf8 for c in KEY}, **{c: pl.Float64 for c in cols}}
    if engine_hist is None or engine_hist.is_empty() or hi <= lo:
        return pl.DataFrame(schema=schema)
    series = ["cluster", "tenant", "pod", "instance", "engine", "model", "model_version", "replica", "metric", "le"]
    buckets = engine_hist.filter(
        pl.col("metric").is_in([f"{m}_s" for m in LATENCIES]) & pl.col("le").is_not_null()
        & (pl.col("ts") >= lo - MINUTE) & (pl.col("ts") <= hi)
    ).select(*series, pl.col("ts").cast(TS), pl.col("value").cast(pl.Float64))
    if buckets.is_empty():
        return pl.DataFrame(schema=schema)
    at = pl.datetime_range(lo + MINUTE, hi, "1m", eager=True, time_zone="UTC").cast(TS)
    inc = compute_increase(buckets, range_s=60.0, at=at, by=series)
    summed = inc.group_by(*KEY, "metric", "le", "ts").agg(pl.col("value").sum())
    out = pl.DataFrame(schema={"ts": TS, **{c: pl.Utf8 for c in KEY}})
    for q in QUANTILES:
        qs = compute_histogram_quantile(q, summed, by=[*KEY, "metric"]).with_columns(
            (pl.col("ts") - MINUTE).alias("ts"),
            ("engine_" + pl.col("metric").str.strip_suffix("_s") + f"_{hist.quantile_label(q)}_s").alias("__col__"),
        )
        wide = qs.pivot(on="__col__", index=["ts", *KEY], values="value")
        out = out.join(wide, on=["ts", *KEY], how="full", coalesce=True, nulls_equal=True)
    for c in cols:
        if c not in out.columns:
            out = out.with_columns(pl.lit(None, pl.Float64).alias(c))
    return out.select(pl.col(c).cast(t) for c, t in schema.items())


def _kv_peak(engine_samples: pl.DataFrame | None, lo: datetime, hi: datetime) -> pl.DataFrame:
    """The highest KV-cache usage sampled in each minute by any pod of the version."""
    schema = {"ts": TS, **{c: pl.Utf8 for c in KEY}, "kv_cache_peak_ratio": pl.Float64}
    if engine_samples is None or engine_samples.is_empty():
        return pl.DataFrame(schema=schema)
    return (
        engine_samples.filter((pl.col("ts") >= lo) & (pl.col("ts") < hi))
        .group_by(pl.col("ts").cast(TS).dt.truncate("1m"), *KEY)
        .agg(pl.col("kv_cache_usage_ratio").max().alias("kv_cache_peak_ratio"))
        .select(pl.col(c).cast(t) for c, t in schema.items())
    )


def _versioned(frame: pl.DataFrame | None, timeline: pl.DataFrame) -> pl.DataFrame | None:
    """Engine rows with a null version take the timeline's (never a guess during a canary)."""
    if frame is None or frame.is_empty() or frame.get_column("model_version").null_count() == 0:
        return frame
    return assign_request_versions(frame, timeline).drop("variant")
