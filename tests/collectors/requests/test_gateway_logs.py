"""Gateway access logs: the simulator's log, each alias family, garbage lines, pod-list attribution, round trips."""

from __future__ import annotations

import dataclasses
import gzip
import json
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.errors import InputError
from analytics.schema import REQUESTS
from collectors.kube.pods import parse_pod_list
from collectors.requests.gateway_fields import ALIASES as GATEWAY_ALIASES
from collectors.requests.gateway_logs import fetch_gateway_log, parse_gateway_log
from simulator import Simulation, default_fleet_spec

ALIASES = json.loads((Path(__file__).parents[2] / "fixtures" / "request_logs" / "alias_families.json").read_text())
STATUS_OF_CODE = {200: "ok", 499: "cancelled", 500: "error", 503: "error", 504: "timeout"}


@pytest.fixture(scope="module")
def sim_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Simulation, Path, list[dict[str, Any]]]:
    """The default fleet's access log for its first 15 sim minutes (through the canary's first steps)."""
    # Fixed ports (never bound: the clock is manual) so pod IP:port pairs tell the pods apart.
    sim = Simulation(dataclasses.replace(default_fleet_spec(seed=11), base_port=41000), manual=True)
    sim.advance_to(900)
    path = tmp_path_factory.mktemp("gw") / "access.jsonl"
    sim.write_request_log(path, 0, 900)
    return sim, path, [json.loads(x) for x in path.read_text().splitlines()]


def test_the_simulators_log_parses_fully_and_matches_its_requests(sim_log) -> None:
    sim, path, lines = sim_log
    batch = fetch_gateway_log(path)
    assert batch.bad_lines == ()
    assert batch.total_lines == len(lines) == len(batch.requests) > 1000
    got = {r["request_id"]: r for r in batch.requests.iter_rows(named=True)}
    truth = sim.requests(0, 900)
    assert set(got) == {r.rid for r in truth}
    for r in truth:
        row = got[r.rid]
        assert (row["tenant"], row["model"], row["prompt_tokens"]) == (r.tenant, r.model, r.prompt)
        assert row["status"] == STATUS_OF_CODE[r.status]
        assert row["variant"] == r.variant
        assert row["pod"] == (r.pod or None)
        assert abs(row["e2e_s"] - r.e2e_s) <= 0.0005 + 1e-9  # the log keeps whole milliseconds
        assert row["ts"] == sim.spec.start + timedelta(milliseconds=int(r.arrival * 1000))
        if r.status == 200:
            assert abs(row["ttft_s"] - r.ttft_s) <= 5e-7 + 1e-12  # microseconds in the log
    assert batch.requests.schema == REQUESTS.schema


def test_the_pod_list_gives_tenant_pod_and_version_when_the_log_does_not(sim_log) -> None:
    sim, _, lines = sim_log
    pods = parse_pod_list(sim.pods_json(), source="pods.json")
    explicit = ("x_tenant", "namespace", "upstream_pod", "model_version")
    bare = [json.dumps({k: v for k, v in x.items() if k not in explicit}) for x in lines]
    batch = parse_gateway_log(bare, source="bare.jsonl", pods=pods)
    by_id = {r["request_id"]: r for r in batch.requests.iter_rows(named=True)}
    served = [x for x in lines if x["upstream_host"]]
    assert len(served) > 1000
    for x in served:
        row = by_id[x["request_id"]]
        assert (row["tenant"], row["pod"], row["model_version"]) == (x["x_tenant"], x["upstream_pod"], x["model_version"])
    # Lines the gateway answered itself name no upstream: without a tenant field they cannot be attributed.
    unattributed = [x for x in lines if not x["upstream_host"]]
    assert len(batch.bad_lines) == len(unattributed)
    assert all("no tenant" in b.reason for b in batch.bad_lines)
    again = parse_gateway_log(bare, source="bare.jsonl", pods=pods, default_tenant="team-chat")
    assert len(again.requests) == len(lines) and again.bad_lines == ()


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"]) for c in ALIASES["cases"]])
def test_each_alias_family_reads_its_fields(case: dict[str, Any]) -> None:
    batch = parse_gateway_log([json.dumps(case["line"])], source="family.jsonl")
    assert batch.bad_lines == ()
    row = batch.requests.row(0, named=True)
    for key, want in case["expect"].items():
        got = row[key]
        if key == "ts":
            assert got == datetime.fromisoformat(want)
        elif isinstance(want, float):
            assert got == pytest.approx(want, rel=1e-12), key
        else:
            assert got == want, key


