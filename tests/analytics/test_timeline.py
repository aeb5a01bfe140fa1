"""Version timeline from deployments rows: hand-computed cases, the simulator's canary, order/duplicate invariance, skew."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.schema import DEPLOYMENTS
from analytics.timeline import SKEW_TOLERANCE_S, assign_versions, build_version_timeline, version_at
from collectors.kube.pods import parse_pod_list
from collectors.kube.workloads import build_workload_index
from collectors.rollouts.events import parse_k8s_events
from collectors.rollouts.rows import rows_frame
from simulator import Simulation

T0 = datetime(2025, 6, 2, 8, 0, tzinfo=UTC)


def _row(s: float, action: str, version: str | None = None, weight: float | None = None, *,
         source: str = "argo", model: str = "m", message: str = "") -> dict[str, Any]:
    return {"ts": T0 + timedelta(seconds=s), "tenant": "team-a", "model": model, "model_version": version,
            "revision": None, "workload": "w", "action": action, "weight_pct": weight, "source": source,
            "artifact_digest": None, "message": message}


def _frame(*rows: dict[str, Any]) -> pl.DataFrame:
    return rows_frame(rows)


def _at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


PROMOTE = (
    _row(0, "warmup_started", "v1"),
    _row(100, "started", "v2"),
    _row(100, "weight", None, 20),
    _row(100, "paused"),
    _row(160, "warmup_done", "v2"),
    _row(200, "step"),
    _row(200, "weight", None, 60),
    _row(300, "weight", None, 100),
    _row(300, "promoted", "v2"),
)


def test_hand_computed_promotion_timeline() -> None:
    tl = build_version_timeline(_frame(_row(95, "warmup_started", "v2"), *PROMOTE))
    cols = ["valid_from", "valid_to", "stable_version", "canary_version", "canary_weight_pct", "canary_paused",
            "canary_warming", "outcome"]
    assert tl.select(cols).rows() == [
        (_at(0), _at(100), "v1", None, None, False, None, None),
        (_at(100), _at(160), "v1", "v2", 20.0, True, True, "paused"),
        (_at(160), _at(200), "v1", "v2", 20.0, True, False, "paused"),
        (_at(200), _at(300), "v1", "v2", 60.0, False, False, "progressing"),
        (_at(300), None, "v2", None, None, False, None, "promoted"),
    ]


def test_simulator_events_give_the_canary_timeline() -> None:
    sim = Simulation(manual=True)
    spec = sim.spec.canary
    end = spec.start_s + len(spec.weight_steps) * spec.step_duration_s
    sim.advance_to(end + 60)
    pods_doc = sim.pods_json()
    pods = parse_pod_list(pods_doc, source="pods")
    models = {(p["metadata"]["namespace"], p["metadata"]["name"]): p["metadata"]["labels"]["fleetlens.io/model"]
              for p in pods_doc["items"] if "fleetlens.io/model" in p["metadata"]["labels"]}
    rows = parse_k8s_events(sim.events_json(), source="sim", workloads=build_workload_index(pods, models)).deployments
    tl = build_version_timeline(rows).filter(pl.col("model") == spec.model)
    canary_hash = next(p.model_version for p in pods.pods if p.revision == str(spec.revision))
    start = sim.spec.start + timedelta(seconds=spec.start_s)
    active = tl.filter(pl.col("canary_active"))
    assert active.get_column("valid_from").min() == start
    assert set(active.get_column("canary_version")) == {canary_hash}
    assert active.get_column("canary_weight_pct").to_list() == [float(w) for w in spec.weight_steps]
    assert active.get_column("valid_from").to_list() == [
        start + timedelta(seconds=i * spec.step_duration_s) for i in range(len(spec.weight_steps))]
    last = tl.row(-1, named=True)
    assert last["valid_from"] == sim.spec.start + timedelta(seconds=end)
    assert (last["outcome"], last["canary_active"], last["valid_to"]) == ("aborted", False, None)


# 250: Argo records RolloutResumed (step) and RolloutPaused at the same instant; the pause is the end state.
EVENTS = (*PROMOTE, _row(250, "step"), _row(250, "paused"), _row(400, "started", "v3"), _row(400, "weight", None, 10), _row(460, "aborted", "v3"),
          _row(460, "weight", None, 0), _row(500, "rolled_back", "v1"), _row(20, "started", source="gitops"))


@settings(max_examples=60, deadline=None)
@given(st.permutations(EVENTS), st.lists(st.sampled_from(EVENTS), max_size=8))
def test_shuffled_and_duplicated_events_give_the_same_timeline(order: list[dict[str, Any]],
                                                                dups: list[dict[str, Any]]) -> None:
    expected = build_version_timeline(_frame(*EVENTS))
    assert build_version_timeline(_frame(*order, *dups)).equals(expected)


def test_a_resent_start_or_promotion_later_changes_nothing() -> None:
    once = build_version_timeline(_frame(*PROMOTE))
    again = build_version_timeline(_frame(*PROMOTE, _row(150, "started", "v2"), _row(320, "promoted", "v2"),
                                          _row(330, "aborted", "v2")))
    assert again.equals(once)


@pytest.mark.parametrize(("early_s", "applied"), [
    pytest.param(SKEW_TOLERANCE_S - 1, True, id="inside the tolerance the weight follows the start"),
    pytest.param(SKEW_TOLERANCE_S + 5, False, id="beyond the tolerance it is ignored"),
])
def test_clock_skew_between_sources(early_s: float, applied: bool) -> None:
    # Flagger's controller clock runs behind our webhook receiver: its weight event predates the start.
    tl = build_version_timeline(_frame(
        _row(0, "warmup_started", "v1", source="k8s"),
        _row(100, "started", "v2", source="flagger"),
        _row(100 - early_s, "weight", None, 30, source="flagger"),
    ))
    state = version_at(tl, _at(100), "team-a", "m")
    assert state is not None and state.canary_version == "v2"
    assert state.canary_weight_pct == (30.0 if applied else 0.0)


def test_warmup_reported_before_the_start_by_a_skewed_kubelet_still_counts() -> None:
    tl = build_version_timeline(_frame(_row(0, "warmup_started", "v1"), _row(98, "warmup_started", "v2", source="k8s"),
                                       _row(100, "started", "v2")))
    assert version_at(tl, _at(100), "team-a", "m").canary_warming is True


def test_version_at_before_the_first_row_is_none() -> None:
    tl = build_version_timeline(_frame(*PROMOTE))
    assert version_at(tl, _at(-1), "team-a", "m") is None
    assert version_at(tl, _at(250), "team-a", "m").canary_weight_pct == 60.0


def test_assign_versions_keeps_known_versions_and_never_guesses() -> None:
    tl = build_version_timeline(_frame(*PROMOTE))
    frame = pl.DataFrame({
        "ts": [_at(50), _at(50), _at(150), _at(150), _at(150), _at(250), _at(350), _at(-10), _at(150)],
        "tenant": ["team-a"] * 8 + ["team-b"],
        "model": ["m"] * 9,
        "model_version": [None, "v1", "v1", "v2", None, None, None, None, None],
        "request_id": [str(i) for i in range(9)],
    }).with_columns(pl.col("ts").cast(DEPLOYMENTS.columns["ts"]))
    out = assign_versions(frame, tl)
    assert out.get_column("request_id").to_list() == frame.get_column("request_id").to_list()
    assert out.select("model_version", "variant").rows() == [
        ("v1", "none"),      # no canary: the stable version serves
        ("v1", "none"),      # own version, no canary running
        ("v1", "baseline"),  # own version is the stable one during the canary
        ("v2", "canary"),
        (None, "none"),      # two versions at 20 %: unknown, not guessed
        (None, "none"),
        ("v2", "none"),      # after promotion
        (None, "none"),      # before the timeline starts
        (None, "none"),      # a tenant with no timeline
    ]


def test_weight_zero_and_hundred_decide_a_versionless_row() -> None:
    tl = build_version_timeline(_frame(_row(0, "warmup_started", "v1"), _row(10, "started", "v2"),
                                       _row(20, "weight", None, 100)))
    frame = pl.DataFrame({"ts": [_at(15), _at(25)], "tenant": ["team-a"] * 2, "model": ["m"] * 2}) \
        .with_columns(pl.col("ts").cast(DEPLOYMENTS.columns["ts"]))
    assert assign_versions(frame, tl).select("model_version", "variant").rows() == [
        ("v1", "baseline"), ("v2", "canary")]


def test_rollback_makes_the_older_version_stable() -> None:
    tl = build_version_timeline(_frame(*PROMOTE, _row(500, "rolled_back", "v1", source="k8s")))
    last = tl.row(-1, named=True)
    assert (last["stable_version"], last["outcome"]) == ("v1", "rolled_back")
