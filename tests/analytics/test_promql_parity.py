"""Parity of analytics.promql with a real Prometheus 2.42 on the same raw samples, point by point."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence

import polars as pl
import pytest

from analytics.promql import (
    compute_histogram_quantile,
    compute_increase,
    compute_rate,
    compute_sum,
    select_instant,
)
from collectors.metrics.prom_api import fetch_range
from tests.servers import Series, Server, samples_frame, utc

pytestmark = pytest.mark.realserver

T0 = 1_735_689_600_000  # 2025-01-01T00:00:00Z
MIN = 60_000
END = T0 + 120 * MIN
STEP_S = 45  # not a divisor of the scrape intervals: steps land on, between and beside samples
Q_START, Q_END = T0 + 5 * MIN, END
REL = 1e-9


def _times(rng: random.Random, start: int, end: int, lo_s: int, hi_s: int, gaps: int = 0) -> list[int]:
    """Whole-second scrape times with intervals in [lo_s, hi_s] and a few multi-minute gaps."""
    out, t = [], start
    gap_at = set(rng.sample(range(5, 200), gaps)) if gaps else set()
    while t <= end:
        out.append(t)
        t += rng.randint(lo_s, hi_s) * 1000 + (rng.randint(3, 9) * MIN if len(out) in gap_at else 0)
    return out


def _counter(rng: random.Random, ts: Sequence[int], start: float, resets: float, scale: float = 5.0) -> list[float]:
    """A counter's values: random increments, dropping to a small value with probability ``resets``."""
    out, v = [], start
    for _ in ts:
        out.append(round(v, 3))
        v = rng.uniform(0, 3) if rng.random() < resets else v + rng.expovariate(1 / scale)
    return out


def _histogram(rng: random.Random, name: str, pod: str, les: Sequence[str], ts: Sequence[int],
               *, reset_at: int | None = None, glitch_at: int | None = None) -> list[Series]:
    """Cumulative bucket series from random observations; optional reset and non-monotonic glitch."""
    bounds = [float(x) for x in les]
    counts = [0] * len(les)
    rows: list[list[float]] = []
    for i, _ in enumerate(ts):
        if i == reset_at:
            counts = [0] * len(les)
        for _ in range(rng.randint(0, 6)):
            x = rng.lognormvariate(-0.5, 1.2)
            for j, b in enumerate(bounds):
                if x <= b:
                    counts[j] += 1
        row = [float(c) for c in counts]
        if i == glitch_at:  # a bucket scraped ahead of the next one: le=1 above le=2.5
            row[2] = row[3] + 3
        rows.append(row)
    return [Series.of(f"{name}_bucket", {"pod": pod, "le": le}, ts, [r[j] for r in rows]) for j, le in enumerate(les)]


def make_series(seed: int = 20250101) -> list[Series]:
    """The deterministic data set: counters with resets, late starts, gaps, histograms, random counters."""
    rng = random.Random(seed)
    req = "fl_requests_total"
    s = [
        Series.of(req, {"pod": "a"}, ts := _times(rng, T0, END, 15, 15), _counter(rng, ts, 100, 0.02)),
        Series.of(req, {"pod": "b"}, ts := _times(rng, T0, END, 10, 40, gaps=3), _counter(rng, ts, 0, 0.04)),
        # Starts mid-window far from zero (no zero clamp) and near zero (zero clamp).
        Series.of(req, {"pod": "c"}, ts := _times(rng, T0 + 47 * MIN + 13_000, END, 14, 16), _counter(rng, ts, 500, 0)),
        Series.of(req, {"pod": "d"}, ts := _times(rng, T0 + 61 * MIN, END, 14, 16), _counter(rng, ts, 0.5, 0)),
        Series.of(req, {"pod": "e"}, ts := _times(rng, T0, T0 + 30 * MIN, 20, 20), _counter(rng, ts, 3, 0.1)),
        # Millisecond timestamps, not on whole seconds.
        Series.of(req, {"pod": "f"}, ts := [t + rng.randint(1, 999) for t in _times(rng, T0, END, 29, 31)],
                  _counter(rng, ts, 7, 0.03)),
    ]
    hist = "fl_latency_seconds"
    set_a = ["0.1", "0.5", "1", "2.5", "5", "+Inf"]
    set_b = ["0.05", "0.25", "1", "10", "+Inf"]
    ts_h = _times(rng, T0, END, 14, 16)
    s += _histogram(rng, hist, "a", set_a, ts_h)
    s += _histogram(rng, hist, "b", set_b, _times(rng, T0, END, 10, 30, gaps=2), reset_at=150)
    s += _histogram(rng, hist, "g", set_a, ts_h, glitch_at=200)
    s += _histogram(rng, hist, "n", ["0.5", "1", "2"], ts_h[:100])  # no +Inf bucket: NaN
    for i in range(40):  # seeded random counters: several thousand series-steps
        start = T0 + rng.randint(0, 90) * MIN + rng.randint(0, 59_999)
        ts = _times(rng, start, min(END, start + rng.randint(3, 120) * MIN), 5, 60, gaps=rng.randint(0, 2))
        s.append(Series.of("fl_random_total", {"i": str(i)}, ts, _counter(rng, ts, rng.uniform(0, 1000), 0.03)))
    return s


