"""Kubernetes JSON as ``kubectl get pods -A -o json``, ``get nodes -o json`` and ``get events -A -o json`` print it."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

from simulator.config import MIG_MEMORY_MIB
from simulator.fleet import Pod, Variant, stable_hex, stable_uuid
from simulator.rollout import RolloutEvent
from simulator.state import FleetState

IMAGES = {
    "vllm": "vllm/vllm-openai:v0.33.0",
    "vllm-0.8": "vllm/vllm-openai:v0.8.5",
    "triton": "nvcr.io/nvidia/tritonserver:25.01-trtllm-python-py3",
    "dcgm": "nvcr.io/nvidia/k8s/dcgm-exporter:4.5.3-4.8.2-ubuntu22.04",
}


def ts(state: FleetState, t: float) -> str:
    """RFC 3339 (seconds) for sim time ``t``, as Kubernetes writes metav1.Time."""
    return (state.spec.start + timedelta(seconds=t)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_ts(state: FleetState, t: float) -> str:
    """RFC 3339 with microseconds (metav1.MicroTime)."""
    return (state.spec.start + timedelta(seconds=t)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _list(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}


def _resources(pod: Pod) -> dict[str, dict[str, str]]:
    if pod.engine is None:
        return {"limits": {"memory": "1Gi"}, "requests": {"cpu": "100m", "memory": "512Mi"}}
    gr = pod.grants[0]
    limits = {"cpu": "16", "memory": "128Gi"}
    if gr.mig_instance is not None:
        limits[f"nvidia.com/mig-{gr.gpu.mig_profiles[gr.mig_instance]}"] = "1"
    elif gr.fraction is None:
        limits["nvidia.com/gpu"] = str(len(pod.grants))
    return {"limits": dict(limits), "requests": dict(limits)}


def pod_json(state: FleetState, pod: Pod, port: int) -> dict[str, Any]:
    """One pod object; ``status.podIP`` is 127.0.0.1 and the container port is the pod's /metrics port."""
    is_engine = pod.engine is not None
    labels = {
        "app.kubernetes.io/name": pod.app,
        "app.kubernetes.io/component": "inference" if is_engine else "dcgm-exporter",
    }
    annotations: dict[str, str] = {}
    if is_engine:
        assert pod.model is not None
        labels["rollouts-pod-template-hash"] = pod.template_hash
        labels["app.kubernetes.io/version"] = f"rev{pod.revision}"
        labels["fleetlens.io/model"] = pod.model.name.replace("/", "_")
        annotations["rollout.argoproj.io/revision"] = str(pod.revision)
        if pod.grants[0].fraction is not None:
            annotations["gpu-fraction"] = str(pod.grants[0].fraction)
        owner = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": f"{pod.app}-{pod.template_hash}",
            "uid": stable_uuid(state.spec.seed, "rs", pod.app, pod.template_hash),
            "controller": True,
            "blockOwnerDeletion": True,
        }
    else:
        labels["pod-template-generation"] = "1"
        owner = {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "name": "nvidia-dcgm-exporter",
            "uid": stable_uuid(state.spec.seed, "ds", "dcgm"),
            "controller": True,
            "blockOwnerDeletion": True,
        }
    created = pod.start_s if pod.start_s > 0 else -3600.0
    restarts = state.restart_count.get(pod.name, 0)
    started = created
    if restarts:
        started = max(t for t, p in _restart_times(state) if p == pod.name and t <= state.t)
    engine_key = pod.engine.value if pod.engine else "dcgm"
    # Ready once warmed up (CUDA graphs, caches): the kubelet flips the Ready condition then.
    engine = state.engines.get(pod.name)
    ready_at = started + (engine.warmup_s if engine is not None else 0.0)
    ready = state.t >= ready_at
    container = {
        "name": pod.container,
        "image": IMAGES[engine_key],
        "args": ["--port", str(port)] + (["--served-model-name", pod.model.name] if pod.model else []),
        "ports": [{"containerPort": port, "name": "metrics" if not is_engine else "http", "protocol": "TCP"}],
        "resources": _resources(pod),
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "annotations": annotations,
            "creationTimestamp": ts(state, created),
            "labels": labels,
            "name": pod.name,
            "namespace": pod.namespace,
            "ownerReferences": [owner],
            "resourceVersion": str(1000 + int(stable_hex(pod.uid, n=5), 16) % 90000),
            "uid": pod.uid,
        },
        "spec": {
            "containers": [container],
            "nodeName": pod.node,
            "schedulerName": "runai-scheduler" if annotations.get("gpu-fraction") else "default-scheduler",
        },
        "status": {
            "containerStatuses": [
                {
                    "name": pod.container,
                    "ready": ready,
                    "restartCount": restarts,
                    "image": IMAGES[engine_key],
                    "started": True,
                    "state": {"running": {"startedAt": ts(state, started)}},
                }
            ],
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": ts(state, created)},
                {"type": "Initialized", "status": "True", "lastTransitionTime": ts(state, created)},
                {"type": "ContainersReady", "status": "True" if ready else "False",
                 "lastTransitionTime": ts(state, ready_at if ready else started)},
                {"type": "Ready", "status": "True" if ready else "False",
                 "lastTransitionTime": ts(state, ready_at if ready else started)},
            ],
            "hostIP": "127.0.0.1",
            "phase": "Running",
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": ts(state, created),
            "qosClass": "Guaranteed" if is_engine else "Burstable",
        },
    }


