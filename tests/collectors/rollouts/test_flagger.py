"""Flagger event messages and webhook payloads -> deployments rows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from analytics.errors import InputError
from analytics.timeline import build_version_timeline
from collectors.kube.pods import parse_pod_list
from collectors.kube.workloads import build_workload_index
from collectors.rollouts.events import parse_k8s_events
from collectors.rollouts.flagger import HOOK_TYPES, classify_flagger_message, parse_flagger_webhook

FIX = Path(__file__).resolve().parents[2] / "fixtures"
T0 = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(("message", "expected"), [
    # Formats from fluxcd/flagger pkg/controller/scheduler.go; names are ours.
    pytest.param("New revision detected! Scaling up podinfo.test", ("started", None), id="new revision"),
    pytest.param("New revision detected! Restarting analysis for podinfo.test", ("started", None), id="restart"),
    pytest.param("Starting canary analysis for podinfo.test", ("step", None), id="analysis starts"),
    pytest.param("Advance podinfo.test canary weight 15", ("weight", 15.0), id="canary weight"),
    pytest.param("Advance podinfo.test primary weight 70", ("weight", 30.0), id="promotion shift via primary"),
    pytest.param("Advance podinfo.test canary iteration 3/10", ("step", None), id="iteration"),
    pytest.param("Routing all traffic to canary", ("weight", 100.0), id="blue green switch"),
    pytest.param("Copying podinfo.test template spec to podinfo-primary.test", ("step", None), id="promotion copy"),
    pytest.param("Halt podinfo.test advancement external check load-test failed x", ("paused", None), id="halt"),
    pytest.param("Promotion completed! Scaling down podinfo.test", ("promoted", None), id="promoted"),
    pytest.param("Rolling back podinfo.test failed checks threshold reached 5", ("aborted", None), id="rollback"),
    pytest.param("Canary failed! Scaling down podinfo.test", ("aborted", None), id="failed"),
    pytest.param("skipping canary run as object is suspended", None, id="not a rollout message"),
])
def test_flagger_messages_map_to_actions(message: str, expected: tuple[str, float | None] | None) -> None:
    got = classify_flagger_message(message)
    assert (None if got is None else (got[0].value, got[1])) == expected


def test_webhook_types_match_the_canary_crd_enum() -> None:
    docs = list(yaml.safe_load_all((FIX / "upstream" / "flagger" / "crd.yaml").read_text()))
    canary = next(d for d in docs if d and d["spec"]["names"]["kind"] == "Canary")
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "webhooks" in node and isinstance(node["webhooks"], dict):
                found.update(node["webhooks"]["items"]["properties"]["type"]["enum"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(canary)
    assert found - {""} == set(HOOK_TYPES)
    # The CRD also allows an empty type, which Flagger treats as a rollout check.
    batch = parse_flagger_webhook(_payload(), source="hook", received_at=T0, hook_type="")
    assert batch.deployments.get_column("action").to_list() == ["step"]


def test_flagger_events_from_the_fixture_give_a_canary_that_is_aborted() -> None:
    doc = yaml.safe_load((FIX / "events" / "flagger-argocd-deployment.yaml").read_text())
    rows = parse_k8s_events(doc, source="fixture").deployments.filter(pl.col("source") == "flagger")
    tl = build_version_timeline(rows)
    assert tl.select("canary_active", "canary_weight_pct", "canary_paused", "outcome").rows() == [
        (True, 0.0, False, "progressing"), (True, 20.0, False, "progressing"), (True, 20.0, True, "paused"),
        (False, None, False, "aborted")]


def _payload(**kw: Any) -> dict[str, Any]:
    return {"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": "6d9c", **kw}


@pytest.mark.parametrize(("hook", "phase", "action"), [
    pytest.param("pre-rollout", "Progressing", "started", id="pre-rollout starts the analysis"),
    pytest.param("rollout", "Progressing", "step", id="rollout check is a step"),
    pytest.param("confirm-promotion", "WaitingPromotion", "paused", id="promotion gate pauses"),
    pytest.param("confirm-rollout", "Waiting", "paused", id="rollout gate pauses"),
    pytest.param("post-rollout", "Succeeded", "promoted", id="post-rollout after success"),
    pytest.param("post-rollout", "Failed", "aborted", id="post-rollout after failure"),
    pytest.param("rollback", "Progressing", "step", id="rollback gate is a check not a rollback"),
])
def test_webhook_phase_and_type_map_to_actions(hook: str, phase: str, action: str) -> None:
    batch = parse_flagger_webhook(_payload(phase=phase), source="hook", received_at=T0, hook_type=hook)
    row = batch.deployments.row(0, named=True)
    assert (row["action"], row["ts"], row["source"], row["artifact_digest"]) == (action, T0, "flagger", "6d9c")


def test_event_webhook_uses_the_message_and_flaggers_timestamp() -> None:
    meta = {"eventMessage": "Advance podinfo.test canary weight 40", "eventType": "Normal", "timestamp": "1748854920000"}
    row = parse_flagger_webhook(_payload(metadata=meta), source="hook", received_at=T0, hook_type="event") \
        .deployments.row(0, named=True)
    assert (row["action"], row["weight_pct"]) == ("weight", 40.0)
    assert row["ts"] == datetime.fromtimestamp(1748854920, tz=UTC)


def test_initialized_phase_is_not_a_rollout_event() -> None:
    batch = parse_flagger_webhook(_payload(phase="Initialized"), source="hook", received_at=T0, hook_type="rollout")
    assert batch.deployments.is_empty() and batch.ignored == 1


def test_canary_version_comes_from_the_canary_workloads_pods() -> None:
    def pod(wl: str, h: str) -> dict[str, Any]:
        return {"kind": "Pod", "metadata": {"namespace": "test", "name": f"{wl}-{h}-a",
                "labels": {"pod-template-hash": h}, "ownerReferences": [
                    {"kind": "ReplicaSet", "name": f"{wl}-{h}", "controller": True}]}}
    pods = parse_pod_list({"kind": "List", "items": [pod("podinfo", "c4n4ry"), pod("podinfo-primary", "pr1m4")]},
                          source="pods")
    wi = build_workload_index(pods, {("test", "podinfo-primary-pr1m4-a"): "qwen"})
    row = parse_flagger_webhook(_payload(), source="hook", received_at=T0, hook_type="pre-rollout", workloads=wi) \
        .deployments.row(0, named=True)
    assert (row["model"], row["model_version"]) == ("qwen", "c4n4ry")


@pytest.mark.parametrize(("payload", "kw"), [
    pytest.param(["not", "an", "object"], {}, id="not an object"),
    pytest.param({"namespace": "test"}, {}, id="no name"),
    pytest.param(_payload(metadata="x"), {}, id="metadata not an object"),
    pytest.param(_payload(namespace="Bad_NS"), {}, id="namespace not a tenant"),
    pytest.param(_payload(), {"hook_type": "unknown"}, id="unknown hook type"),
    pytest.param(_payload(metadata={"eventMessage": "x", "timestamp": "soon"}), {"hook_type": "event"},
                 id="timestamp not milliseconds"),
    pytest.param(_payload(), {"received_at": datetime(2025, 6, 2)}, id="naive receive time"),
])
def test_unusable_payloads_raise_naming_the_source(payload: Any, kw: dict[str, Any]) -> None:
    with pytest.raises(InputError, match="^hook"):
        parse_flagger_webhook(payload, source="hook", **{"received_at": T0, **kw})
