"""Rollups per tenant x model x version x minute: hand-computed cases and properties against the raw rows."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics import histogram as hist
from analytics.promql import compute_histogram_quantile, compute_increase, compute_sum
from analytics.rollup import build_rollups, minute_bounds, window_quantiles
from analytics.schema import ALLOCATIONS, ENGINE_HIST, ENGINE_SAMPLES, GPU_SAMPLES, REQUESTS, ROLLUPS, conform
from collectors.store.datasets import read_dataset, write_dataset

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)
M = timedelta(minutes=1)


def frame(ds: Any, rows: list[dict[str, Any]]) -> pl.DataFrame:
    return conform(pl.DataFrame(rows, schema_overrides={"ts": pl.Datetime("ms", "UTC")}, infer_schema_length=None), ds, fill_missing=True)


def req(i: int, at: timedelta, **kw: Any) -> dict[str, Any]:
    row = {"ts": T0 + at, "request_id": f"r{i}", "tenant": "team-a", "model": "m", "model_version": "v1",
           "status": "ok", "prompt_tokens": 10, "output_tokens": 5}
    return row | kw


def test_request_counts_errors_tokens_and_exact_quantiles_per_minute_are_hand_computed() -> None:
    rows = [
        req(1, 1 * S, ttft_s=0.1), req(2, 2 * S, ttft_s=0.2, status="error"), req(3, 3 * S, ttft_s=0.4, status="timeout"),
        req(4, 59 * S, ttft_s=0.3, status="cancelled", prompt_tokens=100), req(5, 61 * S, ttft_s=2.0),
        req(6, 5 * S, model_version="v2", ttft_s=9.0),
    ]
    out = build_rollups(requests=frame(REQUESTS, rows), start=T0, end=T0 + 2 * M)
    first = out.filter((pl.col("ts") == T0) & (pl.col("model_version") == "v1")).row(0, named=True)
    assert (first["requests"], first["errors"], first["prompt_tokens"], first["output_tokens"]) == (4, 2, 130, 20)
    assert first["ttft_p50_s"] == pytest.approx(0.25)  # pos 1.5 between 0.2 and 0.3
    assert first["ttft_p95_s"] == pytest.approx(0.3 + 0.85 * 0.1)  # pos 2.85
    assert first["itl_p50_s"] is None and first["itl_hist"] == []
    assert sum(b["count"] for b in first["ttft_hist"]) == 4
    second = out.filter(pl.col("ts") == T0 + M).row(0, named=True)
    assert (second["requests"], second["ttft_p99_s"]) == (1, 2.0)
    assert out.filter(pl.col("model_version") == "v2").get_column("requests").to_list() == [1]
    assert out.schema == ROLLUPS.schema


@pytest.mark.parametrize(
    ("start", "end", "minutes"),
    [
        pytest.param(T0 + 30 * S, T0 + 3 * M + 30 * S, [T0, T0 + M, T0 + 2 * M, T0 + 3 * M],
                     id="partial minutes at both edges are emitted whole"),
        pytest.param(T0, T0 + 3 * M, [T0, T0 + M, T0 + 2 * M], id="aligned window gives every minute"),
        pytest.param(T0 + 10 * S, T0 + 50 * S, [T0], id="a window inside one minute gives that minute"),
        pytest.param(T0 + 10 * S, T0 + 10 * S, [], id="an empty window gives nothing"),
    ],
)
def test_every_minute_overlapping_the_window_is_emitted_with_all_of_its_data(
    start: datetime, end: datetime, minutes: list[datetime]
) -> None:
    rows = [req(i, i * 10 * S, ttft_s=0.1 * i) for i in range(20)]  # 12:00:00 .. 12:03:10
    out = build_rollups(requests=frame(REQUESTS, rows), start=start, end=end)
    assert out.get_column("ts").to_list() == minutes
    assert minute_bounds(start, end) == ((minutes[0], minutes[-1] + M) if minutes else (T0, T0))
    # The window selects minutes, never cuts one: each row counts every request of its minute.
    assert out.get_column("requests").to_list() == [sum(1 for r in rows if m <= r["ts"] < m + M) for m in minutes]


def _store_rollups(root: Path, rollups: pl.DataFrame) -> pl.DataFrame:
    write_dataset(root, ROLLUPS, rollups)
    return read_dataset(root, ROLLUPS).collect().sort("ts", "model_version")


def test_a_trailing_partial_minute_is_rolled_up_and_rewritten_to_full_counts_when_more_data_arrive(tmp_path: Path) -> None:
    # A run that stopped at 12:02:45: its last minute has 45 s of requests; 15 s more arrive later.
    full = [req(i, i * 5 * S, ttft_s=0.01 * i, status="error" if i % 7 == 0 else "ok") for i in range(36)]  # 12:00:00 .. 12:02:55
    end = T0 + 2 * M + 45 * S
    seen = [r for r in full if r["ts"] < end]
    early = build_rollups(requests=frame(REQUESTS, seen), start=T0, end=end)
    assert early.get_column("ts").to_list() == [T0, T0 + M, T0 + 2 * M]
    assert early.get_column("requests").sum() == len(seen) == 33
    assert early.get_column("errors").sum() == sum(r["status"] == "error" for r in seen)
    assert early.get_column("prompt_tokens").sum() == sum(r["prompt_tokens"] for r in seen)
    assert early.get_column("output_tokens").sum() == sum(r["output_tokens"] for r in seen)
    assert _store_rollups(tmp_path, early).get_column("requests").to_list() == [12, 12, 9]

    later = build_rollups(requests=frame(REQUESTS, full), start=T0 + M + 30 * S, end=T0 + 2 * M + 50 * S)
    stored = _store_rollups(tmp_path, later)
    assert stored.get_column("ts").to_list() == [T0, T0 + M, T0 + 2 * M]  # rewritten in place, no duplicate
    assert stored.get_column("requests").to_list() == [12, 12, 12]
    last = stored.row(2, named=True)
    assert last["errors"] == sum(r["status"] == "error" for r in full if r["ts"] >= T0 + 2 * M)
    assert sum(b["count"] for b in last["ttft_hist"]) == 12
    assert last["ttft_p99_s"] == pytest.approx(_linear(np.array([r["ttft_s"] for r in full[24:]]), 0.99))
    assert stored.equals(pl.concat([early.head(2), later.tail(1)]).pipe(conform, ROLLUPS).sort("ts", "model_version"))


def test_gpu_seconds_and_energy_of_a_partial_minute_stop_at_the_last_observation_and_fill_in_later() -> None:
    # One whole GPU allocated from T0, sampled every 15 s, 100 J per sample, the run seen to T0 + 1m 45s.
    def samples(upto: int) -> pl.DataFrame:
        return frame(GPU_SAMPLES, [
            _gpu(T0 + k * 15 * S, tenant="team-a", pod="p1", gpu_util_ratio=0.5, energy_j_total=100.0 * k)
            for k in range(upto + 1)
        ])

    snaps = frame(ALLOCATIONS, [_alloc(T0 + k * M, "p1", "team-a", "whole", 1.0) for k in range(2)])
    engine = frame(ENGINE_SAMPLES, [_engine("p1", "team-a", "m")])
    early = build_rollups(requests=None, gpu_samples=samples(7), allocations=snaps, engine_samples=engine,
                          start=T0, end=T0 + M + 45 * S)
    assert early.get_column("ts").to_list() == [T0, T0 + M]
    assert early.get_column("gpu_allocated_s").to_list() == pytest.approx([60.0, 45.0])
    assert early.get_column("gpu_busy_s").to_list() == pytest.approx([30.0, 22.5])
    assert early.get_column("energy_j").to_list() == pytest.approx([400.0, 300.0])
    # A later end with no more data changes nothing: nothing is claimed past the last observation.
    assert build_rollups(requests=None, gpu_samples=samples(7), allocations=snaps, engine_samples=engine,
                         start=T0, end=T0 + 5 * M).equals(early)
    later = build_rollups(requests=None, gpu_samples=samples(8), allocations=snaps, engine_samples=engine,
                          start=T0 + M, end=T0 + 2 * M)
    assert later.get_column("gpu_allocated_s").to_list() == pytest.approx([60.0])
    assert later.get_column("energy_j").to_list() == pytest.approx([400.0])


def test_a_run_that_starts_mid_minute_has_its_first_minute_rolled_up() -> None:
    start = T0 + 20 * S
    rows = [req(i, start + i * 10 * S - T0) for i in range(10)]  # 12:00:20 .. 12:01:50
    gpu = frame(GPU_SAMPLES, [
        _gpu(start + k * 10 * S, tenant="team-a", pod="p1", gpu_util_ratio=1.0, energy_j_total=10.0 * k) for k in range(10)
    ])
    # kubectl snapshots every minute from the start: each minute is held under two snapshots (40 s + 20 s).
    snaps = frame(ALLOCATIONS, [_alloc(start + k * M, "p1", "team-a", "whole", 1.0) for k in range(2)])
    out = build_rollups(
        requests=frame(REQUESTS, rows), gpu_samples=gpu, allocations=snaps,
        engine_samples=frame(ENGINE_SAMPLES, [_engine("p1", "team-a", "m", start)]), start=start, end=start + 90 * S,
    )
    assert out.get_column("ts").to_list() == [T0, T0 + M]
    assert out.get_column("tenant").to_list() == ["team-a"] * 2  # no energy left to "no tenant"
    assert out.get_column("requests").to_list() == [4, 6]
    assert out.get_column("gpu_allocated_s").to_list() == pytest.approx([40.0, 50.0])  # 12:00:20 .. 12:01:50
    assert out.get_column("gpu_busy_s").to_list() == pytest.approx([40.0, 50.0])  # 100 % busy
    assert out.get_column("energy_j").to_list() == pytest.approx([40.0, 50.0])


def test_recomputing_an_overlapping_window_gives_identical_rows_for_shared_minutes() -> None:
    rows = [req(i, i * 7 * S, ttft_s=0.01 * i, e2e_s=0.1 * i) for i in range(60)]
    requests = frame(REQUESTS, rows)
    a = build_rollups(requests=requests, start=T0, end=T0 + 5 * M)
    b = build_rollups(requests=requests, start=T0 + 2 * M, end=T0 + 8 * M)
    shared = [T0 + 2 * M, T0 + 3 * M, T0 + 4 * M]
    assert a.filter(pl.col("ts").is_in(shared)).to_dicts() == b.filter(pl.col("ts").is_in(shared)).to_dicts()
    assert not pl.concat([a, b]).unique(list(ROLLUPS.key)).is_empty()


_REQUEST_ROWS = st.lists(
    st.tuples(
        st.integers(0, 5 * 60 - 1), st.sampled_from(["team-a", "team-b"]), st.sampled_from(["m1", "m2"]),
        st.sampled_from(["v1", "v2", None]), st.sampled_from(["ok", "error", "timeout", "cancelled"]),
        st.integers(0, 5000), st.integers(0, 500), st.none() | st.floats(0.0, 30.0),
    ),
    max_size=120,
)


def _requests(raw: list[tuple[Any, ...]]) -> pl.DataFrame:
    rows = [
        {"ts": T0 + s * S, "request_id": f"r{i}", "tenant": t, "model": m, "model_version": v, "status": st_,
         "prompt_tokens": p, "output_tokens": o, "ttft_s": x, "e2e_s": x}
        for i, (s, t, m, v, st_, p, o, x) in enumerate(raw)
    ]
    return frame(REQUESTS, rows) if rows else conform(pl.DataFrame(schema=REQUESTS.schema), REQUESTS)


@settings(max_examples=50, deadline=None)
@given(raw=_REQUEST_ROWS)
def test_rollup_totals_equal_raw_totals(raw: list[tuple[Any, ...]]) -> None:
    requests = _requests(raw)
    out = build_rollups(requests=requests, start=T0, end=T0 + 5 * M)
    assert out.get_column("requests").sum() == requests.height
    assert out.get_column("errors").sum() == requests.filter(pl.col("status").is_in(["error", "timeout"])).height
    assert out.get_column("prompt_tokens").sum() == requests.get_column("prompt_tokens").sum()
    assert out.get_column("output_tokens").sum() == requests.get_column("output_tokens").sum()
    assert out.select(ROLLUPS.key).is_duplicated().sum() == 0


@settings(max_examples=50, deadline=None)
@given(raw=_REQUEST_ROWS.filter(bool), q=st.sampled_from([0.5, 0.9, 0.99]), lo=st.integers(0, 2), hi=st.integers(3, 5))
def test_merged_minute_histograms_equal_the_window_histogram_and_its_quantile_is_accurate(
    raw: list[tuple[Any, ...]], q: float, lo: int, hi: int
) -> None:
    requests = _requests(raw)
    out = build_rollups(requests=requests, start=T0, end=T0 + 5 * M)
    start, end = T0 + lo * M, T0 + hi * M
    window = requests.filter((pl.col("ts") >= start) & (pl.col("ts") < end))
    key = ["tenant", "model", "model_version"]
    merged = hist.merge_histograms(out.filter((pl.col("ts") >= start) & (pl.col("ts") < end)), "ttft_hist", key).collect()
    direct = hist.compute_histograms(window, "ttft_s", key, name="ttft_hist").collect()
    merged = merged.filter(pl.col("ttft_hist").list.len() > 0)
    assert merged.sort(key, nulls_last=True).to_dicts() == direct.sort(key, nulls_last=True).to_dicts()
    got = window_quantiles(out, q, start=start, end=end)
    exact = window.group_by(key).agg(pl.col("ttft_s").quantile(q, "linear").alias("exact"))
    both = got.join(exact, on=key, nulls_equal=True).drop_nulls("exact")
    for est, ex in both.select(f"ttft_{hist.quantile_label(q)}_s", "exact").iter_rows():
        assert abs(est - ex) <= hist.RELATIVE_ACCURACY * ex * (1 + 1e-9) + hist.MIN_VALUE


def _hist_rows(pod: str, at: datetime, counts: dict[float, float], version: str = "v1") -> list[dict[str, Any]]:
    return [
        {"ts": at, "tenant": "team-a", "pod": pod, "engine": "vllm", "model": "m", "model_version": version,
         "metric": "ttft_s", "le": le, "value": c}
        for le, c in counts.items()
    ]


def test_engine_histogram_quantile_of_a_hand_computed_minute() -> None:
    rows = _hist_rows("p1", T0, {0.1: 0, 1.0: 0, float("inf"): 0}) + _hist_rows("p1", T0 + M, {0.1: 10, 1.0: 20, float("inf"): 20})
    out = build_rollups(requests=None, engine_hist=frame(ENGINE_HIST, rows), start=T0, end=T0 + M)
    # increase over [T0, T0+60s] is exactly (10, 20, 20): rank 10 ends bucket le=0.1, rank 19 is 0.9 into le=1.
    assert out.item(0, "engine_ttft_p50_s") == pytest.approx(0.1)
    assert out.item(0, "engine_ttft_p95_s") == pytest.approx(0.1 + 0.9 * 0.9)


def test_engine_histogram_quantiles_equal_promql_over_pods_with_a_counter_reset() -> None:
    rng = np.random.default_rng(3)
    les = [0.05, 0.1, 0.5, 1.0, float("inf")]
    rows: list[dict[str, Any]] = []
    for pod in ("p1", "p2"):
        cum = np.zeros(len(les))
        for k in range(16):
            at = T0 - M + k * 15 * S + 2 * S
            if pod == "p2" and k == 9:
                cum = np.zeros(len(les))  # restart: counters reset
            cum = cum + np.cumsum(rng.integers(0, 5, len(les)))
            rows += _hist_rows(pod, at, dict(zip(les, cum.tolist(), strict=True)))
    hist_frame = frame(ENGINE_HIST, rows)
    out = build_rollups(requests=None, engine_hist=hist_frame, start=T0, end=T0 + 3 * M)
    series = ["tenant", "pod", "model", "model_version", "le"]
    at = [T0 + M, T0 + 2 * M, T0 + 3 * M]
    inc = compute_increase(hist_frame.select(*series, "ts", "value"), range_s=60, at=at, by=series)
    summed = compute_sum(inc, by=["tenant", "model", "model_version", "le"])
    for q, col in ((0.5, "engine_ttft_p50_s"), (0.99, "engine_ttft_p99_s")):
        want = compute_histogram_quantile(q, summed, by=["tenant", "model", "model_version"]).sort("ts")
        assert out.sort("ts").get_column(col).to_list() == pytest.approx(want.get_column("value").to_list())


def _gpu(at: datetime, **kw: Any) -> dict[str, Any]:
    return {"ts": at, "cluster": "c", "node": "n1", "gpu_uuid": "GPU-1", "pod_share": False} | kw


def _alloc(at: datetime, pod: str, tenant: str, kind: str, fraction: float, **kw: Any) -> dict[str, Any]:
    return {"ts": at, "cluster": "c", "node": "n1", "pod": pod, "tenant": tenant, "kind": kind, "gpu_fraction": fraction} | kw


def _engine(pod: str, tenant: str, model: str, at: datetime = T0, kv: float = 0.5) -> dict[str, Any]:
    return {"ts": at, "tenant": tenant, "pod": pod, "engine": "vllm", "model": model, "model_version": "v1", "kv_cache_usage_ratio": kv}


def test_a_fully_allocated_whole_gpu_gives_the_window_length_in_gpu_seconds_and_its_energy() -> None:
    samples = [
        _gpu(T0 + k * 15 * S, tenant="team-a", pod="p1", gpu_util_ratio=0.5, energy_j_total=1000.0 + 100.0 * k)
        for k in range(-1, 4 * 3 + 2)
    ]
    out = build_rollups(
        requests=None, gpu_samples=frame(GPU_SAMPLES, samples),
        allocations=frame(ALLOCATIONS, [_alloc(T0 - M, "p1", "team-a", "whole", 1.0)]),
        engine_samples=frame(ENGINE_SAMPLES, [_engine("p1", "team-a", "m", T0 + 10 * S, kv=0.7)]),
        start=T0, end=T0 + 3 * M,
    )
    assert out.get_column("model").to_list() == ["m"] * 3
    assert out.get_column("gpu_allocated_s").to_list() == pytest.approx([60.0] * 3)
    assert out.get_column("gpu_busy_s").to_list() == pytest.approx([30.0] * 3)
    assert out.get_column("energy_j").to_list() == pytest.approx([400.0] * 3)
    assert out.get_column("kv_cache_peak_ratio").to_list() == [0.7, None, None]


def test_energy_handles_a_counter_reset() -> None:
    values = [100.0, 200.0, 300.0, 50.0, 150.0]  # reset after 300: +100, +100, +50, +100
    samples = [_gpu(T0 + k * 15 * S, tenant="team-a", pod="p1", energy_j_total=v) for k, v in enumerate(values)]
    out = build_rollups(requests=None, gpu_samples=frame(GPU_SAMPLES, samples),
                        allocations=frame(ALLOCATIONS, [_alloc(T0, "p1", "team-a", "whole", 1.0)]), start=T0, end=T0 + M)
    assert out.get_column("energy_j").sum() == pytest.approx(350.0)


def test_mig_slices_prorate_energy_use_gr_engine_active_and_leave_the_unheld_share_to_no_tenant() -> None:
    samples = []
    for k in range(5):
        at = T0 + k * 15 * S
        samples += [
            _gpu(at, energy_j_total=700.0 * k),  # parent device row: energy only
            _gpu(at, mig_profile="3g.40gb", mig_instance=1, tenant="team-a", pod="pa", gr_engine_active_ratio=0.8),
            _gpu(at, mig_profile="1g.10gb", mig_instance=9, tenant="team-b", pod="pb", gr_engine_active_ratio=0.5),
        ]
    allocations = [
        _alloc(T0, "pa", "team-a", "mig", 3 / 7, mig_profile="3g.40gb"),
        _alloc(T0, "pb", "team-b", "mig", 1 / 7, mig_profile="1g.10gb"),
    ]
    out = build_rollups(requests=None, gpu_samples=frame(GPU_SAMPLES, samples), allocations=frame(ALLOCATIONS, allocations),
                        start=T0, end=T0 + M)
    by_tenant = {r["tenant"]: r for r in out.to_dicts()}
    assert by_tenant["team-a"]["energy_j"] == pytest.approx(2800.0 * 3 / 7)
    assert by_tenant["team-b"]["energy_j"] == pytest.approx(2800.0 / 7)
    assert by_tenant[None]["energy_j"] == pytest.approx(2800.0 * 3 / 7)
    assert out.get_column("energy_j").sum() == pytest.approx(2800.0)
    assert by_tenant["team-a"]["gpu_busy_s"] == pytest.approx(0.8 * 3 / 7 * 60)
    assert by_tenant["team-b"]["gpu_allocated_s"] == pytest.approx(60 / 7)


def test_time_sliced_gpu_attributes_from_pod_shares_and_totals_from_the_device_row() -> None:
    samples = []
    for k in range(5):
        at = T0 + k * 15 * S
        samples += [
            _gpu(at, gpu_util_ratio=0.9, energy_j_total=100.0 * k),  # device totals, no holder
            _gpu(at, tenant="team-a", pod="pa", pod_share=True, gpu_util_ratio=0.6),
            _gpu(at, tenant="team-b", pod="pb", pod_share=True, gpu_util_ratio=0.3),
        ]
    allocations = [_alloc(T0, "pa", "team-a", "timeslice", 0.5), _alloc(T0, "pb", "team-b", "timeslice", 0.5)]
    out = build_rollups(requests=None, gpu_samples=frame(GPU_SAMPLES, samples), allocations=frame(ALLOCATIONS, allocations),
                        start=T0, end=T0 + M)
    by_tenant = {r["tenant"]: r for r in out.to_dicts()}
    assert set(by_tenant) == {"team-a", "team-b"}
    assert by_tenant["team-a"]["gpu_busy_s"] == pytest.approx(36.0)
    assert by_tenant["team-b"]["gpu_busy_s"] == pytest.approx(18.0)
    assert out.get_column("gpu_allocated_s").sum() == pytest.approx(60.0)
    assert out.get_column("energy_j").sum() == pytest.approx(400.0)


@settings(max_examples=40, deadline=None)
@given(fractions=st.lists(st.sampled_from([1 / 7, 2 / 7, 3 / 7, 0.25, 0.5]), min_size=1, max_size=4), energy=st.floats(1.0, 1e6))
def test_prorated_energy_sums_to_the_device_total(fractions: list[float], energy: float) -> None:
    samples = [_gpu(T0 + k * 30 * S, energy_j_total=energy * k / 2) for k in range(3)]
    samples += [
        _gpu(T0 + k * 30 * S, tenant=f"t{i}", pod=f"p{i}", pod_share=True, gpu_util_ratio=0.1)
        for i in range(len(fractions)) for k in range(2)
    ]
    allocations = [_alloc(T0, f"p{i}", f"t{i}", "timeslice", f) for i, f in enumerate(fractions)]
    out = build_rollups(requests=None, gpu_samples=frame(GPU_SAMPLES, samples), allocations=frame(ALLOCATIONS, allocations),
                        start=T0, end=T0 + M)
    assert out.get_column("energy_j").sum() == pytest.approx(energy)
    assert out.get_column("gpu_allocated_s").sum() == pytest.approx(60.0 * sum(fractions))


def test_an_unallocated_gpu_gives_all_its_energy_to_no_tenant_and_no_gpu_seconds() -> None:
    samples = [_gpu(T0 + k * 15 * S, energy_j_total=50.0 * k, gpu_util_ratio=0.0) for k in range(5)]
    out = build_rollups(requests=None, gpu_samples=frame(GPU_SAMPLES, samples), allocations=None, start=T0, end=T0 + M)
    assert out.select("tenant", "model", "energy_j", "gpu_allocated_s").rows() == [(None, None, 200.0, None)]


_AWKWARD = [-1.0, -np.inf, 0.0, 5e-7, 1e-6, 0.25, 0.25, 3.0, 1e9, 5e9, np.inf, np.nan]


def _random_requests(rng: np.random.Generator, n: int, awkward: float) -> pl.DataFrame:
    """``n`` requests over 3 minutes and a few keys (one null), latencies mixing lognormal and awkward values."""
    def latency() -> np.ndarray:
        values = rng.lognormal(-1.0, 2.0, n)
        pick = rng.random(n) < awkward
        values[pick] = rng.choice(_AWKWARD, pick.sum())
        return values

    rows = {
        "ts": [T0 + int(s) * S for s in rng.integers(0, 180, n)],
        "request_id": [f"r{i}" for i in range(n)],
        "tenant": rng.choice(["team-a", "team-b"], n).tolist(),
        "model": "m",
        "model_version": [None if v == "none" else v for v in rng.choice(["v1", "v2", "none"], n)],
        "status": "ok", "prompt_tokens": 1, "output_tokens": 1,
        **{f"{m}_s": latency() for m in ("ttft", "itl", "e2e", "queue")},
    }
    return conform(pl.DataFrame(rows, schema_overrides={"ts": pl.Datetime("ms", "UTC")}), REQUESTS, fill_missing=True)


@pytest.mark.parametrize(
    ("n", "awkward"),
    [
        pytest.param(3000, 0.02, id="mostly lognormal latencies with a few awkward values"),
        pytest.param(3000, 0.9, id="mostly awkward values so buckets hold many equal and zero-bucket values"),
        pytest.param(40, 0.3, id="groups of one or two values"),
    ],
)
def test_quantiles_and_histograms_of_every_latency_equal_a_direct_computation(n: int, awkward: float) -> None:
    requests = _random_requests(np.random.default_rng(n + int(awkward * 10)), n, awkward)
    out = build_rollups(requests=requests, start=T0, end=T0 + 3 * M)
    key = ["ts", "tenant", "model", "model_version"]
    minutes = requests.with_columns(pl.col("ts").dt.truncate("1m"))
    for m in ("ttft", "itl", "e2e", "queue"):
        direct = hist.compute_histograms(minutes, f"{m}_s", key, name="direct").collect()
        both = out.join(direct, on=key, how="left", nulls_equal=True)
        assert both.get_column(f"{m}_hist").to_list() == [h or [] for h in both.get_column("direct").to_list()]
        for (ts, tenant, _, version), group in minutes.group_by(key):
            values = group.get_column(f"{m}_s").drop_nans().drop_nulls().to_numpy()
            row = out.filter((pl.col("ts") == ts) & pl.col("tenant").eq_missing(tenant) & pl.col("model_version").eq_missing(version))
            for q in (0.5, 0.95, 0.99):
                want = _linear(values, q)
                got = row.item(0, f"{m}_{hist.quantile_label(q)}_s")
                assert got is None if want is None else got == pytest.approx(want, rel=1e-12, abs=1e-300)


def _linear(values: np.ndarray, q: float) -> float | None:
    """The documented quantile: linear between the order statistics at ``q (n - 1)``; None if empty or NaN."""
    if values.size == 0:
        return None
    ordered = np.sort(values)
    pos = q * (values.size - 1)
    lo, hi = ordered[math.floor(pos)], ordered[math.ceil(pos)]
    with np.errstate(invalid="ignore"):
        got = float(lo + (pos - math.floor(pos)) * (hi - lo))
    return None if math.isnan(got) else got


def test_keys_whose_hashes_collide_are_still_told_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    requests = _random_requests(np.random.default_rng(5), 500, 0.1)
    expected = build_rollups(requests=requests, start=T0, end=T0 + 3 * M)
    monkeypatch.setattr(pl.Series, "hash", lambda self, *a, **k: pl.Series(np.zeros(len(self), dtype=np.uint64)))
    colliding = build_rollups(requests=requests, start=T0, end=T0 + 3 * M)
    assert expected.height > 3
    assert colliding.equals(expected)
