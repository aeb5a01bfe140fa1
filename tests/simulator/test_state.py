"""Stepping: determinism, load-dependent behaviour, canary regression, restarts and energy."""

from __future__ import annotations

import dataclasses
import statistics

import pytest
from prometheus_client.parser import text_string_to_metric_families

from simulator import Simulation, default_fleet_spec
from simulator.config import CanaryOutcome, EngineKind, FleetSpec, ModelSpec, PlacementSpec, RestartSpec
from simulator.fleet import Variant


def _pages(sim: Simulation) -> dict[str, str]:
    return {tid: sim.render(tid) for tid in sim.target_ids()}


def _value(text: str, sample: str, **labels: str) -> float:
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    raise KeyError(sample)


def test_same_seed_and_times_give_identical_bytes_however_time_is_stepped() -> None:
    a = Simulation(default_fleet_spec(seed=3), manual=True)
    b = Simulation(default_fleet_spec(seed=3), manual=True)
    a.advance_to(420)
    for t in (13.5, 100, 100, 250.2, 419.99, 420):  # different increments, same end time
        b.advance_to(t)
    assert _pages(a) == _pages(b)
    assert a.events_json() == b.events_json() and a.nodes_json() == b.nodes_json()
    assert [r.rid for r in a.requests(0, 420)] == [r.rid for r in b.requests(0, 420)]


def test_different_seeds_give_different_pages() -> None:
    a = Simulation(default_fleet_spec(seed=1), manual=True)
    b = Simulation(default_fleet_spec(seed=2), manual=True)
    a.advance_to(120)
    b.advance_to(120)
    pa, pb = _pages(a), _pages(b)
    assert pa.keys() != pb.keys() or any(pa[k] != pb[k] for k in pa)


def _single_model(rate: float, seed: int = 5, kv_tokens: int = 60_000) -> FleetSpec:
    base = default_fleet_spec(seed)
    m = ModelSpec(
        "llama-3.1-8b-instruct",
        "team-chat",
        EngineKind.VLLM,
        "7B",
        rate,
        700,
        220,
        48,
        kv_tokens,
        0.011,
        14_000,
        16.1,
        8192,
        0.0,
        (PlacementSpec("gpu-h100-0", (0,)),),
    )
    return dataclasses.replace(base, models=(m,), canary=None, restarts=())


def _mean_ttft_and_kv(rate: float) -> tuple[float, float]:
    sim = Simulation(_single_model(rate), manual=True)
    kv = []
    for t in range(30, 331, 10):
        sim.advance_to(t)
        kv.append(next(iter(sim.state.engines.values())).stats.kv_usage)
    done = [r for r in sim.requests(0, 330) if r.status == 200]
    return statistics.mean(r.ttft_s for r in done), statistics.mean(kv)


def test_higher_arrival_rate_gives_higher_mean_ttft_and_kv_usage() -> None:
    results = [_mean_ttft_and_kv(rate) for rate in (1.0, 4.0, 12.0, 30.0)]
    ttfts, kvs = zip(*results, strict=True)
    assert list(ttfts) == sorted(ttfts) and ttfts[-1] > 2 * ttfts[0]
    assert list(kvs) == sorted(kvs) and kvs[-1] > 0.5


def test_overload_brings_queueing_preemptions_and_errors() -> None:
    sim = Simulation(_single_model(60.0, kv_tokens=25_000), manual=True)
    sim.advance_to(300)
    recs = sim.requests(0, 300)
    text = sim.render(sim.target_ids()[-1])
    assert any(r.status == 503 and r.flags == "UO" for r in recs), "the gateway sheds load"
    assert _value(text, "vllm:num_preemptions_total") > 0
    assert _value(text, "vllm:request_queue_time_seconds_sum") > 0


