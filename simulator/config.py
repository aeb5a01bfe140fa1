"""The simulated fleet's configuration: the spec tree (``simulator.spec``) and its parser (``simulator.config_parse``)."""

from __future__ import annotations

from simulator.config_parse import build_fleet_spec, validate_spec
from simulator.spec import (
    A100,
    H100,
    MIG_MEMORY_MIB,
    PRODUCTS,
    CanaryOutcome,
    CanarySpec,
    EngineKind,
    FleetSpec,
    GpuProduct,
    ModelSpec,
    NodeSpec,
    PlacementSpec,
    RegressionSpec,
    RestartSpec,
    default_fleet_spec,
)

__all__ = [
    "A100",
    "H100",
    "MIG_MEMORY_MIB",
    "PRODUCTS",
    "CanaryOutcome",
    "CanarySpec",
    "EngineKind",
    "FleetSpec",
    "GpuProduct",
    "ModelSpec",
    "NodeSpec",
    "PlacementSpec",
    "RegressionSpec",
    "RestartSpec",
    "build_fleet_spec",
    "default_fleet_spec",
    "validate_spec",
]
