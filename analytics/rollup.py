"""Per tenant x model x model_version x minute rollups of requests, engine metrics and GPU use.

Minutes. A row stands for the minute ``[ts, ts + 60 s)``. Every minute that overlaps
``[start, end)`` is emitted: from ``start`` rounded down to the minute to ``end`` rounded up, so no
request, token, GPU-second or joule of the window is left out. The window only *selects* minutes,
it never cuts one: a minute's row depends only on the raw data of that minute (and, for counters
and allocations, the samples either side of it), never on where the window starts or ends, so
recomputing it from the same raw data gives the identical row and the store's merge on
``ROLLUPS.key`` replaces it in place.

Partial minutes. A minute the data do not cover to its end yet (a run, or a collection still
going, that stopped at 08:39:45 gives minute 08:39 45 s of data) is still emitted, with what the
data hold so far: its requests, the GPU-seconds allocations show up to the last observation, the
energy the counters show up to their last sample (never extrapolated). Rolling it up again once
more data arrived rewrites that minute with the full counts. The same holds for a run that starts
mid-minute: its first minute holds what was observed from the run's start.

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

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pyarrow as pa

from analytics import _rollup_kernels as kernels
from analytics import histogram as hist
from analytics.join import (
    PodGroups,
    assign_request_versions,
    compute_gpu_use,
    fill_holders_from_allocations,
    pod_models,
)
from analytics.promql import compute_histogram_quantile, compute_increase
from analytics.schema import ROLLUPS, UTC_MS, RequestStatus, conform

KEY = ["tenant", "model", "model_version"]
MINUTE = timedelta(minutes=1)
QUANTILES = (0.5, 0.95, 0.99)
LATENCIES = ("ttft", "itl", "e2e", "queue")  # request column <name>_s, engine_hist metric <name>_s
ERROR_STATUSES = (RequestStatus.ERROR.value, RequestStatus.TIMEOUT.value)
COUNTS = ("requests", "errors", "prompt_tokens", "output_tokens")


def minute_bounds(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The minutes overlapping ``[start, end)``: ``start`` rounded down, ``end`` rounded up (empty if ``end <= start``)."""
    lo = _floor_minute(start)
    if end <= start:
        return lo, lo
    hi = _floor_minute(end)
    return lo, hi + MINUTE if hi < end else hi


def rollup_requests(requests: pl.DataFrame | pl.LazyFrame, *, start: datetime, end: datetime) -> pl.DataFrame:
    """The request columns of the rollups (counts, tokens, exact quantiles, histograms) per key and minute.

    Groups are numbered once and the rows counting-sorted by group; then one compiled pass per
    latency sorts each group's values, reads the exact quantiles and counts the histogram buckets
    (:mod:`analytics._rollup_kernels`).
    """
    lo, hi = minute_bounds(start, end)
    lat = [f"{m}_s" for m in LATENCIES]
    df = (
        requests.lazy()
        .filter((pl.col("ts") >= lo) & (pl.col("ts") < hi))
        .select(
            pl.col("ts").dt.truncate("1m"), *KEY,
            pl.col("status").is_in(ERROR_STATUSES).fill_null(False).cast(pl.Int64).alias("__err__"),
            *(pl.col(c).fill_null(0).cast(pl.Int64) for c in ("prompt_tokens", "output_tokens")),
            *(pl.col(c).cast(pl.Float64) for c in lat),  # null -> NaN below; the kernels skip NaN
        )
        .collect()
    )
    if df.is_empty():
        return _empty_requests()
    gid, first = _group_rows(df)
    groups = first.size
    # Number the groups in output order (ts, key) so that the rows come out sorted.
    order = df.select("ts", *KEY)[first].select(pl.arg_sort_by(["ts", *KEY], nulls_last=True)).to_series().to_numpy()
    rank = np.empty(groups, dtype=np.int64)
    rank[order] = np.arange(groups)
    gid, first = rank[gid], first[order]
    offsets, perm = kernels.order_by_group(gid, groups)
    keys = df.select("ts", *KEY)[first]
    cols: list[pl.Series] = [pl.Series("requests", np.diff(offsets), pl.Int64)]
    cols += [
        pl.Series(out, kernels.sum_by_group(gid, groups, df.get_column(c).to_numpy()), pl.Int64)
        for c, out in (("__err__", "errors"), ("prompt_tokens", "prompt_tokens"), ("output_tokens", "output_tokens"))
    ]
    qs = np.asarray(QUANTILES, dtype=np.float64)
    scratch = kernels.make_scratch(df.height)
    for name in LATENCIES:
        values = df.get_column(f"{name}_s").to_numpy()
        quant, list_offsets, buckets, counts = kernels.latency_stats(values, perm, offsets, qs, scratch)
        cols += [pl.Series(_qcol(name, q), quant[:, i], pl.Float64, nan_to_null=True) for i, q in enumerate(QUANTILES)]
        cols.append(_histogram_series(f"{name}_hist", list_offsets, buckets, counts))
    return keys.with_columns(cols)