def test_canary_pods_are_worse_than_baseline_by_about_the_configured_regression() -> None:
    spec = default_fleet_spec(seed=9)
    canary = dataclasses.replace(
        spec.canary,
        start_s=0.0,
        weight_steps=(34,),
        step_duration_s=1800.0,
        warmup_s=0.0,
        outcome=CanaryOutcome.HOLD,
    )
    reg = dataclasses.replace(
        spec.regression, ttft_regression_pct=30.0, itl_regression_pct=20.0, error_rate_add=0.05
    )
    sim = Simulation(dataclasses.replace(spec, canary=canary, regression=reg, load_factor=0.3), manual=True)
    sim.advance_to(1200)
    recs = [r for r in sim.requests(0, 1200) if r.model == canary.model and r.flags == "-"]
    by = {v: [r for r in recs if r.variant == v] for v in (Variant.BASELINE, Variant.CANARY)}
    ok = {v: [r for r in rs if r.status == 200] for v, rs in by.items()}
    prefill = {v: statistics.mean(r.prefill_s for r in rs) for v, rs in ok.items()}
    itl = {
        v: statistics.median((r.finish - r.first_token) / (r.generated - 1) for r in rs if r.generated > 1)
        for v, rs in ok.items()
    }
    err = {v: sum(r.status == 500 for r in rs) / len(rs) for v, rs in by.items()}
    assert prefill[Variant.CANARY] / prefill[Variant.BASELINE] == pytest.approx(1.30, abs=0.08)
    assert itl[Variant.CANARY] / itl[Variant.BASELINE] == pytest.approx(1.20, abs=0.08)
    assert err[Variant.CANARY] - err[Variant.BASELINE] == pytest.approx(0.05, abs=0.025)


def test_counters_are_monotonic_except_at_a_configured_restart() -> None:
    spec = dataclasses.replace(
        default_fleet_spec(seed=4), restarts=(RestartSpec("llama-3.1-70b-instruct", 200.0),)
    )
    sim = Simulation(spec, manual=True)
    restarted = next(p for p in sim.fleet.engine_pods if p.model.name == "llama-3.1-70b-instruct")
    watched = [tid for tid in sim.target_ids() if sim.pods[tid].engine is not None]
    prev: dict[tuple[str, str, tuple], float] = {}
    drops: set[str] = set()
    for t in range(20, 401, 20):
        sim.advance_to(t)
        for tid in watched:
            for fam in text_string_to_metric_families(sim.render(tid)):
                if fam.type not in ("counter", "histogram"):
                    continue
                for s in fam.samples:
                    if s.name.endswith("_created"):
                        continue
                    key = (tid, s.name, tuple(sorted(s.labels.items())))
                    if key in prev and s.value < prev[key]:
                        drops.add(tid)
                        assert 200 <= t <= 220, f"{key} dropped at {t}"
                    prev[key] = s.value
    assert drops == {restarted.target_id}


def test_energy_counter_is_the_integral_of_power() -> None:
    sim = Simulation(default_fleet_spec(seed=6), manual=True)
    sim.advance_to(60)

    def read() -> tuple[list[float], list[int]]:
        text = sim.render("dcgm/gpu-h100-0")
        power = [
            float(x) for x in __import__("re").findall(r"^DCGM_FI_DEV_POWER_USAGE\{.*\} (\S+)$", text, 8)
        ]
        energy = [
            int(x)
            for x in __import__("re").findall(r"^DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION\{.*\} (\S+)$", text, 8)
        ]
        return power, energy

    _, e0 = read()
    integral = [0.0] * len(e0)
    for t in range(61, 181):  # one render per 1 s step: power is that step's mean draw
        sim.advance_to(t)
        power, _ = read()
        integral = [i + p * 1000.0 for i, p in zip(integral, power, strict=True)]
    _, e1 = read()
    for a, b, i in zip(e0, e1, integral, strict=True):
        assert b - a == pytest.approx(i, abs=125)  # within rounding: 120 readings of %.3f W and int mJ
        assert b > a