def _garbage(rng: random.Random, good: dict[str, Any]) -> bytes:
    """One bad line of a seeded kind."""
    kind = rng.randrange(7)
    text = json.dumps(good)
    if kind == 0:
        return text[: rng.randrange(1, len(text) - 1)].encode()  # truncated
    if kind == 1:
        return json.dumps([good]).encode()  # an array, not an object
    if kind == 2:
        return json.dumps({**good, "prompt_tokens": "many"}).encode()  # wrong type
    if kind == 3:
        return json.dumps({**good, "duration": [1, 2]}).encode()  # wrong type: array
    if kind == 4:
        return json.dumps({**good, "x_tenant": "Team_Chat!"}).encode()  # not an RFC 1123 label
    if kind == 5:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))).replace(b"\n", b"\x00") or b"\xff"
    return json.dumps({**good, "prompt_tokens": 3.5}).encode()  # not a whole number


def test_a_log_with_five_percent_garbage_keeps_every_good_line_and_names_each_bad_one(
    sim_log, tmp_path: Path
) -> None:
    _, _, lines = sim_log
    rng = random.Random(5)
    out: list[bytes] = []
    bad_numbers, good_ids = [], []
    for x in lines[:2000]:
        if rng.random() < 0.05:
            out.append(_garbage(rng, x))
            bad_numbers.append(len(out))
        out.append(json.dumps(x).encode())
        good_ids.append(x["request_id"])
    path = tmp_path / "dirty.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(out) + b"\n"))
    batch = fetch_gateway_log(path)
    assert len(bad_numbers) >= 60
    assert [b.line for b in batch.bad_lines] == bad_numbers
    assert {b.source for b in batch.bad_lines} == {str(path)}
    assert batch.requests.get_column("request_id").to_list() == good_ids
    assert batch.total_lines == len(out) == len(batch.requests) + len(batch.bad_lines) + batch.blank_lines


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        pytest.param('{"x_request_id": "a", "model": "m"', "not JSON", id="truncated json is not json"),
        pytest.param("[1, 2]", "not a JSON object", id="an array is not an object"),
        pytest.param('{"x_request_id": "a", "x_tenant": "t", "model": "m", "start_time": "yesterday"}',
                     "'start_time'", id="an unreadable time names its field"),
        pytest.param('{"x_request_id": "a", "x_tenant": "t", "model": "m", "start_time": "2025-06-02T08:00:00Z",'
                     ' "duration": "slow"}', "'duration'", id="a non-numeric duration names its field"),
        pytest.param('{"x_request_id": "a", "x_tenant": "t", "model": "m", "start_time": "2025-06-02T08:00:00Z",'
                     ' "completion_tokens": {"n": 1}}', "'completion_tokens'", id="an object for tokens names its field"),
        pytest.param('{"x_request_id": "a", "x_tenant": "NOT_A_NS", "model": "m", "start_time": "2025-06-02T08:00:00Z"}',
                     "RFC 1123", id="a tenant that is not a namespace name"),
        pytest.param('{"x_request_id": "a", "x_tenant": "t", "start_time": "2025-06-02T08:00:00Z"}',
                     "no model", id="a line without a model"),
        pytest.param('{"x_tenant": "t", "model": "m", "start_time": "2025-06-02T08:00:00Z"}',
                     "no request id", id="a line without a request id"),
        pytest.param('{"x_request_id": "a", "x_tenant": "t", "model": "m", "start_time": "2025-06-02T08:00:00Z",'
                     ' "variant": "blue"}', "variant", id="an unknown variant"),
    ],
)
def test_a_bad_line_is_reported_with_its_number_and_reason_between_good_ones(line: str, reason: str) -> None:
    good = '{"x_request_id": "%s", "x_tenant": "t", "model": "m", "start_time": "2025-06-02T08:00:00Z"}'
    text = "\n".join([good % "first", line, "", good % "last"]) + "\n"
    batch = parse_gateway_log(text, source="mixed.jsonl")
    assert [(b.source, b.line) for b in batch.bad_lines] == [("mixed.jsonl", 2)]
    assert reason in batch.bad_lines[0].reason
    assert batch.requests.get_column("request_id").to_list() == ["first", "last"]
    assert (batch.total_lines, batch.blank_lines) == (4, 1)
    with pytest.raises(InputError) as err:
        parse_gateway_log(text, source="mixed.jsonl", strict=True)
    assert (err.value.source, err.value.line) == ("mixed.jsonl", 2)


def test_a_dirty_log_gives_the_same_rows_as_the_clean_one(sim_log) -> None:
    _, path, lines = sim_log
    clean = fetch_gateway_log(path).requests
    dirty = [json.dumps(x) for x in lines[:3000]]
    dirty[1500:1500] = ["not json at all", ""]  # forces the chunked path
    assert parse_gateway_log(dirty, source="d").requests.equals(clean.head(3000))


