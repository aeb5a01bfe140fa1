"""Tests for collectors.normalise.triton: counters, units, summaries, the first-response histogram, tenant, GPUs."""

from __future__ import annotations

import polars as pl
import pytest

from analytics.schema import GPU_SAMPLES
from collectors.normalise.triton import parse_triton
from tests.collectors.normalise.test_normalise import read_page

TARGET = {"namespace": "team-a", "pod": "triton-6b7c-xyz", "instance": "10.0.0.7:8002", "model_version": "rev-2"}
PAGE = "pages/triton/namespacing-two-gpus.txt"
GPU0 = "GPU-aaaaaaaa-0000-0000-0000-000000000000"


def test_upstream_counter_sample_converts_microseconds() -> None:
    row = parse_triton(read_page("upstream/triton/metrics.md.counter-sample.txt", labels=TARGET)).engine.row(0, named=True)
    assert (row["model"], row["model_version"], row["engine"]) == ("my_model", "rev-2", "triton")
    assert row["replica"] == "1"  # Triton's repository version, no gpu_uuid on this sample
    assert row["requests_success_total"] == 161.0
    assert row["queue_duration_s_total"] == pytest.approx(0.01111)


def test_upstream_summary_sample_becomes_quantile_rows_in_seconds() -> None:
    hist = parse_triton(read_page("upstream/triton/metrics.md.summary-sample.txt", labels=TARGET)).hist
    assert hist["metric"].unique().to_list() == ["queue_s"]
    assert hist["quantile"].to_list() == [0.5, 0.9, 0.95, 0.99, 0.999]
    assert hist["value"].to_list() == pytest.approx([55e-6, 97e-6, 98e-6, 101e-6, 101e-6])
    assert hist["le"].null_count() == 5
    assert hist["sum"].unique().to_list() == pytest.approx([0.01111])
    assert hist["count"].unique().to_list() == [161.0]


def test_upstream_histogram_sample_without_bucket_suffix_gives_buckets_in_seconds() -> None:
    hist = parse_triton(read_page("upstream/triton/metrics.md.histogram-sample.txt", labels=TARGET)).hist
    assert hist["metric"].unique().to_list() == ["first_response_s"]
    assert hist["le"].to_list() == [0.1, 0.5, 2.0, 5.0, float("inf")]
    assert hist["value"].to_list() == [8.0, 30.0, 36.0, 37.0, 37.0]
    assert hist["sum"].unique().to_list() == pytest.approx([10.771])
    assert hist["count"].unique().to_list() == [37.0]


def test_tritons_namespace_is_never_the_tenant() -> None:
    frame = read_page(PAGE, labels=TARGET)
    assert "exported_namespace" in frame.columns  # Triton's repository path, renamed by the scrape
    out = parse_triton(frame)
    assert out.engine["tenant"].unique().to_list() == ["team-a"]
    assert out.hist["tenant"].unique().to_list() == ["team-a"]


def test_without_a_target_namespace_tritons_own_is_not_taken() -> None:
    out = parse_triton(read_page(PAGE, labels={"pod": "triton-6b7c-xyz"}))
    assert out.engine.height == 0 and out.hist.height == 0
    assert out.dropped["missing_tenant"] > 0


def test_one_row_per_gpu_with_failures_summed_over_reasons() -> None:
    engine = parse_triton(read_page(PAGE, labels=TARGET)).engine
    assert engine["replica"].to_list() == [f"3/{GPU0}", "3/GPU-bbbbbbbb-0000-0000-0000-000000000000"]
    # The pod's revision is the version (it joins requests and rollout events); Triton's is in the replica.
    assert engine["model_version"].unique().to_list() == ["rev-2"]
    assert engine["requests_failure_total"].to_list() == [3.0, 3.0]
    assert engine["requests_success_total"].to_list() == [100.0, 60.0]
    assert engine["inference_count_total"].to_list() == [400.0, 240.0]
    assert engine["request_duration_s_total"].to_list() == pytest.approx([25.0, 18.0])
    assert engine["compute_infer_duration_s_total"].to_list() == pytest.approx([20.0, 15.0])
    assert engine["requests_waiting"].to_list() == [5.0, 2.0]


def test_without_the_pods_revision_the_model_version_is_null_never_tritons_version() -> None:
    labels = {k: v for k, v in TARGET.items() if k != "model_version"}
    engine = parse_triton(read_page(PAGE, labels=labels)).engine
    assert engine["model_version"].unique().to_list() == [None]
    assert engine["replica"].str.starts_with("3/").all()  # the repository version is kept beside it


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        pytest.param({"rollouts_pod_template_hash": "6f8d9c7b5d"}, "6f8d9c7b5d", id="rollouts hash label"),
        pytest.param({"pod_template_hash": "5c4b8d7f6b"}, "5c4b8d7f6b", id="pod-template-hash label"),
        pytest.param({"pod": "qwen-14b-7b4f9c8d6f-x2k9p"}, "7b4f9c8d6f", id="hash in the pod's name"),
        # A pod label `version` mapped onto the target moves Triton's own to exported_version.
        pytest.param({"version": "v2", "pod": "qwen-14b-7b4f9c8d6f-x2k9p"}, "7b4f9c8d6f",
                     id="a target label `version` is not Triton's"),
    ],
)
def test_the_pods_revision_from_service_discovery_labels(labels: dict[str, str], expected: str) -> None:
    base = {k: v for k, v in TARGET.items() if k != "model_version"}
    engine = parse_triton(read_page(PAGE, labels={**base, **labels})).engine
    assert engine["model_version"].unique().to_list() == [expected]
    assert engine["replica"].str.starts_with("3/").all()


def test_gpu_gauges_only_on_request() -> None:
    frame = read_page(PAGE, labels=TARGET)
    assert parse_triton(frame).gpu.height == 0
    gpu = parse_triton(frame, include_gpu=True).gpu.sort("gpu_uuid")
    assert gpu.schema == GPU_SAMPLES.schema
    row = gpu.row(0, named=True)
    assert (row["gpu_uuid"], row["node"], row["tenant"], row["pod_share"]) == (GPU0, "10.0.0.7:8002", "team-a", False)
    assert row["gpu_util_ratio"] == 0.75 and row["power_w"] == 350.5
    assert row["energy_j_total"] == 123456.5  # Triton reports J already
    assert row["fb_used_bytes"] == 42949672960 and row["fb_free_bytes"] == 85899345920 - 42949672960
    assert gpu["fb_free_bytes"][1] is None  # second GPU reports no memory: null, not 0


def test_first_response_histogram_with_bucket_suffix() -> None:
    hist = parse_triton(read_page(PAGE, labels=TARGET)).hist.filter(pl.col("metric") == "first_response_s")
    assert hist["le"].to_list() == [0.1, 0.5, 2.0, 5.0, float("inf")]
    assert hist["sum"].unique().to_list() == pytest.approx([31.0])