def _restart_times(state: FleetState) -> list[tuple[float, str]]:
    from simulator.state import resolve_restart

    out = []
    for r in state.spec.restarts:
        p = resolve_restart(r, state.fleet.engine_pods)
        if p is not None:
            out.append((r.at_s, p.name))
    return out


def node_json(state: FleetState, name: str) -> dict[str, Any]:
    """One node object with GPU product labels and nvidia.com/gpu and MIG capacity."""
    spec = next(n for n in state.spec.nodes if n.name == name)
    cap: dict[str, str] = {
        "cpu": str(spec.cpu),
        "memory": f"{spec.memory_gib * 1024 * 1024}Ki",
        "pods": "110",
    }
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": f"{spec.gpu.lower()}x{spec.gpu_count}"
        if spec.gpu_count
        else "cpu",
    }
    if spec.gpu_count:
        gpus = [g for g in state.fleet.gpus if g.node == name]
        whole = [g for g in gpus if not g.mig_profiles]
        cap["nvidia.com/gpu"] = str(len(whole))
        for g in gpus:
            for prof in g.mig_profiles:
                k = f"nvidia.com/mig-{prof}"
                cap[k] = str(int(cap.get(k, "0")) + 1)
        labels.update(
            {
                "nvidia.com/gpu.product": gpus[0].product.label,
                "nvidia.com/gpu.count": str(len(gpus)),
                "nvidia.com/gpu.memory": str(gpus[0].product.memory_mib),
                "nvidia.com/mig.strategy": "mixed" if spec.mig else "none",
                "nvidia.com/gpu.present": "true",
            }
        )
        for prof in sorted({p for g in gpus for p in g.mig_profiles}):
            labels[f"nvidia.com/mig-{prof}.memory"] = str(MIG_MEMORY_MIB[prof])
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "annotations": {},
            "creationTimestamp": ts(state, -30 * 86400.0),
            "labels": labels,
            "name": name,
            "resourceVersion": "1",
            "uid": stable_uuid(state.spec.seed, "node", name),
        },
        "spec": {"podCIDR": "10.244.0.0/24"},
        "status": {
            "addresses": [
                {"address": "127.0.0.1", "type": "InternalIP"},
                {"address": name, "type": "Hostname"},
            ],
            "allocatable": dict(cap),
            "capacity": cap,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": ts(state, state.t),
                    "lastTransitionTime": ts(state, -30 * 86400.0),
                }
            ],
            "nodeInfo": {
                "architecture": "amd64",
                "kubeletVersion": "v1.30.4",
                "operatingSystem": "linux",
                "containerRuntimeVersion": "containerd://1.7.20",
            },
        },
    }