def _group_rows(df: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(group id per row, first row of each group) for (minute, tenant, model, model_version).

    Hashing the key strings is far cheaper than dictionary-encoding them, but two strings may share
    a hash. The hash is a function of the value, so a column is free of collisions iff its distinct
    values (null included) have distinct hashes; if not, its exact but slower categorical codes
    stand in for its hashes.
    """
    minute = df.get_column("ts").to_physical().to_numpy().view(np.uint64)
    codes = []
    for c in KEY:
        col = df.get_column(c)
        hashed = col.hash()
        distinct = col.unique()
        if distinct.hash().n_unique() != distinct.len():
            hashed = col.cast(pl.Categorical).to_physical().cast(pl.UInt64).fill_null(2**64 - 1)
        codes.append(hashed.to_numpy())
    return kernels.group_rows(minute, *codes)


def _histogram_series(name: str, list_offsets: np.ndarray, buckets: np.ndarray, counts: np.ndarray) -> pl.Series:
    """The sparse histograms as a List(Struct(bucket, count)) column, built from the kernel's flat arrays."""
    structs = pa.StructArray.from_arrays([_arrow(buckets), _arrow(counts)], names=[hist.BUCKET, hist.COUNT])
    return pl.Series(name, pa.LargeListArray.from_arrays(_arrow(list_offsets), structs)).cast(hist.HIST_DTYPE)


def _arrow(values: np.ndarray) -> pa.Array:
    """A zero-copy Arrow view of a numeric array (``pa.array`` would import pandas: +0.3 s once)."""
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), values.size, [None, pa.py_buffer(values)])


def _empty_requests() -> pl.DataFrame:
    schema = {"ts": UTC_MS, **{c: pl.Utf8 for c in KEY}, **{c: pl.Int64 for c in COUNTS}}
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
    """ROLLUPS rows for every minute overlapping ``[start, end)``, partial ones included (see the module doc)."""
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
    # Join only the parts with rows (with requests alone, as in the benchmark, there is nothing to
    # join); the columns of the empty ones are added as nulls.
    parts = [p.with_columns(pl.col("ts").cast(UTC_MS), *(pl.col(c).cast(pl.Utf8) for c in KEY)) for p in parts]
    present = [p for p in parts if not p.is_empty()] or parts[:1]
    out = present[0] if len(present) == 1 else pl.concat([p.select(by) for p in present]).unique()
    for part in present if len(present) > 1 else []:
        out = out.join(part, on=by, how="left", nulls_equal=True)
    out = conform(out.select(c for c in out.columns if c in ROLLUPS.columns), ROLLUPS, fill_missing=True).with_columns(
        *(pl.col(c).fill_null(0) for c in COUNTS),
        *(pl.col(f"{m}_hist").fill_null(pl.lit(pl.Series([[]], dtype=hist.HIST_DTYPE))) for m in LATENCIES),
    )
    return _sorted(out, by)


def _sorted(frame: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """``frame`` sorted by ``by`` (nulls last), without moving the list columns if it already is."""
    order = frame.select(pl.arg_sort_by(by, nulls_last=True)).to_series()
    return frame if order.equals(pl.int_range(frame.height, dtype=order.dtype, eager=True)) else frame[order]


def rollup_engine_hist(engine_hist: pl.DataFrame | None, lo: datetime, hi: datetime) -> pl.DataFrame:
    """``histogram_quantile(q, sum by (tenant, model, model_version, le) (increase(x_bucket[1m])))`` per minute."""
    cols = [f"engine_{_qcol(m, q)}" for m in LATENCIES for q in QUANTILES]
    schema = {"ts": UTC_MS, **{c: pl.Utf8 for c in KEY}, **{c: pl.Float64 for c in cols}}
    if engine_hist is None or engine_hist.is_empty() or hi <= lo:
        return pl.DataFrame(schema=schema)
    series = ["cluster", "tenant", "pod", "instance", "engine", "model", "model_version", "replica", "metric", "le"]
    buckets = engine_hist.filter(
        pl.col("metric").is_in([f"{m}_s" for m in LATENCIES]) & pl.col("le").is_not_null()
        & (pl.col("ts") >= lo - MINUTE) & (pl.col("ts") <= hi)
    ).select(*series, pl.col("ts").cast(UTC_MS), pl.col("value").cast(pl.Float64))
    if buckets.is_empty():
        return pl.DataFrame(schema=schema)
    at = pl.datetime_range(lo + MINUTE, hi, "1m", eager=True, time_zone="UTC").cast(UTC_MS)
    inc = compute_increase(buckets, range_s=60.0, at=at, by=series)
    summed = inc.group_by(*KEY, "metric", "le", "ts").agg(pl.col("value").sum())
    out = pl.DataFrame(schema={"ts": UTC_MS, **{c: pl.Utf8 for c in KEY}})
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
    schema = {"ts": UTC_MS, **{c: pl.Utf8 for c in KEY}, "kv_cache_peak_ratio": pl.Float64}
    if engine_samples is None or engine_samples.is_empty():
        return pl.DataFrame(schema=schema)
    return (
        engine_samples.filter((pl.col("ts") >= lo) & (pl.col("ts") < hi))
        .group_by(pl.col("ts").cast(UTC_MS).dt.truncate("1m"), *KEY)
        .agg(pl.col("kv_cache_usage_ratio").max().alias("kv_cache_peak_ratio"))
        .select(pl.col(c).cast(t) for c, t in schema.items())
    )


def _versioned(frame: pl.DataFrame | None, timeline: pl.DataFrame) -> pl.DataFrame | None:
    """Engine rows with a null version take the timeline's (never a guess during a canary)."""
    if frame is None or frame.is_empty() or frame.get_column("model_version").null_count() == 0:
        return frame
    return assign_request_versions(frame, timeline).drop("variant")
