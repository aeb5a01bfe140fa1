"""Tests for collectors.normalise.sglang: the upstream sample, TP ranks never summed, DP ranks as replicas."""

from __future__ import annotations

import polars as pl
import pytest

from collectors.normalise.sglang import parse_sglang
from tests.collectors.normalise.test_normalise import read_page, wide

TARGET = {"namespace": "team-c", "pod": "sglang-0", "instance": "10.0.0.9:30000"}
MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def test_upstream_sample() -> None:
    out = parse_sglang(read_page("upstream/sglang/production_metrics.md.example-output.txt", labels=TARGET))
    row = out.engine.row(0, named=True)
    assert (row["model"], row["engine"], row["tenant"]) == (MODEL, "sglang", "team-c")
    assert (row["requests_running"], row["requests_waiting"]) == (162.0, 2826.0)
    assert row["kv_cache_usage_ratio"] == 0.28
    assert (row["prompt_tokens_total"], row["generation_tokens_total"]) == (8.128902e06, 7.557572e06)
    assert set(out.hist["metric"].unique()) == {"ttft_s", "e2e_s", "itl_s"}  # func_latency is not ours
    itl = out.hist.filter(pl.col("metric") == "itl_s")  # the old time_per_output_token_seconds name
    assert itl.height == 19 and itl["count"].unique().to_list() == [7.400757e06]
    assert itl.filter(pl.col("le") == float("inf"))["value"].item() == 7.400757e06
    e2e = out.hist.filter(pl.col("metric") == "e2e_s")
    assert e2e["sum"].unique().to_list() == [3.116093850019932e06]


def test_tp_ranks_are_copies_and_dp_ranks_are_replicas() -> None:
    engine = parse_sglang(read_page("pages/sglang/tp2-dp2.txt", labels=TARGET)).engine
    sched = engine.filter(pl.col("replica").is_not_null()).sort("replica")
    assert sched["replica"].to_list() == ["0", "1"]
    assert sched["requests_running"].to_list() == [10.0, 6.0]  # not 20 and 12
    assert sched["requests_waiting"].to_list() == [4.0, 0.0]
    assert sched["kv_cache_usage_ratio"].to_list() == [0.25, 0.5]
    tok = engine.filter(pl.col("replica").is_null()).row(0, named=True)
    assert tok["prompt_tokens_total"] == 4000.0  # summed over is_streaming
    assert (tok["requests_success_total"], tok["requests_failure_total"]) == (120.0, 3.0)


def test_histogram_series_split_by_streaming_add_up() -> None:
    hist = parse_sglang(read_page("pages/sglang/tp2-dp2.txt", labels=TARGET)).hist
    ttft = hist.filter(pl.col("metric") == "ttft_s")
    assert ttft["value"].to_list() == [15.0, 105.0, 120.0]
    assert ttft["sum"].unique().to_list() == [52.0] and ttft["count"].unique().to_list() == [120.0]
    assert hist.filter(pl.col("metric") == "itl_s")["value"].to_list() == [100.0, 6000.0, 7500.0]


@pytest.mark.parametrize(
    ("ranks", "expected"),
    [
        pytest.param({"0": 7.0, "1": 7.0, "2": 7.0}, 7.0, id="rank 0 among identical copies"),
        pytest.param({"1": 5.0, "2": 9.0}, 9.0, id="rank 0 missing: the max, not the sum"),
    ],
)
def test_gauges_take_rank_zero_or_the_max(ranks: dict[str, float], expected: float) -> None:
    base = {"namespace": "team-c", "model_name": "m", "pp_rank": "0"}
    frame = wide([("sglang:num_running_reqs", {**base, "tp_rank": r}, v) for r, v in ranks.items()])
    assert parse_sglang(frame).engine["requests_running"].to_list() == [expected]