SERIES = make_series()
SAMPLES = samples_frame(SERIES)
STEPS = pl.datetime_range(utc(Q_START), utc(Q_END), f"{STEP_S}s", eager=True, time_unit="ms")


@pytest.fixture(scope="module")
def prometheus(prometheus_factory) -> Iterator[Server]:
    """One real Prometheus for the module, holding SERIES."""
    yield prometheus_factory(SERIES)


def _points(frame: pl.DataFrame, drop: Sequence[str] = ("__name__",)) -> dict[tuple[object, ...], float]:
    """{(label set, ts ms): value} with null and dropped label columns left out of the label set."""
    labels = [c for c in frame.columns if c not in ("ts", "value", *drop)]
    out: dict[tuple[object, ...], float] = {}
    for row in frame.with_columns(pl.col("ts").dt.epoch("ms")).iter_rows(named=True):
        key = tuple(sorted((k, row[k]) for k in labels if row[k] is not None))
        out[(key, row["ts"])] = row["value"]
    return out


def _same(a: float, b: float) -> bool:
    """Equal to REL relative, NaN equal to NaN, infinities equal by sign."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-12)


def _assert_parity(prometheus: Server, query: str, ours: pl.DataFrame, *, at_least: int) -> None:
    """Compare every point of Prometheus' query_range with ours: same keys, same values."""
    theirs = _points(fetch_range(prometheus.url, query, start=utc(Q_START), end=utc(Q_END), step_s=STEP_S))
    mine = _points(ours)
    assert len(theirs) >= at_least, f"{query}: Prometheus returned only {len(theirs)} points"
    assert mine.keys() - theirs.keys() == set(), f"{query}: points Prometheus does not return"
    assert theirs.keys() - mine.keys() == set(), f"{query}: points we miss"
    bad = [(k, theirs[k], mine[k]) for k in theirs if not _same(theirs[k], mine[k])]
    assert not bad, f"{query}: {len(bad)} of {len(theirs)} differ, e.g. {bad[:3]}"


def _of(name: str) -> pl.DataFrame:
    """The samples of one metric name."""
    return SAMPLES.filter(pl.col("__name__") == name)


@pytest.mark.parametrize(
    ("fn", "name", "range_s", "by", "at_least"),
    [
        pytest.param("increase", "fl_requests_total", 300, ["pod"], 600, id="increase over 5m on counters with resets and late starts"),
        pytest.param("rate", "fl_requests_total", 300, ["pod"], 600, id="rate over 5m on counters with resets and late starts"),
        pytest.param("rate", "fl_requests_total", 60, ["pod"], 400, id="rate over 1m where gaps leave fewer than two samples"),
        pytest.param("increase", "fl_random_total", 120, ["i"], 1000, id="increase over 2m on forty seeded random counters"),
        pytest.param("rate", "fl_random_total", 300, ["i"], 1000, id="rate over 5m on forty seeded random counters"),
        pytest.param("rate", "fl_random_total", 37, ["i"], 300, id="rate over an odd 37s range"),
    ],
)
def test_rate_and_increase_match_prometheus(prometheus: Server, fn: str, name: str, range_s: int,
                                            by: list[str], at_least: int) -> None:
    compute = compute_rate if fn == "rate" else compute_increase
    ours = compute(_of(name), range_s=range_s, at=STEPS, by=by)
    _assert_parity(prometheus, f"{fn}({name}[{range_s}s])", ours, at_least=at_least)


@pytest.mark.parametrize("q", [0.5, 0.9, 0.99, float("nan"), -0.5, 1.5],
                         ids=lambda q: f"histogram_quantile {q} directly on the bucket series")
def test_histogram_quantile_on_raw_buckets_matches_prometheus(prometheus: Server, q: float) -> None:
    buckets = select_instant(_of("fl_latency_seconds_bucket"), at=STEPS, by=["pod", "le"])
    buckets = buckets.with_columns(pl.col("le").cast(pl.Float64))
    ours = compute_histogram_quantile(q, buckets, by=["pod"])
    _assert_parity(prometheus, f"histogram_quantile({q}, fl_latency_seconds_bucket)", ours, at_least=400)


@pytest.mark.parametrize(
    ("q", "by"),
    [
        pytest.param(0.5, ["pod"], id="median over a 5m rate per pod"),
        pytest.param(0.9, ["pod"], id="p90 over a 5m rate per pod"),
        pytest.param(0.99, ["pod"], id="p99 over a 5m rate per pod"),
        pytest.param(0.9, [], id="p90 over a 5m rate summed across pods with different bucket sets"),
    ],
)
def test_histogram_quantile_over_summed_rate_matches_prometheus(prometheus: Server, q: float, by: list[str]) -> None:
    rates = compute_rate(_of("fl_latency_seconds_bucket"), range_s=300, at=STEPS, by=["pod", "le"])
    summed = compute_sum(rates, by=[*by, "le"]).with_columns(pl.col("le").cast(pl.Float64))
    ours = compute_histogram_quantile(q, summed, by=by)
    grouping = ", ".join(["le", *by])
    query = f"histogram_quantile({q}, sum by ({grouping}) (rate(fl_latency_seconds_bucket[5m])))"
    _assert_parity(prometheus, query, ours, at_least=150)
