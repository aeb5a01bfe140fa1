"""Tests for collectors.normalise.rules: the dispatcher, concat, tenant validation and the histogram rules."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from analytics.schema import ENGINE_HIST, ENGINE_SAMPLES, GPU_SAMPLES
from collectors.exposition import parse_text
from collectors.metrics.rounds import attach_target_labels
from collectors.normalise.dispatch import normalise
from collectors.normalise.frames import Normalised, concat
from collectors.normalise.vllm import parse_vllm
from collectors.samples import META_SCHEMA, SourceFormat

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
Sample = tuple[str, Mapping[str, str], float | None]


def wide(samples: list[Sample], ts: datetime = T0) -> pl.DataFrame:
    """A wide sample frame built by hand (one Utf8 column per label seen, null where absent)."""
    names = sorted({k for _, labels, _ in samples for k in labels})
    data: dict[str, list[object]] = {
        "__name__": [s[0] for s in samples], "__family__": [None] * len(samples),
        "__type__": [None] * len(samples), "__value__": [s[2] for s in samples], "__ts__": [ts] * len(samples),
    }
    data.update({k: [s[1].get(k) for s in samples] for k in names})
    return pl.DataFrame(data, schema={**META_SCHEMA, **{k: pl.Utf8 for k in names}})


def parse_page(text: str, *, labels: Mapping[str, str] | None = None, ts: datetime = T0,
               source: str = "<test>") -> pl.DataFrame:
    """Exposition text parsed leniently, stamped with ``ts`` and given target labels like a scrape."""
    page = parse_text(text, strict=False, source=source)
    frame = page.wide().with_columns(pl.col("__ts__").fill_null(pl.lit(ts).cast(pl.Datetime("ms", "UTC"))))
    return attach_target_labels(frame, labels) if labels else frame


def read_page(rel: str, *, labels: Mapping[str, str] | None = None, ts: datetime = T0) -> pl.DataFrame:
    """A fixture page (path under tests/fixtures) read like :func:`parse_page`."""
    return parse_page((FIXTURES / rel).read_text(), labels=labels, ts=ts, source=rel)


def _vllm(tenant: str, model: str | None = "m", value: float = 1.0) -> list[Sample]:
    labels = {"namespace": tenant, **({"model_name": model} if model else {})}
    return [("vllm:num_requests_running", labels, value)]


def test_dispatch_routes_each_job_to_its_frames() -> None:
    dcgm = read_page("pages/dcgm/mig.txt", labels={"node": "n"})
    triton = read_page("upstream/triton/vllm_backend-README.md.metrics-sample.txt", labels={"namespace": "team-a"})
    out_dcgm = normalise(dcgm, SourceFormat.DCGM)
    out_triton = normalise(triton, SourceFormat.TRITON)
    assert out_dcgm.gpu.height == 2 and out_dcgm.engine.height == 0 and out_dcgm.hist.height == 0
    # Triton's vLLM backend page holds vllm:* series only: they normalise as vLLM rows.
    assert out_triton.gpu.height == 0
    assert out_triton.engine["engine"].to_list() == ["vllm"]
    assert out_triton.engine["prompt_tokens_total"].to_list() == [10.0]


@pytest.mark.parametrize(
    "job",
    [pytest.param(j, id=f"an empty {j} frame gives empty conformed frames") for j in SourceFormat],
)
def test_empty_frame_gives_empty_conformed_frames(job: SourceFormat) -> None:
    out = normalise(pl.DataFrame(schema=META_SCHEMA), job)
    assert out.gpu.schema == GPU_SAMPLES.schema
    assert out.engine.schema == ENGINE_SAMPLES.schema
    assert out.hist.schema == ENGINE_HIST.schema
    assert (out.gpu.height, out.engine.height, out.hist.height) == (0, 0, 0)


def test_invalid_tenant_rows_are_dropped_and_counted_not_raised() -> None:
    frame = wide(_vllm("team-a") + _vllm("Team_B") + _vllm("team-c", model=None) + [
        ("vllm:num_requests_running", {"model_name": "m"}, 1.0)])
    out = parse_vllm(frame)
    assert out.engine["tenant"].to_list() == ["team-a"]
    assert out.dropped == {"invalid_tenant": 1, "missing_model": 1, "missing_tenant": 1}


def test_concat_stacks_frames_and_adds_dropped_counts() -> None:
    a = parse_vllm(wide(_vllm("team-a", value=2.0) + _vllm("Bad")))
    b = parse_vllm(wide(_vllm("team-b", value=3.0) + _vllm("Bad")))
    both = concat([a, b])
    assert sorted(both.engine["requests_running"].to_list()) == [2.0, 3.0]
    assert both.dropped == {"invalid_tenant": 2}
    empty = concat([])
    assert isinstance(empty, Normalised) and empty.engine.schema == ENGINE_SAMPLES.schema


def _buckets(le_values: list[str], extra: Mapping[str, str]) -> list[Sample]:
    base = {"namespace": "team-a", "model_name": "m", **extra}
    return [("vllm:e2e_request_latency_seconds_bucket", {**base, "le": le}, float(i + 1))
            for i, le in enumerate(le_values)]


def test_series_with_the_same_bounds_add_up_per_bucket() -> None:
    frame = wide(_buckets(["1", "+Inf"], {"x": "a"}) + _buckets(["1", "+Inf"], {"x": "b"}))
    hist = parse_vllm(frame).hist.sort("le")
    assert hist["le"].to_list() == [1.0, float("inf")]
    assert hist["value"].to_list() == [2.0, 4.0]


def test_series_with_different_bounds_are_never_merged() -> None:
    frame = wide(_buckets(["1", "+Inf"], {"x": "a"}) + _buckets(["2", "5", "+Inf"], {"x": "b"}))
    out = parse_vllm(frame)
    assert out.hist.height == 0
    assert out.dropped == {"hist_le_conflict": 5}


def test_different_bounds_on_different_pods_stay_as_they_are() -> None:
    frame = wide(_buckets(["1", "+Inf"], {"pod": "p1"}) + _buckets(["2", "5", "+Inf"], {"pod": "p2"}))
    hist = parse_vllm(frame).hist
    assert sorted(hist.filter(pl.col("pod") == "p2")["le"].to_list()) == [2.0, 5.0, float("inf")]
    assert hist.filter(pl.col("pod") == "p1").height == 2


def test_a_missing_value_stays_null_never_zero() -> None:
    frame = wide([("vllm:num_requests_running", {"namespace": "team-a", "model_name": "m"}, None),
                  ("vllm:num_requests_waiting", {"namespace": "team-a", "model_name": "m"}, 4.0)])
    row = parse_vllm(frame).engine.row(0, named=True)
    assert row["requests_running"] is None and row["requests_waiting"] == 4.0
    assert row["prompt_tokens_total"] is None
