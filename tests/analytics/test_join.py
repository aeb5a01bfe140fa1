"""The join: GPU samples to tenant, pod, model and version; requests and engine rows to the active version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.join import assign_request_versions, attribute_gpu_samples, fill_holders_from_allocations
from analytics.schema import ALLOCATIONS, DEPLOYMENTS, ENGINE_SAMPLES, GPU_SAMPLES, REQUESTS, conform
from analytics.timeline import build_version_timeline

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)


def frame(ds: Any, rows: list[dict[str, Any]]) -> pl.DataFrame:
    return conform(pl.DataFrame(rows, schema_overrides={"ts": pl.Datetime("ms", "UTC")}, infer_schema_length=None), ds, fill_missing=True)


def gpu(at: datetime, **kw: Any) -> dict[str, Any]:
    return {"ts": at, "cluster": "c", "node": "n1", "gpu_uuid": "GPU-1", "pod_share": False} | kw


def engine(pod: str, at: datetime, model: str = "llama", version: str = "v1", tenant: str = "team-a") -> dict[str, Any]:
    return {"ts": at, "tenant": tenant, "pod": pod, "engine": "vllm", "model": model, "model_version": version}


@pytest.mark.parametrize(
    ("skew", "model"),
    [
        pytest.param(-20 * S, "llama", id="engine clock 20 s behind still matches"),
        pytest.param(200 * S, "llama", id="engine clock 200 s ahead still matches"),
        pytest.param(400 * S, None, id="beyond the 300 s tolerance no model is guessed"),
    ],
)
def test_gpu_samples_take_the_model_of_their_pod_within_the_skew_tolerance(skew: timedelta, model: str | None) -> None:
    samples = frame(GPU_SAMPLES, [gpu(T0, tenant="team-a", pod="p1")])
    out = attribute_gpu_samples(samples, engine_samples=frame(ENGINE_SAMPLES, [engine("p1", T0 + skew)]))
    assert out.item(0, "model") == model
    assert out.item(0, "model_version") == ("v1" if model else None)


def test_worker_pods_of_a_multi_node_group_take_the_model_of_the_exporting_pod() -> None:
    samples = frame(GPU_SAMPLES, [gpu(T0, tenant="team-a", pod="lws-0"), gpu(T0, node="n2", tenant="team-a", pod="lws-0-1"),
                                  gpu(T0, node="n3", tenant="team-a", pod="other")])
    groups = {("team-a", "lws-0"): "lws", ("team-a", "lws-0-1"): "lws"}
    out = attribute_gpu_samples(samples, engine_samples=frame(ENGINE_SAMPLES, [engine("lws-0", T0)]), pod_groups=groups)
    assert out.get_column("model").to_list() == ["llama", "llama", None]


def test_an_unlabelled_sample_takes_the_only_candidate_allocation_and_never_guesses_between_two() -> None:
    samples = frame(GPU_SAMPLES, [gpu(T0), gpu(T0, node="n2")])
    allocations = frame(ALLOCATIONS, [
        {"ts": T0 - S, "cluster": "c", "node": "n1", "pod": "p1", "tenant": "team-a", "kind": "whole", "gpu_fraction": 1.0},
        {"ts": T0 - S, "cluster": "c", "node": "n2", "pod": "p2", "tenant": "team-b", "kind": "whole", "gpu_fraction": 1.0},
        {"ts": T0 - S, "cluster": "c", "node": "n2", "pod": "p3", "tenant": "team-b", "kind": "whole", "gpu_fraction": 1.0},
    ])
    out = fill_holders_from_allocations(samples, allocations)
    assert out.get_column("pod").to_list() == ["p1", None]
    assert out.get_column("tenant").to_list() == ["team-a", None]


def test_the_device_row_of_a_time_sliced_gpu_is_never_attributed() -> None:
    samples = frame(GPU_SAMPLES, [gpu(T0), gpu(T0, tenant="team-a", pod="p1", pod_share=True)])
    allocations = frame(ALLOCATIONS, [
        {"ts": T0 - S, "cluster": "c", "node": "n1", "pod": "p1", "tenant": "team-a", "kind": "timeslice", "gpu_fraction": 0.5},
    ])
    out = attribute_gpu_samples(samples, allocations=allocations, engine_samples=frame(ENGINE_SAMPLES, [engine("p1", T0)]))
    assert out.get_column("pod").to_list() == [None, "p1"]
    assert out.get_column("model").to_list() == [None, "llama"]


def test_a_mig_parent_row_is_not_given_to_a_whole_gpu_pod_on_the_node() -> None:
    samples = frame(GPU_SAMPLES, [gpu(T0), gpu(T0, mig_profile="1g.10gb", mig_instance=9, tenant="team-a", pod="pm")])
    allocations = frame(ALLOCATIONS, [
        {"ts": T0 - S, "cluster": "c", "node": "n1", "pod": "pw", "tenant": "team-b", "kind": "whole", "gpu_fraction": 1.0},
    ])
    assert fill_holders_from_allocations(samples, allocations).get_column("pod").to_list() == [None, "pm"]


def _timeline() -> pl.DataFrame:
    rows = [
        {"ts": T0, "tenant": "team-a", "model": "llama", "model_version": "v1", "action": "started", "source": "argo"},
        {"ts": T0 + S, "tenant": "team-a", "model": "llama", "model_version": "v1", "action": "promoted", "source": "argo"},
        {"ts": T0 + 100 * S, "tenant": "team-a", "model": "llama", "model_version": "v2", "action": "started", "source": "argo"},
        {"ts": T0 + 101 * S, "tenant": "team-a", "model": "llama", "model_version": "v2", "action": "weight", "weight_pct": 30.0, "source": "argo"},
    ]
    return build_version_timeline(frame(DEPLOYMENTS, rows))


def _request(i: int, at: timedelta, version: str | None = None, variant: str | None = None) -> dict[str, Any]:
    return {"ts": T0 + at, "request_id": f"r{i}", "tenant": "team-a", "model": "llama", "model_version": version, "variant": variant}


def test_requests_take_the_timeline_version_unless_they_name_their_own() -> None:
    rows = [_request(1, 50 * S), _request(2, 150 * S), _request(3, 150 * S, "v2"), _request(4, 150 * S, "v1", "canary")]
    out = assign_request_versions(frame(REQUESTS, rows), _timeline())
    assert out.get_column("model_version").to_list() == ["v1", None, "v2", "v1"]
    assert out.get_column("variant").to_list() == ["none", "none", "canary", "canary"]
    assert out.columns == REQUESTS.schema.names()


@settings(max_examples=40, deadline=None)
@given(offsets=st.lists(st.tuples(st.integers(-50, 300), st.sampled_from([None, "v1", "v2"])), max_size=40))
def test_joining_requests_to_the_timeline_never_duplicates_or_drops_request_ids(offsets: list[tuple[int, str | None]]) -> None:
    rows = [_request(i, s * S, v) for i, (s, v) in enumerate(offsets)]
    requests = frame(REQUESTS, rows) if rows else conform(pl.DataFrame(schema=REQUESTS.schema), REQUESTS)
    out = assign_request_versions(requests, _timeline())
    assert out.get_column("request_id").to_list() == requests.get_column("request_id").to_list()
    own = requests.filter(pl.col("model_version").is_not_null())
    assert out.join(own, on="request_id").filter(pl.col("model_version") != pl.col("model_version_right")).is_empty()
