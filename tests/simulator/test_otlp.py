"""The simulator's OTLP trace file: deterministic, in the upstream OTLP/JSON shape, one span per served request."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from simulator import Simulation, default_fleet_spec
from simulator.requests_log import COUNTED_FLAGS

UPSTREAM = json.loads((Path(__file__).parents[1] / "fixtures" / "upstream" / "otlp" / "trace.json").read_text())


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Simulation, Path, int]:
    sim = Simulation(default_fleet_spec(seed=7), manual=True)
    sim.advance_to(2460)
    path = tmp_path_factory.mktemp("otlp") / "traces.jsonl"
    return sim, path, sim.write_otlp_traces(path, 1800, 2460)


def test_the_same_seed_and_window_write_the_same_bytes(trace_file, tmp_path: Path) -> None:
    _, path, _ = trace_file
    other = Simulation(default_fleet_spec(seed=7), manual=True)
    other.advance_to(2460)
    again = tmp_path / "again.jsonl"
    other.write_otlp_traces(again, 1800, 2460)
    assert again.read_bytes() == path.read_bytes()


def test_every_span_has_the_upstream_shape(trace_file) -> None:
    _, path, count = trace_file
    up_span = UPSTREAM["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    spans = []
    for line in path.read_text().splitlines():
        doc = json.loads(line)
        assert set(doc) == set(UPSTREAM)
        for rs in doc["resourceSpans"]:
            assert set(rs) == set(UPSTREAM["resourceSpans"][0])
            spans += [s for ss in rs["scopeSpans"] for s in ss["spans"]]
    assert len(spans) == count > 1000
    for s in spans:
        assert set(s) - {"status"} <= set(up_span)  # status is an OTLP field the example leaves out
        assert re.fullmatch(r"[0-9a-f]{32}", s["traceId"]) and re.fullmatch(r"[0-9a-f]{16}", s["spanId"])
        assert isinstance(s["startTimeUnixNano"], str) and int(s["endTimeUnixNano"]) >= int(s["startTimeUnixNano"])
        assert all(set(a) == {"key", "value"} and len(a["value"]) == 1 for a in s["attributes"])
    assert len({s["spanId"] for s in spans}) == len(spans)


def test_one_span_per_request_an_engine_served(trace_file) -> None:
    sim, path, count = trace_file
    served = [r for r in sim.requests(1800, 2460) if r.flags in COUNTED_FLAGS]
    ids = {a["value"]["stringValue"] for line in path.read_text().splitlines()
           for rs in json.loads(line)["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]
           for a in s["attributes"] if a["key"] == "gen_ai.request.id"}
    assert ids == {r.rid for r in served} and count == len(served)
    assert len(sim.requests(1800, 2460)) > len(served)  # shed requests (UH, UC) have no span
