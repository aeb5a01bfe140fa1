"""The gate's inputs: both arms over one window, warm-up left out, cancelled requests neither good nor bad."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from analytics.canary.policy import CanarySignal
from analytics.canary.samples import build_arm_samples, compute_ttft_settled_at, compute_warmup_intervals
from analytics.schema import REQUESTS, conform
from analytics.timeline import build_version_timeline
from tests.analytics.test_timeline import PROMOTE, _at, _frame, _row

T0 = datetime(2025, 6, 2, 8, 0, tzinfo=UTC)


def test_warm_up_comes_from_rollout_events_and_every_weight_change() -> None:
    timeline = build_version_timeline(_frame(_row(95, "warmup_started", "v2"), *PROMOTE))
    got = compute_warmup_intervals(timeline, tenant="team-a", model="m", canary_version="v2", warmup_s=30)
    # v2 warms 100-160 (events); steps to 20 % at 100 and 60 % at 200 each leave 30 s out; 300 is the promotion.
    assert got == [(_at(100), _at(160)), (_at(200), _at(230))]


def test_without_a_warm_up_window_only_the_warming_rows_are_left_out() -> None:
    timeline = build_version_timeline(_frame(_row(95, "warmup_started", "v2"), *PROMOTE))
    got = compute_warmup_intervals(timeline, tenant="team-a", model="m", canary_version="v2", warmup_s=0)
    assert got == [(_at(100), _at(160))]


def test_a_canary_still_warming_at_the_last_row_is_left_out_from_then_on() -> None:
    timeline = build_version_timeline(_frame(_row(0, "warmup_started", "v1"), _row(100, "started", "v2"),
                                             _row(100, "weight", None, 20), _row(110, "warmup_started", "v2")))
    (interval,) = compute_warmup_intervals(timeline, tenant="team-a", model="m", canary_version="v2", warmup_s=30)
    assert interval[0] == _at(100) and interval[1] > _at(10**7)


def _requests(rows: list[tuple[float, str, str, float | None]]) -> pl.DataFrame:
    """(seconds after T0, version, status, e2e) -> requests rows of team-a's model m."""
    return conform(pl.DataFrame({
        "ts": [T0 + timedelta(seconds=s) for s, *_ in rows],
        "request_id": [f"r{i}" for i in range(len(rows))],
        "tenant": ["team-a"] * len(rows),
        "model": ["m"] * len(rows),
        "model_version": [v for _, v, _, _ in rows],
        "status": [st for _, _, st, _ in rows],
        "e2e_s": [e for *_, e in rows],
    }), REQUESTS, fill_missing=True)


def test_an_arm_counts_errors_and_timeouts_and_leaves_out_cancelled_and_warm_up() -> None:
    requests = _requests([
        (5, "v2", "ok", 0.5),        # in warm-up: left out
        (20, "v2", "ok", 0.3),
        (21, "v2", "error", None),
        (22, "v2", "timeout", 9.0),
        (23, "v2", "cancelled", 0.1),
        (24, "v2", "ok", None),      # no latency recorded: counted, but no value
        (25, "v2", "ok", 0.2),
        (26, "v1", "ok", 0.1),       # the other arm
        (70, "v2", "ok", 0.9),       # after the window
    ])
    arm = build_arm_samples(requests, tenant="team-a", model="m", version="v2",
                            window=(T0, T0 + timedelta(seconds=60)), exclude=[(T0, T0 + timedelta(seconds=10))])
    assert (arm.requests, arm.errors) == (5, 2)
    np.testing.assert_array_equal(arm.latencies[CanarySignal.E2E], [0.2, 0.3])
    assert arm.latencies[CanarySignal.TTFT].size == 0


def test_ttft_settling_finds_the_first_minute_after_the_cold_ones() -> None:
    ts, ttft = [], []
    for minute in range(10):
        level = 2.0 if minute < 3 else 0.2
        for k in range(10):
            ts.append(T0 + timedelta(minutes=minute, seconds=5 * k))
            ttft.append(level * (1 + 0.01 * k))
    assert compute_ttft_settled_at(ts, ttft) == T0 + timedelta(minutes=3)


def test_a_relapse_moves_the_settled_time_past_it() -> None:
    ts, ttft = [], []
    for minute in range(8):
        level = 1.0 if minute in (0, 4) else 0.2
        ts += [T0 + timedelta(minutes=minute, seconds=s) for s in range(0, 60, 10)]
        ttft += [level] * 6
    assert compute_ttft_settled_at(ts, ttft) == T0 + timedelta(minutes=5)


@pytest.mark.parametrize("minutes", [0, 1])
def test_too_little_data_never_counts_as_settled(minutes: int) -> None:
    ts = [T0 + timedelta(minutes=m, seconds=s) for m in range(minutes) for s in range(0, 60, 6)]
    assert compute_ttft_settled_at(ts, [0.2] * len(ts)) is None


def test_a_version_that_never_settles_gives_none() -> None:
    ts = [T0 + timedelta(minutes=m, seconds=s) for m in range(6) for s in range(0, 60, 6)]
    ttft = [0.1 * 3 ** m for m in range(6) for _ in range(0, 60, 6)]
    assert compute_ttft_settled_at(ts, ttft) is None
