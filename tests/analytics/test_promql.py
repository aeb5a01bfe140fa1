"""Unit tests of analytics.promql: Prometheus 2.42 rate/increase and histogram_quantile edge cases."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.errors import PromQLError
from analytics.promql import (
    bucket_quantile,
    compute_histogram_quantile,
    compute_increase,
    compute_rate,
    compute_sum,
    select_instant,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
INF = math.inf


def at(*seconds: float) -> list[datetime]:
    """Datetimes T0 + seconds."""
    return [T0 + timedelta(seconds=s) for s in seconds]


def frame(points: list[tuple[float, float]], **labels: str) -> pl.DataFrame:
    """A sample frame from (seconds after T0, value) pairs, with constant label columns."""
    df = pl.DataFrame({"ts": at(*(p[0] for p in points)), "value": [float(p[1]) for p in points]},
                      schema={"ts": pl.Datetime("us", "UTC"), "value": pl.Float64})
    df = df.with_columns(pl.col("ts").cast(pl.Datetime("ms", "UTC")))
    return df.with_columns(**{k: pl.lit(v) for k, v in labels.items()})


def one(df: pl.DataFrame) -> float:
    """The single value of a one-row result."""
    assert df.height == 1, df
    return float(df["value"][0])


def reference_increase(points: list[tuple[int, float]], t: int, range_ms: int) -> float | None:
    """A scalar transliteration of 2.42's extrapolatedRate (isCounter, not isRate) for one step."""
    win = [(ts, v) for ts, v in points if t - range_ms <= ts <= t]
    if len(win) < 2:
        return None
    result = win[-1][1] - win[0][1]
    prev = win[0][1]
    for _, v in win[1:]:
        if v < prev:
            result += prev
        prev = v
    to_start = (win[0][0] - (t - range_ms)) / 1000
    to_end = (t - win[-1][0]) / 1000
    sampled = (win[-1][0] - win[0][0]) / 1000
    avg = sampled / (len(win) - 1)
    if result > 0 and win[0][1] >= 0:
        to_zero = sampled * (win[0][1] / result)
        to_start = min(to_start, to_zero)
    extrapolated = sampled
    extrapolated += to_start if to_start < avg * 1.1 else avg / 2
    extrapolated += to_end if to_end < avg * 1.1 else avg / 2
    return result * (extrapolated / sampled)


@pytest.mark.parametrize(
    ("points", "t", "range_s", "expected"),
    [
        pytest.param([(s, s) for s in range(0, 61, 10)], 60, 60, 60.0,
                     id="samples on both edges of the closed window need no extrapolation"),
        pytest.param([(0, 10), (10, 20), (20, 5), (30, 15)], 30, 30, 15 - 10 + 20,
                     id="a drop is a counter reset and adds back the value before it"),
        pytest.param([(10, 2), (20, 7), (30, 12)], 30, 30, 10 * (20 + 20 * 2 / 10) / 20,
                     id="start extrapolation stops at the counter's zero point"),
        pytest.param([(10, 50), (20, 55), (30, 60)], 30, 30, 10 * (20 + 10) / 20,
                     id="start extrapolation within 1.1 intervals reaches the window start"),
        pytest.param([(100, 100), (110, 110), (120, 120)], 300, 300, 20 * (20 + 5 + 5) / 20,
                     id="edges farther than 1.1 average intervals extrapolate half an interval"),
    ],
)
def test_increase_follows_extrapolated_rate(points: list[tuple[float, float]], t: float, range_s: float,
                                            expected: float) -> None:
    got = one(compute_increase(frame(points), range_s=range_s, at=at(t), by=[]))
    assert got == pytest.approx(expected, rel=1e-12)
    rate = one(compute_rate(frame(points), range_s=range_s, at=at(t), by=[]))
    assert rate == pytest.approx(expected / range_s, rel=1e-12)


def test_steps_with_fewer_than_two_samples_have_no_point() -> None:
    df = frame([(0, 1), (100, 2), (110, 3)])
    out = compute_increase(df, range_s=30, at=at(20, 105, 115, 200), by=[])
    assert out["ts"].to_list() == at(115)


def test_results_are_per_series_and_keep_the_key_columns() -> None:
    df = pl.concat([frame([(0, 0), (10, 10)], pod="a"), frame([(0, 0), (10, 30)], pod="b")])
    out = compute_increase(df, range_s=10, at=at(10), by=["pod"])
    assert out.columns == ["pod", "ts", "value"]
    assert dict(zip(out["pod"], out["value"], strict=True)) == {"a": 10.0, "b": 30.0}
    assert out.schema["ts"] == pl.Datetime("ms", "UTC")


def test_instant_selection_takes_the_latest_sample_within_a_closed_lookback() -> None:
    df = frame([(0, 1), (10, 2)])
    out = select_instant(df, at=at(5, 10, 310, 310.001), by=[], lookback_s=300)
    assert out["value"].to_list() == [1.0, 2.0, 2.0]
    assert out["ts"].to_list() == at(5, 10, 310)


def test_sum_adds_series_per_group_and_step() -> None:
    df = pl.DataFrame({"le": ["1", "1", "+Inf"], "ts": at(0, 0, 0), "value": [1.0, 2.0, 5.0]})
    out = compute_sum(df.with_columns(pl.col("ts").cast(pl.Datetime("ms", "UTC"))), by=["le"])
    assert dict(zip(out["le"], out["value"], strict=True)) == {"+Inf": 5.0, "1": 3.0}


