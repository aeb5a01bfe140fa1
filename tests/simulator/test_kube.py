"""Kubernetes JSON: pods, nodes and events in the shapes kubectl prints."""

from __future__ import annotations

import json

from simulator import Simulation
from simulator.fleet import Variant
from tests.simulator.conftest import UPSTREAM


def _fixture(name: str) -> dict:
    return json.loads((UPSTREAM / "kubernetes" / name).read_text())


def test_events_have_the_upstream_core_v1_event_shape(sim_40min: Simulation) -> None:
    ref = _fixture("core.v1.Event.json")
    doc = sim_40min.events_json()
    assert doc["kind"] == "List" and doc["items"]
    for ev in doc["items"]:
        assert set(ev) <= set(ref), set(ev) - set(ref)
        assert {
            "involvedObject",
            "reason",
            "message",
            "type",
            "firstTimestamp",
            "lastTimestamp",
            "count",
            "source",
            "metadata",
        } <= set(ev)
        assert set(ev["involvedObject"]) <= set(ref["involvedObject"])
        assert set(ev["metadata"]) <= set(ref["metadata"])
        assert set(ev["source"]) <= set(ref["source"])


def test_rollout_events_follow_argo_reasons_and_messages(sim_40min: Simulation) -> None:
    items = [e for e in sim_40min.events_json()["items"] if e["involvedObject"]["kind"] == "Rollout"]
    reasons = [e["reason"] for e in items]
    assert reasons[0] == "RolloutUpdated"
    assert {"RolloutStepCompleted", "TrafficWeightUpdated", "RolloutPaused", "RolloutAborted"} <= set(reasons)
    msgs = {e["reason"]: e["message"] for e in items}
    assert msgs["RolloutUpdated"] == "Rollout updated to revision 2"
    assert msgs["RolloutAborted"] == "Rollout aborted update to revision 2"
    assert next(e for e in items if e["reason"] == "RolloutAborted")["type"] == "Warning"
    steps = [e["message"] for e in items if e["reason"] == "RolloutStepCompleted"]
    assert steps[0] == "Rollout step 1/6 completed (setWeight: 10)"
    stamps = [e["lastTimestamp"] for e in items]
    assert stamps == sorted(stamps)


def test_pods_map_ip_and_port_to_the_target_and_carry_rollout_labels() -> None:
    with Simulation(manual=True) as sim:
        sim.advance_to(600)
        pods = sim.pods_json()
        ref = _fixture("core.v1.Pod.json")
        by_addr = {}
        for pod in pods["items"]:
            assert set(pod) <= set(ref) and set(pod["metadata"]) <= set(ref["metadata"])
            assert set(pod["status"]) <= set(ref["status"])
            port = pod["spec"]["containers"][0]["ports"][0]["containerPort"]
            by_addr[f"{pod['status']['podIP']}:{port}"] = (
                pod["metadata"]["namespace"],
                pod["metadata"]["name"],
            )
        for t in sim.targets():
            assert by_addr[t.labels["instance"]] == (t.labels["namespace"], t.labels["pod"])
        engine = [p for p in pods["items"] if "rollouts-pod-template-hash" in p["metadata"]["labels"]]
        hashes = {
            p["metadata"]["labels"]["rollouts-pod-template-hash"]
            for p in engine
            if p["metadata"]["labels"]["app.kubernetes.io/name"] == "llama-3-1-8b-instruct"
        }
        assert len(hashes) == 2, "baseline and canary carry different template hashes"
        revs = {p["metadata"]["annotations"]["rollout.argoproj.io/revision"] for p in engine}
        assert revs == {"1", "2"}
        limits = [p["spec"]["containers"][0]["resources"]["limits"] for p in engine]
        assert any("nvidia.com/mig-3g.40gb" in x for x in limits)
        assert any(x.get("nvidia.com/gpu") == "4" for x in limits)
        assert sum("gpu-fraction" in p["metadata"]["annotations"] for p in engine) == 2
        canary = [p for p in sim.fleet.engine_pods if p.variant is Variant.CANARY]
        assert all(
            t.labels["model_version"] == canary[0].template_hash
            for t in sim.targets()
            if t.labels["pod"] == canary[0].name
        )


def test_nodes_show_gpu_products_and_mig_capacity(sim_40min: Simulation) -> None:
    ref = _fixture("core.v1.Node.json")
    nodes = {n["metadata"]["name"]: n for n in sim_40min.nodes_json()["items"]}
    for n in nodes.values():
        assert set(n) <= set(ref) and set(n["status"]) <= set(ref["status"])
    a100 = nodes["gpu-a100-0"]
    assert a100["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-80GB"
    cap = a100["status"]["capacity"]
    assert (
        cap["nvidia.com/gpu"] == "3"
        and cap["nvidia.com/mig-1g.10gb"] == "2"
        and cap["nvidia.com/mig-3g.40gb"] == "1"
    )
    assert nodes["gpu-h100-0"]["status"]["allocatable"]["nvidia.com/gpu"] == "8"
    assert "nvidia.com/gpu" not in nodes["cpu-0"]["status"]["capacity"]
