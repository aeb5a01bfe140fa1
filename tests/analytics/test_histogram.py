"""Mergeable log-bucket histograms: layout, merging and quantile accuracy."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics import histogram as hist

_VALUES = st.lists(st.floats(min_value=0.0, max_value=1e5, allow_nan=False), min_size=1, max_size=200)


@pytest.mark.parametrize(
    "value",
    [pytest.param(v, id=f"{v} lands in a bucket whose representative is within 1 percent") for v in (1e-6, 0.0123, 1.0, 7.5, 3600.0)],
)
def test_a_value_is_within_the_relative_accuracy_of_its_buckets_representative(value: float) -> None:
    bucket = pl.select(hist.bucket_of(pl.lit(value))).item()
    assert abs(hist.bucket_value(bucket) - value) <= hist.RELATIVE_ACCURACY * value * (1 + 1e-12)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(0.0, hist.ZERO_BUCKET, id="zero goes to the zero bucket"),
        pytest.param(-0.5, hist.ZERO_BUCKET, id="a negative latency from clock skew goes to the zero bucket"),
        pytest.param(float("nan"), None, id="nan is not counted"),
        pytest.param(None, None, id="null is not counted"),
        pytest.param(1.0, 0, id="one is the upper bound of bucket zero"),
    ],
)
def test_special_values_have_fixed_buckets(value: float | None, expected: int | None) -> None:
    got = pl.select(hist.bucket_of(pl.lit(value, dtype=pl.Float64))).item()
    assert got == expected


@settings(max_examples=60, deadline=None)
@given(values=_VALUES, parts=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_merging_part_histograms_equals_the_histogram_of_the_whole(values: list[float], parts: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    frame = pl.DataFrame({"g": ["a"] * len(values), "part": rng.integers(0, parts, len(values)), "x": values})
    per_part = hist.compute_histograms(frame, "x", ["g", "part"], name="h")
    merged = hist.merge_histograms(per_part, "h", ["g"]).collect()
    whole = hist.compute_histograms(frame, "x", ["g"], name="h").collect()
    assert merged.to_dicts() == whole.to_dicts()


@settings(max_examples=80, deadline=None)
@given(values=_VALUES, q=st.sampled_from([0.0, 0.5, 0.9, 0.95, 0.99, 1.0]))
def test_a_histogram_quantile_is_within_the_documented_accuracy_of_the_exact_one(values: list[float], q: float) -> None:
    frame = pl.DataFrame({"g": ["a"] * len(values), "x": values})
    h = hist.compute_histograms(frame, "x", ["g"], name="h")
    got = hist.histogram_quantiles(h, "h", [q], ["g"]).collect()
    exact = float(np.quantile(np.asarray(values), q, method="linear"))
    estimate = got.item(0, f"h_{hist.quantile_label(q)}")
    assert abs(estimate - exact) <= hist.RELATIVE_ACCURACY * exact * (1 + 1e-9) + hist.MIN_VALUE
    assert got.item(0, "h_count") == len(values)
    pairs = h.collect().item(0, "h")
    assert quantile_close(hist.quantile_of(pairs, q), estimate)


def quantile_close(a: float | None, b: float) -> bool:
    return a is not None and math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)


def test_histograms_are_sparse_and_sorted_by_bucket() -> None:
    frame = pl.DataFrame({"g": ["a"] * 5, "x": [5.0, 0.001, 5.0, 0.0, 100.0]})
    h = hist.compute_histograms(frame, "x", ["g"], name="h").collect().item(0, "h")
    buckets = [p["bucket"] for p in h]
    assert buckets == sorted(buckets)
    assert [p["count"] for p in h] == [1, 1, 2, 1]


@pytest.mark.parametrize(
    ("q", "label"),
    [pytest.param(0.5, "p50", id="median"), pytest.param(0.999, "p99_9", id="three nines"), pytest.param(1.0, "p100", id="max")],
)
def test_quantile_labels_are_column_safe(q: float, label: str) -> None:
    assert hist.quantile_label(q) == label