@pytest.mark.parametrize(
    ("q", "les", "counts", "expected"),
    [
        pytest.param(-0.1, [1, INF], [1, 2], -INF, id="q below 0 is minus infinity"),
        pytest.param(1.1, [1, INF], [1, 2], INF, id="q above 1 is plus infinity"),
        pytest.param(math.nan, [1, INF], [1, 2], math.nan, id="q NaN is NaN"),
        pytest.param(0.5, [1, 2], [1, 2], math.nan, id="no +Inf bucket is NaN"),
        pytest.param(0.5, [INF], [4], math.nan, id="fewer than two buckets is NaN"),
        pytest.param(0.5, [1, INF], [0, 0], math.nan, id="no observations is NaN"),
        pytest.param(0.9, [1, 2, INF], [1, 2, 10], 2.0, id="a rank in the +Inf bucket is the second-last upper bound"),
        pytest.param(0.25, [2, INF], [4, 4], 2 * (1 / 4), id="the lowest bucket starts at 0 when its bound is positive"),
        pytest.param(0.25, [-1, 3, INF], [4, 8, 8], -1.0, id="a lowest bound at or below 0 is returned as is"),
        pytest.param(0.6, [1, 2, 3, INF], [4, 2, 6, 8], 2 + (4.8 - 4) / (6 - 4),
                     id="a count below an earlier bucket is raised to it"),
        pytest.param(0.5, [1, 1, 2, INF], [1, 2, 4, 6], 1 + (3 - 3) / 1,
                     id="duplicate upper bounds are coalesced by adding counts"),
        pytest.param(0.5, [INF, 2, 1], [10, 6, 2], 1 + (5 - 2) / 4, id="bucket order does not matter"),
    ],
)
def test_bucket_quantile_edge_cases(q: float, les: list[float], counts: list[float], expected: float) -> None:
    got = bucket_quantile(q, les, counts)
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected, rel=1e-12)


def test_histogram_quantile_groups_by_key_and_time() -> None:
    df = pl.DataFrame({
        "pod": ["a"] * 3 + ["b"] * 3 + ["a"] * 3,
        "ts": at(0, 0, 0, 0, 0, 0, 10, 10, 10),
        "le": [1.0, 2.0, INF] * 3,
        "value": [2.0, 4.0, 4.0, 0.0, 4.0, 4.0, 1.0, 1.0, 3.0],
    }).with_columns(pl.col("ts").cast(pl.Datetime("ms", "UTC")))
    out = compute_histogram_quantile(0.5, df, by=["pod"])
    got = {(p, t): v for p, t, v in out.iter_rows()}
    expected = {(p, t): bucket_quantile(0.5, [1, 2, INF], g["value"].to_list())
                for (p, t), g in df.group_by(["pod", "ts"])}
    assert got == expected and len(got) == 3


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(lambda: compute_rate(frame([(0, 1)]).drop("value"), range_s=1, at=at(0), by=[]), "missing",
                     id="a missing value column"),
        pytest.param(lambda: compute_rate(frame([(0, 1), (0, 2)]), range_s=1, at=at(0), by=[]), "same time",
                     id="two samples of a series at one time"),
        pytest.param(lambda: compute_rate(frame([(0, 1)]), range_s=0, at=at(0), by=[]), "positive",
                     id="a zero range"),
        pytest.param(lambda: compute_rate(frame([(0, 1)]).with_columns(pl.lit(1).alias("ts")), range_s=1,
                                          at=at(0), by=[]), "Datetime", id="integer timestamps"),
        pytest.param(lambda: compute_histogram_quantile(0.5, pl.DataFrame({"ts": at(0), "le": [math.nan],
                                                                          "value": [1.0]}), by=[]),
                     "NaN", id="a NaN upper bound"),
        pytest.param(lambda: compute_histogram_quantile(0.5, pl.DataFrame({"ts": at(0), "le": ["1"],
                                                                          "value": [1.0]}), by=[]),
                     "Float64", id="a string le column"),
    ],
)
def test_unusable_input_raises_promql_error(call, message: str) -> None:
    with pytest.raises(PromQLError, match=message):
        call()


series_points = st.lists(
    st.tuples(st.integers(1, 60_000), st.one_of(st.floats(0, 1000, allow_nan=False), st.just(0.0))),
    min_size=0, max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(series_points, st.integers(1_000, 400_000), st.lists(st.integers(0, 2_000_000), min_size=1, max_size=15))
def test_vectorised_increase_equals_a_scalar_transliteration(
    steps_and_values: list[tuple[int, float]], range_ms: int, eval_ms: list[int]
) -> None:
    ts, t = [], 0
    for gap, _ in steps_and_values:
        t += gap
        ts.append(t)
    points = list(zip(ts, [v for _, v in steps_and_values], strict=True))
    df = frame([(t / 1000, v) for t, v in points])
    evals = sorted(set(eval_ms))
    out = compute_increase(df, range_s=range_ms / 1000, at=[T0 + timedelta(milliseconds=e) for e in evals], by=[])
    got = {int(t): v for t, v in zip(out["ts"].dt.epoch("ms") - int(T0.timestamp() * 1000), out["value"], strict=True)}
    want = {e: r for e in evals if (r := reference_increase(points, e, range_ms)) is not None}
    assert got.keys() == want.keys()
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-12, abs=1e-12)
