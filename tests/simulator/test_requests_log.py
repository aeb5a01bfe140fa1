"""The gateway access log matches what the engines counted over the same window."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from simulator import Simulation, default_fleet_spec
from simulator.config import EngineKind
from simulator.requests_log import COUNTED_FLAGS


def _sums(text: str) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[s.name] += s.value
    return out


@pytest.fixture(scope="module")
def window(tmp_path_factory: pytest.TempPathFactory) -> tuple[Simulation, dict, dict, list[dict]]:
    sim = Simulation(default_fleet_spec(seed=21), manual=True)
    sim.advance_to(300)
    before = {tid: _sums(sim.render(tid)) for tid in sim.target_ids()}
    sim.advance_to(900)
    after = {tid: _sums(sim.render(tid)) for tid in sim.target_ids()}
    path = Path(tmp_path_factory.mktemp("log")) / "access.jsonl"
    n = sim.write_request_log(path, 300, 900)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert n == len(lines) > 1000
    return sim, before, after, lines


def test_request_counts_and_token_totals_equal_the_engine_counters(window) -> None:
    sim, before, after, lines = window
    by_pod: dict[str, list[dict]] = defaultdict(list)
    for line in lines:
        if line["response_flags"] in COUNTED_FLAGS:
            by_pod[line["upstream_pod"]].append(line)
    checked = 0
    for tid, pod in sim.pods.items():
        if pod.engine is None or tid not in before:
            continue
        d = {k: after[tid][k] - before[tid].get(k, 0.0) for k in after[tid]}
        mine = by_pod.get(pod.name, [])
        if pod.engine is EngineKind.TRITON:
            # prometheus_client's parser names counter samples "<family>_total" even when Triton does not.
            served = d["nv_inference_request_success_total"] + d["nv_inference_request_failure_total"]
            assert served == len(mine), tid
            assert d["nv_inference_request_success_total"] == sum(x["response_code"] == 200 for x in mine)
        else:
            assert d["vllm:request_success_total"] == len(mine), tid
            assert d["vllm:request_prompt_tokens_sum"] == sum(x["prompt_tokens"] for x in mine), tid
            assert d["vllm:request_generation_tokens_sum"] == sum(x["completion_tokens"] for x in mine), tid
            # Token counters tick while requests run, so they differ only by the in-flight requests.
            in_flight = 2 * pod.model.max_num_seqs * pod.model.output_tokens_mean * 3
            assert (
                abs(d["vllm:generation_tokens_total"] - d["vllm:request_generation_tokens_sum"]) < in_flight
            )
        checked += 1
    assert checked >= 8


def test_log_lines_have_the_gateway_fields(window) -> None:
    _, _, _, lines = window
    required = {
        "start_time",
        "x_request_id",
        "request_id",
        "response_code",
        "response_flags",
        "duration",
        "upstream_host",
        "upstream_cluster",
        "route_name",
        "x_tenant",
        "namespace",
        "model",
        "model_version",
        "prompt_tokens",
        "completion_tokens",
        "ttft_ms",
    }
    assert all(required <= set(x) for x in lines)
    ok = [x for x in lines if x["response_code"] == 200]
    assert all(x["upstream_host"].startswith("127.0.0.1:") for x in ok)
    assert all(x["ttft_ms"] > 0 and x["duration"] >= int(x["ttft_ms"]) - 1 for x in ok)
    assert {x["variant"] for x in lines if x["model"] == "llama-3.1-8b-instruct"} == {"baseline", "canary"}
    assert len({x["x_request_id"] for x in lines}) == len(lines)