_TENANTS = st.sampled_from(["team-chat", "team-search", "a", "x1-y2"])
_MODELS = st.sampled_from(["llama-3.1-8b-instruct", "meta-llama/Llama-3.1-8B", "qwen2.5:7b"])
_MS = st.one_of(st.none(), st.floats(0, 1e6, allow_nan=False).map(lambda x: round(x, 3)))


@st.composite
def request_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """A valid request in one of three alias families, with the row it must become."""
    family = draw(st.sampled_from(["envoy", "ai-gateway", "litellm"]))
    start = datetime(2025, 6, 2, tzinfo=UTC) + timedelta(milliseconds=draw(st.integers(0, 10**10)))
    tenant, model = draw(_TENANTS), draw(_MODELS)
    prompt, output = draw(st.integers(0, 10**6)), draw(st.integers(0, 10**6))
    want: dict[str, Any] = {"ts": start, "tenant": tenant, "model": model, "prompt_tokens": prompt,
                            "output_tokens": output}
    if family == "litellm":
        e2e_us, ttft_us = draw(st.integers(0, 10**9)), draw(st.integers(0, 10**9))
        end, first = start + timedelta(microseconds=e2e_us), start + timedelta(microseconds=ttft_us)
        ok = draw(st.booleans())
        line = {"startTime": start.isoformat(), "endTime": end.isoformat(), "completionStartTime": first.isoformat(),
                "model_group": model, "prompt_tokens": prompt, "completion_tokens": output,
                "status": "success" if ok else "failure", "metadata": {"user_api_key_team_alias": tenant}}
        want |= {"e2e_s": e2e_us / 1e6, "ttft_s": ttft_us / 1e6, "status": "ok" if ok else "error", "http_status": None}
        return {"line": line, "want": want, "id_key": "request_id"}
    code = draw(st.sampled_from([200, 201, 400, 499, 500, 503, 504]))
    duration, ttft = draw(st.integers(0, 10**7)), draw(_MS)
    want |= {"e2e_s": duration / 1000, "ttft_s": None if ttft is None else ttft / 1000, "http_status": code,
             "status": {499: "cancelled", 504: "timeout"}.get(code, "ok" if code < 300 else "error")}
    iso = start.strftime("%Y-%m-%dT%H:%M:%S.") + f"{start.microsecond // 1000:03d}Z"
    if family == "envoy":
        line = {"start_time": iso, "response_code": code, "duration": duration, "x-tenant": tenant, "model": model,
                "prompt_tokens": prompt, "completion_tokens": output, "ttft_ms": ttft}
        return {"line": line, "want": want, "id_key": "x_request_id"}
    line = {"start_time": iso, "response_code": code, "duration": duration, "k8s.namespace.name": tenant,
            "gen_ai.request.model": model, "gen_ai.usage.input_tokens": prompt, "gen_ai.usage.output_tokens": output,
            "ttft_ms": ttft}
    return {"line": line, "want": want, "id_key": "x-request-id"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(request_dicts(), min_size=1, max_size=40))
def test_any_list_of_valid_requests_round_trips_to_the_same_rows(reqs: list[dict[str, Any]]) -> None:
    lines = []
    for i, r in enumerate(reqs):
        lines.append(json.dumps({**r["line"], r["id_key"]: f"req-{i}"}))
    batch = parse_gateway_log(lines, source="gen.jsonl")
    assert batch.bad_lines == ()
    rows = batch.requests.iter_rows(named=True)
    for i, (r, row) in enumerate(zip(reqs, rows, strict=True)):
        assert row["request_id"] == f"req-{i}"
        want = dict(r["want"])
        if row["ts"] != want["ts"].replace(microsecond=want["ts"].microsecond // 1000 * 1000):
            pytest.fail(f"ts {row['ts']} != {want['ts']}")
        want.pop("ts")
        for key, value in want.items():
            assert row[key] == value or (value is None and row[key] is None) or (
                isinstance(value, float) and math.isclose(row[key], value, rel_tol=0, abs_tol=0)), key


def test_every_accepted_key_is_documented() -> None:
    doc = (Path(__file__).parents[3] / "docs" / "request-logs.md").read_text()
    keys = {a.key if isinstance(a.key, str) else ".".join(a.key) for a in GATEWAY_ALIASES}
    assert not {k for k in keys if f"`{k}`" not in doc}


def test_rows_are_conformed_requests_and_empty_input_is_empty() -> None:
    batch = parse_gateway_log("", source="empty.jsonl")
    assert (len(batch.requests), batch.total_lines, batch.bad_lines) == (0, 0, ())
    assert batch.requests.schema == REQUESTS.schema
    assert isinstance(batch.requests, pl.DataFrame)
