"""Kubernetes Events -> deployments rows: upstream shapes, the simulator's Argo sequence, malformed and deduplicated events."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from analytics.errors import InputError
from analytics.schema import DEPLOYMENTS
from collectors.kube.pods import parse_pod_list
from collectors.kube.workloads import WorkloadIndex, build_workload_index
from collectors.rollouts.events import _classify_rollout, parse_k8s_events
from collectors.rollouts.rows import EventBatch
from collectors.rollouts.warmup import parse_pod_warmup
from simulator import Simulation

UP = Path(__file__).resolve().parents[2] / "fixtures" / "upstream"


def _upstream(name: str) -> dict[str, Any]:
    path = UP / "kubernetes" / name
    return json.loads(path.read_text()) if name.endswith(".json") else yaml.safe_load(path.read_text())


def _t(s: str) -> datetime:
    return datetime.fromisoformat(s).astimezone(UTC)


def _ev(kind: str, name: str, reason: str, message: str, ts: str, *, ns: str = "team-a", count: int = 1,
        last: str | None = None, i: int = 0) -> dict[str, Any]:
    """A core/v1 Event shaped like kubernetes/api testdata core.v1.Event.json (our values)."""
    return {"apiVersion": "v1", "kind": "Event", "metadata": {"name": f"{name}.{i}", "namespace": ns},
            "involvedObject": {"kind": kind, "name": name, "namespace": ns}, "reason": reason,
            "message": message, "count": count, "firstTimestamp": ts, "lastTimestamp": last or ts, "type": "Normal"}


def _pods(*specs: tuple[str, str, str, str]) -> dict[str, Any]:
    """A pod list: (workload, hash, revision, pod suffix) per pod, owned by ReplicaSet <workload>-<hash>."""
    items = []
    for wl, h, rev, suffix in specs:
        items.append({"kind": "Pod", "metadata": {
            "namespace": "team-a", "name": f"{wl}-{h}-{suffix}",
            "labels": {"rollouts-pod-template-hash": h, "app.kubernetes.io/name": wl},
            "annotations": {"rollout.argoproj.io/revision": rev},
            "ownerReferences": [{"kind": "ReplicaSet", "name": f"{wl}-{h}", "controller": True}]},
            "spec": {"containers": [{"name": "vllm"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "vllm", "state": {"running": {"startedAt": "2025-06-02T07:00:00Z"}}}]}})
    return {"kind": "List", "items": items}


def _index(doc: dict[str, Any], model: str = "llama-8b") -> WorkloadIndex:
    pods = parse_pod_list(doc, source="pods")
    return build_workload_index(pods, {(p.namespace, p.name): model for p in pods.pods})


def _list(*items: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "items": list(items)}


@pytest.mark.parametrize("name", [
    pytest.param("core.v1.Event.json", id="core v1 json"),
    pytest.param("core.v1.Event.yaml", id="core v1 yaml"),
    pytest.param("events.k8s.io.v1.Event.json", id="events.k8s.io v1 json"),
    pytest.param("events.k8s.io.v1.Event.yaml", id="events.k8s.io v1 yaml"),
])
def test_upstream_placeholder_event_parses_and_is_not_a_rollout_event(name: str) -> None:
    batch = parse_k8s_events(_upstream(name), source=name)
    assert batch.deployments.is_empty() and batch.ignored == 1 and batch.issues == ()


@pytest.mark.parametrize(("name", "first", "last"), [
    # core/v1: firstTimestamp, then the later of lastTimestamp and series.lastObservedTime.
    pytest.param("core.v1.Event.json", "2006-01-01T01:01:01Z", "2007-01-01T01:01:01Z", id="core v1 first and last"),
    # events.k8s.io/v1: eventTime (2 us past the second; the data set keeps milliseconds) is the first
    # occurrence; deprecatedLastTimestamp the last.
    pytest.param("events.k8s.io.v1.Event.json", "2002-01-01T01:01:01Z", "2014-01-01T01:01:01Z",
                 id="events.k8s.io v1 first and last"),
])
def test_upstream_shape_with_a_rollout_reason_keeps_first_and_last_occurrence(name: str, first: str, last: str) -> None:
    doc = copy.deepcopy(_upstream(name))
    obj = doc["regarding" if "regarding" in doc else "involvedObject"]
    obj.update(kind="Rollout", namespace="team-a", name="chat")
    doc["reason"] = "RolloutPaused"
    batch = parse_k8s_events(doc, source=name)
    assert batch.deployments.get_column("ts").to_list() == [_t(first), _t(last)]
    assert batch.deployments.get_column("action").to_list() == ["paused", "paused"]
    # count 8 / deprecatedCount 15 occurrences: two rows, never invented ones in between.
    assert batch.deployments.height == 2


def test_a_deduplicated_event_seen_once_gives_one_row() -> None:
    batch = parse_k8s_events(_ev("Rollout", "chat", "RolloutPaused", "Rollout is paused", "2025-06-02T08:00:00Z",
                                 count=1), source="one")
    assert batch.deployments.height == 1


def test_simulator_argo_sequence_gives_versions_weights_and_abort() -> None:
    sim = Simulation(manual=True)
    spec = sim.spec.canary
    sim.advance_to(spec.start_s + len(spec.weight_steps) * spec.step_duration_s + 60)
    pods_doc = sim.pods_json()
    pods = parse_pod_list(pods_doc, source="pods")
    models = {(p["metadata"]["namespace"], p["metadata"]["name"]): p["metadata"]["labels"]["fleetlens.io/model"]
              for p in pods_doc["items"] if "fleetlens.io/model" in p["metadata"]["labels"]}
    batch = parse_k8s_events(sim.events_json(), source="sim", workloads=build_workload_index(pods, models))
    df = batch.deployments
    assert batch.issues == ()
    canary = next(p for p in pods.pods if p.revision == str(spec.revision))
    assert set(df.get_column("model").unique()) == {spec.model}
    started = df.filter(pl.col("action") == "started")
    assert set(started.get_column("model_version")) == {canary.model_version}
    assert started.get_column("ts").min() == sim.spec.start + timedelta(seconds=spec.start_s)
    weights = df.filter(pl.col("action") == "weight").sort("ts").get_column("weight_pct").to_list()
    assert weights == [*map(float, spec.weight_steps), 0.0]
    aborted = df.filter(pl.col("action") == "aborted")
    assert aborted.get_column("model_version").to_list() == [canary.model_version]


def test_document_that_is_not_an_event_list_raises_naming_the_source() -> None:
    with pytest.raises(InputError, match="pods.json"):
        parse_k8s_events({"kind": "PodList", "items": []}, source="pods.json")
    with pytest.raises(InputError, match="bad.json:1"):
        parse_k8s_events("{not json", source="bad.json")


def test_malformed_items_are_reported_with_index_and_the_rest_kept() -> None:
    good = _ev("Rollout", "chat", "RolloutPaused", "Rollout is paused", "2025-06-02T08:00:00Z")
    no_time = _ev("Rollout", "chat", "RolloutPaused", "x", "")
    bad_time = _ev("Rollout", "chat", "RolloutPaused", "x", "yesterday")
    no_reason = {**good, "reason": None}
    bad_weight = _ev("Rollout", "chat", "TrafficWeightUpdated", "Traffic weight updated", "2025-06-02T08:00:00Z")
    bad_tenant = _ev("Rollout", "chat", "RolloutPaused", "x", "2025-06-02T08:00:00Z", ns="Team_A")
    batch = parse_k8s_events(_list(good, "junk", no_time, bad_time, no_reason, bad_weight, bad_tenant, good),
                             source="events.json")
    skipped = [i for i in batch.issues if i.reason.startswith("skipped")]
    assert [i.item for i in skipped] == [1, 2, 3, 4, 5, 6]
    assert all(str(i).startswith("events.json: items[") for i in batch.issues)
    assert batch.deployments.height == 2
    assert batch.deployments.columns == list(DEPLOYMENTS.columns)


def test_revision_resolves_to_hash_through_the_pod_list_and_missing_ones_are_reported() -> None:
    wi = _index(_pods(("chat", "aaa111", "1", "x"), ("chat", "bbb222", "2", "y")))
    batch = parse_k8s_events(_list(
        _ev("Rollout", "chat", "RolloutUpdated", "Rollout updated to revision 2", "2025-06-02T08:00:00Z"),
        _ev("Rollout", "chat", "RolloutAborted", "Rollout aborted update to revision 3", "2025-06-02T08:10:00Z"),
    ), source="ev", workloads=wi)
    assert batch.deployments.get_column("model_version").to_list() == ["bbb222", None]
    assert batch.deployments.get_column("revision").to_list() == ["2", "3"]
    assert batch.deployments.get_column("model").unique().to_list() == ["llama-8b"]
    assert [i.item for i in batch.issues] == [1] and "revision 3" in batch.issues[0].reason


def test_unknown_workload_keeps_the_workload_name_as_model_and_is_reported_once() -> None:
    batch = parse_k8s_events(_list(*(
        _ev("Rollout", "mystery", "RolloutPaused", "Rollout is paused", f"2025-06-02T08:0{i}:00Z", i=i)
        for i in range(3))), source="ev", workloads=WorkloadIndex())
    assert batch.deployments.get_column("model").to_list() == ["mystery"] * 3
    assert len(batch.issues) == 1 and "mystery" in batch.issues[0].reason


@pytest.mark.parametrize(("message", "version", "revision"), [
    pytest.param("Scaled up ReplicaSet chat-bbb222 (revision 2) from 0 to 1", "bbb222", "2", id="argo format"),
    pytest.param("Scaled up replica set chat-bbb222 from 0 to 3", "bbb222", None, id="deployment from-to format"),
    pytest.param("Scaled down replica set chat-bbb222 to 0", "bbb222", None, id="older deployment format"),
])
def test_scaling_replica_set_names_the_version(message: str, version: str, revision: str | None) -> None:
    kind = "Rollout" if "ReplicaSet" in message else "Deployment"
    df = parse_k8s_events(_ev(kind, "chat", "ScalingReplicaSet", message, "2025-06-02T08:00:00Z"), source="e").deployments
    assert df.row(0, named=True)["model_version"] == version and df.row(0, named=True)["revision"] == revision
    assert df.row(0, named=True)["action"] == "scaled"


def test_deployment_rollback_is_rolled_back_to_the_revision_hash() -> None:
    wi = _index(_pods(("chat", "aaa111", "1", "x")))
    df = parse_k8s_events(_ev("Deployment", "chat", "DeploymentRollback",
                              'Rolled back deployment "chat" to revision 1', "2025-06-02T08:00:00Z"),
                          source="e", workloads=wi).deployments
    assert df.select("action", "model_version").row(0) == ("rolled_back", "aaa111")


def test_kubelet_started_on_a_versioned_pod_is_warmup_started_and_other_pods_are_ignored() -> None:
    wi = _index(_pods(("chat", "bbb222", "2", "y")))
    batch = parse_k8s_events(_list(
        _ev("Pod", "chat-bbb222-y", "Started", "Started container vllm", "2025-06-02T08:01:00Z"),
        _ev("Pod", "chat-bbb222-y", "Pulling", "Pulling image", "2025-06-02T08:00:30Z"),
        _ev("Pod", "someone-else", "Started", "Started container x", "2025-06-02T08:01:00Z"),
    ), source="e", workloads=wi)
    assert batch.deployments.select("action", "model_version", "workload").rows() == [
        ("warmup_started", "bbb222", "chat")]
    assert batch.ignored == 2


def test_pod_warmup_reads_container_start_and_ready_transition() -> None:
    doc = _pods(("chat", "bbb222", "2", "y"), ("chat", "aaa111", "1", "x"))
    doc["items"][0]["status"]["conditions"] = [
        {"type": "Ready", "status": "True", "lastTransitionTime": "2025-06-02T07:02:00Z"}]
    batch = parse_pod_warmup(doc, source="pods", workloads=_index(doc))
    rows = batch.deployments.sort("ts", "model_version").select("action", "model_version", "ts").rows()
    assert rows == [("warmup_started", "aaa111", _t("2025-06-02T07:00:00Z")),
                    ("warmup_started", "bbb222", _t("2025-06-02T07:00:00Z")),
                    ("warmup_done", "bbb222", _t("2025-06-02T07:02:00Z"))]


def _kebab_to_reason(trigger: str) -> str:
    return "".join(part.capitalize() for part in trigger.split("-"))


def test_every_rollout_trigger_in_the_argo_catalog_is_a_reason_we_map() -> None:
    catalog = yaml.safe_load_all((UP / "argo-rollouts" / "notifications-install.yaml").read_text())
    triggers = {k.removeprefix("trigger.on-") for doc in catalog if doc and doc.get("kind") == "ConfigMap"
                for k in (doc.get("data") or {}) if k.startswith("trigger.on-")}
    rollout = {t for t in triggers if t.startswith(("rollout-", "scaling-")) or t == "analysis-run-failed"}
    assert {"rollout-updated", "rollout-aborted", "rollout-completed", "rollout-paused"} <= rollout
    for trigger in sorted(rollout):
        reason = _kebab_to_reason(trigger)
        assert re.fullmatch(r"[A-Z][A-Za-z]+", reason)
        assert _classify_rollout(reason, "Rollout updated to revision 2") is not None, reason


def test_batch_type_is_returned() -> None:
    assert isinstance(parse_k8s_events(_list(), source="empty"), EventBatch)
