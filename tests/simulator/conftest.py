"""Shared fixtures: simulations stepped by hand (manual clock), no servers unless a test starts them."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator import Simulation, default_fleet_spec

UPSTREAM = Path(__file__).resolve().parents[1] / "fixtures" / "upstream"


@pytest.fixture(scope="module")
def sim_40min() -> Simulation:
    """The default fleet stepped 40 sim minutes: through the canary steps, the abort and a restart."""
    sim = Simulation(default_fleet_spec(seed=7), manual=True)
    sim.advance_to(2400 + 60)
    return sim
