"""Served over real HTTP on 127.0.0.1, one port per target; stopping closes every port."""

from __future__ import annotations

import socket

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from simulator import Simulation, SimulatorError, default_fleet_spec


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_every_target_serves_its_page_over_http_and_stops() -> None:
    sim = Simulation(default_fleet_spec(seed=8), manual=True)
    with pytest.raises(SimulatorError):
        sim.targets()  # ports are only known once bound
    with sim:
        sim.advance_to(400)
        targets = sim.targets()
        assert len({t.url for t in targets}) == len(targets) >= 10
        with httpx.Client(timeout=10) as client:
            for t in targets:
                r = client.get(t.url)
                assert r.status_code == 200
                assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
                tid = next(k for k, p in sim.pods.items() if p.name == t.labels["pod"])
                assert r.text == sim.render(tid)
                assert list(text_string_to_metric_families(r.text))
            assert client.get(targets[0].url.replace("/metrics", "/nope")).status_code == 404
        ports = list(sim.ports.values())
        assert all(_port_open(p) for p in ports)
    assert not sim.running
    assert not any(_port_open(p) for p in ports)


def test_a_running_clock_advances_the_world_on_scrape() -> None:
    spec = default_fleet_spec(seed=8)
    with Simulation(spec) as sim:  # wall clock x spec.speed
        target = next(t for t in sim.targets() if t.format.value == "vllm")
        with httpx.Client(timeout=10) as client:
            first = client.get(target.url).text
            sim.clock.advance(120)  # jump the clock instead of sleeping
            second = client.get(target.url).text

    def total(text: str) -> float:
        return sum(
            s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == "vllm:prompt_tokens_total"
        )

    assert total(second) > total(first)
    assert sim.state.t >= 120


def test_a_canary_pod_not_created_yet_answers_503() -> None:
    sim = Simulation(default_fleet_spec(seed=8), manual=True)
    canary = next(p for p in sim.fleet.engine_pods if p.variant.value == "canary")
    with sim:
        assert canary.target_id not in sim.target_ids()
        port = sim.ports[canary.target_id]
        assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).status_code == 503
        sim.advance_to(canary.start_s + 1)
        assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).status_code == 200