def pods_list(state: FleetState, ports: dict[str, int]) -> dict[str, Any]:
    """``kubectl get pods -A -o json`` at the state's time (pods created so far)."""
    items = [pod_json(state, p, ports.get(p.target_id, 0)) for p in state.fleet.pods if state.exists(p)]
    items.sort(key=lambda d: (d["metadata"]["namespace"], d["metadata"]["name"]))
    return _list(items)


def nodes_list(state: FleetState) -> dict[str, Any]:
    """``kubectl get nodes -o json``."""
    return _list([node_json(state, n.name) for n in sorted(state.spec.nodes, key=lambda n: n.name)])


def _event(state: FleetState, e: RolloutEvent, i: int, obj: dict[str, str], host: str = "") -> dict[str, Any]:
    name = f"{obj['name']}.{stable_hex(state.spec.seed, 'ev', i, e.reason, e.t, n=16)}"
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "count": 1,
        "eventTime": None,
        "firstTimestamp": ts(state, e.t),
        "lastTimestamp": ts(state, e.t),
        "involvedObject": obj,
        "message": e.message,
        "reason": e.reason,
        "type": e.type,
        "metadata": {
            "creationTimestamp": ts(state, e.t),
            "name": name,
            "namespace": obj["namespace"],
            "resourceVersion": str(5000 + i),
            "uid": stable_uuid(state.spec.seed, "event", name),
        },
        "reportingComponent": e.component,
        "reportingInstance": host,
        "source": {"component": e.component, **({"host": host} if host else {})},
    }


def events_list(state: FleetState) -> dict[str, Any]:
    """``kubectl get events -A -o json``: the rollout's events and container restarts so far."""
    items: list[tuple[float, dict[str, Any]]] = []
    if state.rollout is not None:
        ro = state.rollout
        pods = [p for p in state.fleet.engine_pods if p.variant is Variant.CANARY]
        obj = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "name": ro.rollout_name,
            "namespace": pods[0].namespace,
            "resourceVersion": "1",
            "uid": stable_uuid(state.spec.seed, "rollout", ro.rollout_name),
        }
        for i, e in enumerate(ro.events()):
            if e.t <= state.t:
                items.append((e.t, _event(state, e, i, obj)))
    by_name = {p.name: p for p in state.fleet.engine_pods}
    # The kubelet's "Started" for pods created during the run (the canary's), where warm-up begins.
    for j, p in enumerate(p for p in state.fleet.engine_pods if 0 < p.start_s <= state.t):
        obj = {"apiVersion": "v1", "kind": "Pod", "name": p.name, "namespace": p.namespace, "uid": p.uid,
               "resourceVersion": "1", "fieldPath": f"spec.containers{{{p.container}}}"}
        ev = RolloutEvent(p.start_s, "Started", f"Started container {p.container}", component="kubelet")
        items.append((ev.t, _event(state, ev, 2000 + j, obj, p.node)))
    for j, (t, name) in enumerate(_restart_times(state)):
        if t > state.t:
            continue
        p = by_name[name]
        obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": p.name,
            "namespace": p.namespace,
            "uid": p.uid,
            "resourceVersion": "1",
            "fieldPath": f"spec.containers{{{p.container}}}",
        }
        for k, (reason, msg) in enumerate(
            (
                ("Killing", f"Stopping container {p.container}"),
                ("Started", f"Started container {p.container}"),
            )
        ):
            ev = RolloutEvent(t + k * state.spec.restart_downtime_s, reason, msg, component="kubelet")
            if ev.t <= state.t:
                items.append((ev.t, _event(state, ev, 1000 + 2 * j + k, obj, p.node)))
    items.sort(key=lambda x: x[0])
    return _list([d for _, d in items])
