"""Tests for collectors.normalise.vllm: renames across versions, counters, histograms, model and replica labels."""

from __future__ import annotations

import re

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from collectors.normalise.vllm import parse_vllm
from tests.collectors.normalise.test_normalise import FIXTURES, parse_page, read_page, wide

TARGET = {"namespace": "team-a", "pod": "chat-7d9f-abcde", "instance": "10.0.0.5:8000"}
MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def test_upstream_design_doc_sample_keeps_what_parses() -> None:
    out = parse_vllm(read_page("upstream/vllm/v0.33.0/docs-design-metrics.md.example-output.txt", labels=TARGET))
    row = out.engine.row(0, named=True)
    assert (row["tenant"], row["pod"], row["model"], row["engine"]) == ("team-a", "chat-7d9f-abcde", MODEL, "vllm")
    assert row["requests_running"] == 8.0 and row["generation_tokens_total"] == 27453.0
    assert row["requests_success_total"] == 1.0 + 131.0  # stop + length
    assert row["requests_failure_total"] == 0.0  # abort
    ttft = out.hist.filter(pl.col("metric") == "ttft_s")
    assert ttft["le"].to_list() == [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1]
    assert ttft["value"].to_list() == [0.0, 0.0, 0.0, 13.0, 97.0, 123.0, 138.0, 140.0]
    assert ttft["count"].unique().to_list() == [140.0]
    assert ttft["sum"].null_count() == ttft.height  # the sample elides _sum: missing, not 0


def test_upstream_usage_doc_sample_reads_the_iteration_tokens_histogram() -> None:
    out = parse_vllm(read_page("upstream/vllm/v0.33.0/docs-usage-metrics.md.example-output.txt", labels=TARGET))
    it = out.hist.filter(pl.col("metric") == "iteration_tokens")
    assert it["le"].to_list() == [1.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0]
    assert it["sum"].unique().to_list() == [0.0]
    assert it["count"].unique().to_list() == [None]


PAGES = ["pages/vllm/v0.8.5-old-names.txt", "pages/vllm/v0.10.2-both-names.txt", "pages/vllm/v0.33.0-new-names.txt"]


@pytest.mark.parametrize(
    "page",
    [pytest.param(PAGES[0], id="0.8.5 old names"), pytest.param(PAGES[1], id="0.10.2 old and new names side by side")],
)
def test_old_and_new_metric_names_normalise_the_same(page: str) -> None:
    new = parse_vllm(read_page(PAGES[2], labels=TARGET))
    other = parse_vllm(read_page(page, labels=TARGET))
    assert_frame_equal(other.engine, new.engine)
    assert_frame_equal(other.hist, new.hist)


def test_new_page_values() -> None:
    out = parse_vllm(read_page(PAGES[2], labels=TARGET))
    row = out.engine.row(0, named=True)
    assert row["kv_cache_usage_ratio"] == 0.42 and row["replica"] == "0"
    assert row["prompt_tokens_total"] == 5000.0  # the _created sample is ignored
    assert (row["prefix_cache_queries_total"], row["prefix_cache_hits_total"]) == (4000.0, 1000.0)
    assert (row["requests_success_total"], row["requests_failure_total"]) == (98.0, 2.0)
    assert row["preemptions_total"] == 2.0
    assert set(out.hist["metric"].unique()) == {"ttft_s", "itl_s", "e2e_s"}
    assert out.hist.filter(pl.col("metric") == "itl_s")["count"].unique().to_list() == [9000.0]


def test_colon_rewritten_names_are_recognised() -> None:
    text = (FIXTURES / PAGES[2]).read_text()
    rewritten = re.sub(r"^(# TYPE )?vllm:", r"\1vllm_", text, flags=re.MULTILINE)
    assert "vllm_num_requests_running{" in rewritten
    out = parse_vllm(parse_page(rewritten, labels=TARGET))
    expected = parse_vllm(read_page(PAGES[2], labels=TARGET))
    assert_frame_equal(out.engine, expected.engine)
    assert_frame_equal(out.hist, expected.hist)


def test_triton_vllm_backend_labels_give_model_and_version() -> None:
    page = "upstream/triton/vllm_backend-README.md.metrics-sample.txt"
    out = parse_vllm(read_page(page, labels={**TARGET, "model_version": "rev-7"}))
    row = out.engine.row(0, named=True)
    # The pod's revision is the version; Triton's repository version stays beside it, in the replica.
    assert (row["model"], row["model_version"], row["replica"]) == ("vllm_model", "rev-7", "1")
    assert (row["prompt_tokens_total"], row["generation_tokens_total"]) == (10.0, 16.0)
    itl = out.hist.filter(pl.col("metric") == "itl_s")
    assert itl["le"].to_list() == [0.01, float("inf")] and itl["value"].to_list() == [14.0, 15.0]
    assert itl["sum"][0] == pytest.approx(0.04501533508300781)


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        pytest.param({"model_version": "rev-7", "pod_template_hash": "5c4b"}, "rev-7", id="target model_version first"),
        pytest.param({"rollouts_pod_template_hash": "6f8d", "pod_template_hash": "5c4b"}, "6f8d",
                     id="then the Argo rollouts pod template hash"),
        pytest.param({"pod_template_hash": "5c4b", "pod": "chat-7b4f9c8d6f-x2k9p"}, "5c4b",
                     id="then the Deployment pod template hash"),
        pytest.param({"pod": "chat-7b4f9c8d6f-x2k9p"}, "7b4f9c8d6f", id="then the hash in the pod's name"),
        pytest.param({"pod": "chat-0"}, None, id="a StatefulSet pod's name has none"),
        pytest.param({}, None, id="else none"),
    ],
)
def test_model_version_fallbacks(labels: dict[str, str], expected: str | None) -> None:
    frame = wide([("vllm:num_requests_running", {"namespace": "team-a", "model_name": "m", **labels}, 1.0)])
    assert parse_vllm(frame).engine["model_version"].to_list() == [expected]


def test_triton_vllm_backend_version_is_never_the_model_version() -> None:
    page = "upstream/triton/vllm_backend-README.md.metrics-sample.txt"
    row = parse_vllm(read_page(page, labels=TARGET)).engine.row(0, named=True)
    assert (row["model_version"], row["replica"]) == (None, "1")  # no pod revision known: null, not "1"
    # A target label `version` (a pod label mapped by service discovery) displaces Triton's to exported_.
    row = parse_vllm(read_page(page, labels={**TARGET, "version": "v2"})).engine.row(0, named=True)
    assert (row["model_version"], row["replica"]) == (None, "1")


def test_each_engine_index_is_its_own_replica() -> None:
    base = {"namespace": "team-a", "model_name": "m"}
    frame = wide([("vllm:num_requests_running", {**base, "engine": "0"}, 3.0),
                  ("vllm:num_requests_running", {**base, "engine": "1"}, 5.0)])
    out = parse_vllm(frame).engine
    assert out["replica"].to_list() == ["0", "1"] and out["requests_running"].to_list() == [3.0, 5.0]


def test_without_finished_reason_everything_is_success_and_failure_stays_null() -> None:
    frame = wide([("vllm:request_success_total", {"namespace": "team-a", "model_name": "m"}, 12.0)])
    row = parse_vllm(frame).engine.row(0, named=True)
    assert row["requests_success_total"] == 12.0 and row["requests_failure_total"] is None
