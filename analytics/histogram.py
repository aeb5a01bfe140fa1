"""Mergeable log-bucket histograms (DDSketch-style) with a fixed layout and a documented relative accuracy.

Layout (fixed, so histograms built anywhere merge by adding counts bucket by bucket):

- ``gamma = (1 + a) / (1 - a)`` with ``a = RELATIVE_ACCURACY`` (1 %);
- a value ``x >= MIN_VALUE`` goes to bucket ``i = ceil(ln(x) / ln(gamma))``, the interval
  ``(gamma^(i-1), gamma^i]``, whose representative ``2 gamma^i / (gamma + 1)`` is within ``a * x`` of
  every ``x`` in it; values above ``MAX_VALUE`` are clamped to ``MAX_VALUE``'s bucket;
- ``0 <= x < MIN_VALUE`` (and negative values, e.g. a latency made negative by clock skew) go to
  ``ZERO_BUCKET``, represented by 0 (absolute error below ``MIN_VALUE``); NaN and null are not counted.

Stored sparse as ``List(Struct(bucket Int32, count Int64))``, sorted by bucket, no zero counts.

Quantiles interpolate linearly between order statistics, as DuckDB's ``quantile_cont`` and polars'
``interpolation="linear"`` do: with ``n`` values and ``pos = q (n - 1)``, the estimate is
``v(lo) + (pos - lo) (v(hi) - v(lo))`` where ``v(r)`` is the representative of the bucket holding
the ``r``-th smallest value (0-based), ``lo = floor(pos)``, ``hi = ceil(pos)``. Since each ``v(r)``
is within ``a`` of the true order statistic and both weights are non-negative, the estimate is
within ``a * exact + MIN_VALUE`` of the exact linear quantile of the same values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import polars as pl

RELATIVE_ACCURACY = 0.01
GAMMA = (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)
LN_GAMMA = math.log(GAMMA)
MIN_VALUE = 1e-6  # 1 microsecond when the unit is seconds
MAX_VALUE = 1e9
ZERO_BUCKET = -(2**31)
BUCKET = "bucket"
COUNT = "count"
HIST_DTYPE = pl.List(pl.Struct({BUCKET: pl.Int32, COUNT: pl.Int64}))


def bucket_of(values: pl.Expr) -> pl.Expr:
    """The bucket index of each value (null for null or NaN)."""
    v = values.fill_nan(None)
    index = (v.clip(MIN_VALUE, MAX_VALUE).log() / LN_GAMMA).ceil().cast(pl.Int32)
    return pl.when(v >= MIN_VALUE).then(index).otherwise(pl.when(v.is_not_null()).then(pl.lit(ZERO_BUCKET, pl.Int32)))


def representative(buckets: pl.Expr) -> pl.Expr:
    """The value a bucket stands for: ``2 gamma^i / (gamma + 1)``, 0 for the zero bucket."""
    return (
        pl.when(buckets == ZERO_BUCKET).then(0.0)
        .otherwise((buckets.cast(pl.Float64) * LN_GAMMA).exp() * (2.0 / (GAMMA + 1.0)))
    )


def bucket_value(bucket: int) -> float:
    """Scalar form of :func:`representative`."""
    return 0.0 if bucket == ZERO_BUCKET else math.exp(bucket * LN_GAMMA) * 2.0 / (GAMMA + 1.0)


def compute_histograms(frame: pl.DataFrame | pl.LazyFrame, value: str, by: Sequence[str], *, name: str | None = None) -> pl.LazyFrame:
    """One sparse histogram of column ``value`` per group of ``by`` (groups with no value get none)."""
    name = name or f"{value}_hist"
    by = list(by)
    counted = (
        frame.lazy()
        .select(*by, bucket_of(pl.col(value)).alias(BUCKET))
        .drop_nulls(BUCKET)
        .group_by([*by, BUCKET])
        .agg(pl.len().cast(pl.Int64).alias(COUNT))
    )
    return _implode(counted, by, name)


def merge_histograms(frame: pl.DataFrame | pl.LazyFrame, hist: str, by: Sequence[str]) -> pl.LazyFrame:
    """Add the histograms in column ``hist`` bucket by bucket per group of ``by``."""
    by = list(by)
    counted = (
        _explode(frame.lazy(), hist, by)
        .group_by([*by, BUCKET])
        .agg(pl.col(COUNT).sum())
    )
    return _implode(counted, by, hist)


def histogram_quantiles(
    frame: pl.DataFrame | pl.LazyFrame, hist: str, qs: Sequence[float], by: Sequence[str], *, prefix: str | None = None
) -> pl.LazyFrame:
    """Per row group of ``by``: the total count (``<prefix>_count``) and each quantile (``<prefix>_p<q>``)."""
    by = list(by)
    prefix = prefix or hist.removesuffix("_hist")
    for q in qs:
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile {q!r} is not in [0, 1]")
    exploded = (
        _explode(frame.lazy(), hist, by)
        .group_by([*by, BUCKET])
        .agg(pl.col(COUNT).sum())
        .sort([*by, BUCKET])
        .with_columns(
            pl.col(COUNT).cum_sum().over(by).alias("__cum__"),
            representative(pl.col(BUCKET)).alias("__rep__"),
        )
    )
    n = pl.col(COUNT).sum()
    aggs: list[pl.Expr] = [n.alias(f"{prefix}_count")]
    for q in qs:
        pos = (n - 1).cast(pl.Float64) * q
        lo = pl.col("__rep__").filter(pl.col("__cum__") > pos.floor()).first()
        hi = pl.col("__rep__").filter(pl.col("__cum__") > pos.ceil()).first()
        aggs.append((lo + (pos - pos.floor()) * (hi - lo)).alias(f"{prefix}_{quantile_label(q)}"))
    return exploded.group_by(by).agg(aggs)


def quantile_of(hist: Sequence[tuple[int, int]] | Sequence[dict[str, int]], q: float) -> float | None:
    """The interpolated quantile of one histogram given as (bucket, count) pairs or dicts; None if empty."""
    pairs = sorted((h[BUCKET], h[COUNT]) if isinstance(h, dict) else (h[0], h[1]) for h in hist)
    total = sum(c for _, c in pairs)
    if total <= 0:
        return None
    pos = q * (total - 1)

    def at(rank: float) -> float:
        cum = 0
        for bucket, count in pairs:
            cum += count
            if cum > rank:
                return bucket_value(bucket)
        return bucket_value(pairs[-1][0])

    lo = math.floor(pos)
    return at(lo) + (pos - lo) * (at(math.ceil(pos)) - at(lo))


def quantile_label(q: float) -> str:
    """``0.5`` -> ``p50``, ``0.999`` -> ``p99_9``: a column-safe name for a quantile."""
    text = f"{q * 100:.6f}".rstrip("0").rstrip(".")
    return "p" + text.replace(".", "_")


def _explode(frame: pl.LazyFrame, hist: str, by: list[str]) -> pl.LazyFrame:
    """(by, bucket, count) rows of the histograms in column ``hist``."""
    return (
        frame.select(*by, pl.col(hist))
        .explode(hist)
        .drop_nulls(hist)
        .select(*by, pl.col(hist).struct.field(BUCKET), pl.col(hist).struct.field(COUNT))
    )


def _implode(counted: pl.LazyFrame, by: list[str], name: str) -> pl.LazyFrame:
    """(by, bucket, count) rows back into one sorted sparse list per group."""
    return (
        counted.filter(pl.col(COUNT) > 0)
        .group_by(by)
        .agg(pl.struct(pl.col(BUCKET), pl.col(COUNT)).sort_by(pl.col(BUCKET)).alias(name))
    )
