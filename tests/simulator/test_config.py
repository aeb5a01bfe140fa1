"""FleetSpec parsing: defaults, overrides, and errors that name the bad key."""

from __future__ import annotations

import pytest

from analytics.errors import ConfigError
from simulator.config import CanaryOutcome, EngineKind, build_fleet_spec, default_fleet_spec


def test_empty_mapping_gives_the_default_fleet() -> None:
    assert build_fleet_spec({}) == default_fleet_spec()


def test_default_fleet_covers_the_required_shapes() -> None:
    spec = default_fleet_spec()
    assert len(spec.tenants) >= 3
    assert {m.size_class for m in spec.models} >= {"7B", "14B", "70B"}
    assert any(m.engine is EngineKind.TRITON for m in spec.models)
    placements = [p for m in spec.models for p in m.replicas]
    assert any(p.mig_instance is not None for p in placements)
    assert any(p.fraction is not None for p in placements)
    assert any(len(p.gpus) > 1 for p in placements), "a 70B model spans several GPUs"


def test_overrides_are_applied() -> None:
    spec = build_fleet_spec(
        {
            "seed": 11,
            "start": "2025-01-01T00:00:00Z",
            "load_factor": 2.0,
            "canary": {"weight_steps": [5, 50], "outcome": "promote"},
            "regression": {"ttft_regression_pct": 40},
        }
    )
    assert spec.seed == 11 and spec.start.year == 2025 and spec.start.tzinfo is not None
    assert spec.canary is not None and spec.canary.weight_steps == (5, 50)
    assert spec.canary.outcome is CanaryOutcome.PROMOTE
    assert spec.regression.ttft_regression_pct == 40


@pytest.mark.parametrize(
    ("mapping", "key"),
    [
        pytest.param(
            {"canary": {"weight_steps": [50, 10]}},
            "simulator.canary.weight_steps",
            id="decreasing weight steps name the weight_steps key",
        ),
        pytest.param(
            {"canary": {"weight_steps": [0, 120]}},
            "simulator.canary.weight_steps",
            id="weights outside 1..100 name the weight_steps key",
        ),
        pytest.param({"speed": "fast"}, "simulator.speed", id="a non-numeric speed names speed"),
        pytest.param({"speed": float("nan")}, "simulator.speed", id="a NaN speed is refused"),
        pytest.param({"speed": float("inf")}, "simulator.speed", id="an infinite speed is refused"),
        pytest.param({"seed": -1}, "simulator.seed", id="a negative seed is refused, not a numpy traceback"),
        pytest.param({"seed": 2**40}, "simulator.seed", id="a seed numpy cannot take is refused"),
        pytest.param({"bogus": 1}, "simulator.bogus", id="an unknown key is named"),
        pytest.param(
            {
                "models": [
                    {"name": "m", "tenant": "Team_A", "replicas": [{"node": "gpu-h100-0", "gpus": [0]}]}
                ]
            },
            "simulator.models[0]",
            id="a tenant that is not an RFC 1123 label names its model",
        ),
        pytest.param({"canary": {"model": "nope"}}, "simulator.canary.model", id="an unknown canary model"),
        pytest.param(
            {"regression": {"error_rate_add": 2}},
            "simulator.regression.error_rate_add",
            id="an error rate above 1",
        ),
        pytest.param(
            {
                "models": [
                    {"name": "llama-3.1-8b-instruct", "replicas": [{"node": "gpu-h100-0", "gpus": [99]}]}
                ]
            },
            "simulator.models[0].replicas[0].gpus",
            id="a GPU index past the node's GPUs",
        ),
    ],
)
def test_bad_values_raise_config_error_naming_the_key(mapping: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_fleet_spec(mapping)
    assert info.value.key == key
