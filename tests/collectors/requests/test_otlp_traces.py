"""OTLP JSON traces: the upstream example, the simulator's spans against its access log, GenAI span rules, bad lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from analytics.errors import InputError
from analytics.schema import REQUESTS
from collectors.requests.gateway_logs import fetch_gateway_log
from collectors.requests.otlp_traces import fetch_otlp_traces, parse_otlp_traces
from simulator import Simulation, default_fleet_spec
from simulator.requests_log import COUNTED_FLAGS

UPSTREAM_TRACE = Path(__file__).parents[2] / "fixtures" / "upstream" / "otlp" / "trace.json"


def test_the_upstream_example_has_no_genai_span_and_reads_as_zero_requests() -> None:
    batch = fetch_otlp_traces(UPSTREAM_TRACE)
    assert (len(batch.requests), batch.bad_lines, batch.skipped_spans) == (0, (), 1)
    assert batch.requests.schema == REQUESTS.schema


@pytest.fixture(scope="module")
def both_streams(tmp_path_factory: pytest.TempPathFactory) -> tuple[pl.DataFrame, pl.DataFrame, list[dict]]:
    sim = Simulation(default_fleet_spec(seed=7), manual=True)
    sim.advance_to(2460)  # the canary's steps, a pod restart (UC) and requests with no healthy upstream (UH)
    folder = tmp_path_factory.mktemp("streams")
    sim.write_request_log(folder / "access.jsonl", 1800, 2460)
    spans = sim.write_otlp_traces(folder / "traces.jsonl", 1800, 2460)
    gateway = fetch_gateway_log(folder / "access.jsonl")
    otlp = fetch_otlp_traces(folder / "traces.jsonl")
    assert gateway.bad_lines == () and otlp.bad_lines == ()
    assert len(otlp.requests) == spans
    lines = [json.loads(x) for x in (folder / "access.jsonl").read_text().splitlines()]
    return gateway.requests, otlp.requests, lines


def test_the_simulators_spans_are_exactly_the_requests_an_engine_served(both_streams) -> None:
    _, otlp, lines = both_streams
    served = {x["request_id"] for x in lines if x["response_flags"] in COUNTED_FLAGS}
    assert set(otlp.get_column("request_id")) == served
    assert len(served) < len(lines)  # some were shed by the gateway and have no span


@pytest.mark.parametrize("column", ["ts", "tenant", "model", "prompt_tokens", "output_tokens", "ttft_s", "e2e_s",
                                    "queue_s", "status", "pod", "model_version"])
def test_the_same_request_gives_the_same_value_from_both_streams(both_streams, column: str) -> None:
    gateway, otlp, _ = both_streams
    joined = otlp.join(gateway, on="request_id", how="left", suffix="_gw")
    assert joined.height == otlp.height
    differ = joined.filter(~pl.col(column).eq_missing(pl.col(f"{column}_gw")))
    assert differ.height == 0, differ.select("request_id", column, f"{column}_gw").head(3).rows()
    assert otlp.get_column("source").unique().to_list() == ["otlp"]


def _span(attrs: dict[str, Any], *, kind: int = 2, trace: str = "0af7651916cd43dd8448eb211c80319c",
          span_id: str = "b7ad6b7169203331", status: dict | None = None) -> dict[str, Any]:
    def value(v: Any) -> dict[str, Any]:
        if isinstance(v, bool):
            return {"boolValue": v}
        if isinstance(v, int):
            return {"intValue": str(v)}
        if isinstance(v, float):
            return {"doubleValue": v}
        if isinstance(v, list):
            return {"arrayValue": {"values": [value(x) for x in v]}}
        return {"stringValue": v}

    return {"traceId": trace, "spanId": span_id, "name": "span", "kind": kind,
            "startTimeUnixNano": "1748851200000000000", "endTimeUnixNano": "1748851201500000000",
            "attributes": [{"key": k, "value": value(v)} for k, v in attrs.items()], "status": status or {}}


def _export(*spans: dict[str, Any], resource: dict[str, str] | None = None) -> str:
    res = resource if resource is not None else {"k8s.namespace.name": "team-chat", "k8s.pod.name": "vllm-0"}
    return json.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": k, "value": {"stringValue": v}} for k, v in res.items()]},
        "scopeSpans": [{"scope": {"name": "hand-written"}, "spans": list(spans)}]}]})


VLLM_STYLE = {"gen_ai.request.model": "llama-3.1-8b-instruct", "gen_ai.request.id": "cmpl-1",
              "gen_ai.usage.prompt_tokens": 120, "gen_ai.usage.completion_tokens": 31,
              "gen_ai.latency.time_to_first_token": 0.042, "gen_ai.latency.time_in_queue": 0.003,
              "gen_ai.latency.e2e": 1.25}
SEMCONV_STYLE = {"gen_ai.operation.name": "chat", "gen_ai.response.model": "qwen2.5-7b-instruct",
                 "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5,
                 "gen_ai.server.time_to_first_token": 0.2,
                 "http.request.header.x-request-id": ["hdr-7"]}


@pytest.mark.parametrize(
    ("attrs", "want"),
    [
        pytest.param(VLLM_STYLE, {"request_id": "cmpl-1", "model": "llama-3.1-8b-instruct", "prompt_tokens": 120,
                                  "output_tokens": 31, "ttft_s": 0.042, "queue_s": 0.003, "e2e_s": 1.25,
                                  "status": "ok"}, id="vllm's own attribute names"),
        pytest.param(SEMCONV_STYLE, {"request_id": "hdr-7", "model": "qwen2.5-7b-instruct", "prompt_tokens": 10,
                                     "output_tokens": 5, "ttft_s": 0.2, "e2e_s": 1.5, "status": "ok"},
                     id="semconv names with the span duration as e2e"),
        pytest.param({"gen_ai.operation.name": "chat", "gen_ai.request.model": "m", "error.type": "timeout"},
                     {"request_id": "b7ad6b7169203331", "status": "timeout"}, id="error type timeout and span id as id"),
        pytest.param({"gen_ai.request.model": "m", "gen_ai.response.finish_reasons": ["abort"]},
                     {"status": "cancelled"}, id="an aborted request is cancelled"),
    ],
)
def test_a_genai_span_becomes_one_request(attrs: dict[str, Any], want: dict[str, Any]) -> None:
    batch = parse_otlp_traces(_export(_span(attrs)) + "\n", source="t.jsonl")
    assert batch.bad_lines == ()
    row = batch.requests.row(0, named=True)
    assert (row["tenant"], row["pod"], row["trace_id"]) == ("team-chat", "vllm-0", "0af7651916cd43dd8448eb211c80319c")
    assert {k: row[k] for k in want} == want


def test_status_code_error_is_an_error_and_other_spans_are_skipped() -> None:
    plain = _span({"http.route": "/v1/chat"}, span_id="00000000000000aa")
    failed = _span({"gen_ai.request.model": "m"}, status={"code": 2, "message": "boom"})
    batch = parse_otlp_traces(_export(plain, failed), source="t")
    assert batch.requests.get_column("status").to_list() == ["error"]
    assert batch.skipped_spans == 1


def test_a_client_span_of_a_request_the_server_also_traced_is_not_counted_twice() -> None:
    client = _span({"gen_ai.request.model": "m", "gen_ai.operation.name": "chat"}, kind=3, span_id="00000000000000c1")
    server = _span({"gen_ai.request.model": "m"}, kind=2, span_id="00000000000000s2")
    lonely = _span({"gen_ai.request.model": "m"}, kind=3, trace="1" * 32, span_id="00000000000000c3")
    batch = parse_otlp_traces([_export(client), _export(server, lonely)], source="t")
    assert sorted(batch.requests.get_column("request_id").to_list()) == ["00000000000000c3", "00000000000000s2"]
    assert batch.skipped_spans == 1


def test_bad_lines_and_bad_spans_are_reported_and_the_rest_kept() -> None:
    good = _export(_span(VLLM_STYLE))
    bad_type = _export(_span({**VLLM_STYLE, "gen_ai.usage.prompt_tokens": "many"}))
    no_tenant = _export(_span(VLLM_STYLE), resource={})
    lines = [good, good[:40], "", '{"resourceMetrics": []}', bad_type, no_tenant, "[]", good]
    batch = parse_otlp_traces("\n".join(lines) + "\n", source="traces.jsonl")
    assert [b.line for b in batch.bad_lines] == [2, 4, 5, 6, 7]
    reasons = [b.reason for b in batch.bad_lines]
    assert "not JSON" in reasons[0] and "resourceSpans" in reasons[1]
    assert "gen_ai.usage.prompt_tokens" in reasons[2] and "spans[0]" in reasons[2]
    assert "no tenant" in reasons[3]
    assert len(batch.requests) == 2 and batch.total_lines == 8 and batch.blank_lines == 1
    assert len(parse_otlp_traces([no_tenant], source="t", default_tenant="team-x").requests) == 1
    with pytest.raises(InputError) as err:
        parse_otlp_traces("\n".join(lines), source="traces.jsonl", strict=True)
    assert err.value.line == 2


def test_a_line_that_is_not_utf8_is_a_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(_export(_span(VLLM_STYLE)).encode() + b"\n\xff\xfe{\n")
    batch = fetch_otlp_traces(path)
    assert [(b.line, b.reason) for b in batch.bad_lines] == [(2, "not UTF-8 text")]
    assert len(batch.requests) == 1
