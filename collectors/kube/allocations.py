"""GPU allocations per pod from ``kubectl get pods,nodes -A -o json``: whole, MIG, time-sliced, fractional.

One ALLOCATIONS row per running pod and grant: the pod's ``nvidia.com/gpu`` (or shared replicas) in one row
with ``mig_profile`` null, and one row per ``nvidia.com/mig-<profile>`` it holds. ``gpu_fraction`` is the
GPU-equivalents the row holds: N for ``nvidia.com/gpu: N`` whole GPUs, N x C/S for N instances of a MIG
profile with C of the GPU's S compute slices (1g.10gb on A100-80GB: 1/7), N/R for N time-slicing or MPS
replicas on a node advertising R replicas per GPU, f x D for a Run:ai ``gpu-fraction`` f on D devices
(``gpu-memory`` MiB / the GPU's memory when the fraction is given as memory). So sum(gpu_fraction) of a
pod is the GPUs it holds. Rows are per pod, not per device, because no pod says which device it got:
``gpu_uuid`` stays null and the join fills it from dcgm samples (a row may then be split per GPU).

Kinds: ``whole``, ``mig``, ``timeslice`` (time-slicing replicas, also of a MIG profile), ``fraction``
(Run:ai fractions and MPS replicas, which cap compute and memory per client). ``gpu_memory_bytes`` is the
framebuffer the grant owns: whole GPUs, MIG instances, fractions and MPS shares; null for time-slicing,
which shares the whole framebuffer.

Only ``Running`` pods hold devices here: Pending, Succeeded and Failed pods are skipped. Extended
resources must have requests equal to limits; limits are taken, else requests. A pod's amount is what
Kubernetes reserves: max(sum of app containers and sidecars, each init container plus the sidecars
started before it). Queue: Kueue ``kueue.x-k8s.io/queue-name`` label, else Run:ai ``runai/queue``
label; priority: ``spec.priority`` (resolved from ``priorityClassName`` at admission). The gang a pod
belongs to (``scheduling.x-k8s.io/pod-group`` label, KAI/Run:ai ``pod-group-name`` annotation) is kept
in ``AllocationBatch.pod_groups``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from types import MappingProxyType
from typing import Any

import polars as pl

from analytics.errors import ItemError, NameValidationError, Problem
from analytics.names import validate_tenant
from analytics.schema import ALLOCATIONS, AllocationKind, conform
from collectors.kube.items import of_kind, read_items, section, skipped, str_map, utc
from collectors.kube.mig_profiles import mig_fraction
from collectors.kube.nodes import (
    GPU,
    GPU_SHARED,
    MIG_PREFIX,
    NodeIndex,
    NodeInfo,
    nodes_from_items,
)
from collectors.kube.quantity import QuantityError, parse_quantity

GPU_FRACTION = "gpu-fraction"
GPU_MEMORY = "gpu-memory"
GPU_FRACTION_DEVICES = "gpu-fraction-num-devices"
RUNAI_QUEUE = "runai/queue"
KUEUE_QUEUE = "kueue.x-k8s.io/queue-name"
POD_GROUP_LABEL = "scheduling.x-k8s.io/pod-group"
POD_GROUP_ANNOTATION = "pod-group-name"
_MIB = 2**20


@dataclass(frozen=True, slots=True)
class AllocationBatch:
    """ALLOCATIONS rows of one pod list, what was skipped, and each pod's gang (namespace, pod) -> group."""

    frame: pl.DataFrame
    issues: tuple[Problem, ...] = ()
    pod_groups: Mapping[tuple[str, str], str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Grant:
    kind: AllocationKind
    mig_profile: str | None
    fraction: Fraction
    memory_mib: float | None


def parse_allocations(
    doc: Mapping[str, Any] | str, *, source: str, ts: datetime, cluster: str, nodes: NodeIndex | None = None
) -> AllocationBatch:
    """ALLOCATIONS of a pod list's running pods (nodes from ``nodes``, else from the document's Nodes)."""
    items, issues = read_items(doc, source=source)
    if nodes is None:
        nodes = nodes_from_items(items, source=source)
        issues.extend(nodes.issues)
    at = utc(ts)
    rows: list[dict[str, Any]] = []
    groups: dict[tuple[str, str], str] = {}
    for it in of_kind(items, "Pod"):
        try:
            pod_rows, group, notes = _pod_rows(it.obj, nodes)
        except ItemError as exc:
            issues.append(skipped(source, it.index, it.name, exc))
            continue
        issues.extend(Problem(source, n, item=it.index, name=it.name) for n in notes)
        for r in pod_rows:
            rows.append({"ts": at, "cluster": cluster, **r})
        if group and pod_rows:
            groups[(pod_rows[0]["tenant"], pod_rows[0]["pod"])] = group
    frame = conform(pl.DataFrame(rows, schema=ALLOCATIONS.schema), ALLOCATIONS)
    return AllocationBatch(frame, tuple(issues), MappingProxyType(groups))


def _pod_rows(obj: Mapping[str, Any], nodes: NodeIndex) -> tuple[list[dict[str, Any]], str | None, list[str]]:
    """The rows of one pod (none unless it runs and holds GPUs) and notes about what was ignored."""
    meta, spec, status = section(obj, "metadata"), section(obj, "spec"), section(obj, "status")
    ns, name = meta.get("namespace"), meta.get("name")
    if not isinstance(ns, str) or not ns or not isinstance(name, str) or not name:
        raise ItemError("metadata.namespace and metadata.name are required strings")
    if status.get("phase") != "Running":
        return [], None, []  # Pending pods hold nothing yet; Succeeded/Failed ones released their devices
    labels = str_map(meta.get("labels"), "metadata.labels")
    annotations = str_map(meta.get("annotations"), "metadata.annotations")
    notes: list[str] = []
    amounts = _pod_amounts(spec, notes)
    node_name = spec.get("nodeName")
    if not isinstance(node_name, str) or not node_name:
        if amounts or GPU_FRACTION in annotations or GPU_MEMORY in annotations:
            raise ItemError("a running pod holding GPUs has no spec.nodeName")
        return [], None, notes
    node = nodes.get(node_name)
    grants = _grants(amounts, annotations, node, notes)
    if not grants:
        return [], None, notes
    if node is None and nodes.nodes:
        notes.append(f"node {node_name!r} is not in the node list: GPUs counted as whole, memory unknown")
    try:
        tenant = validate_tenant(ns)
    except NameValidationError as exc:
        raise ItemError(str(exc)) from exc
    priority = spec.get("priority")
    queue = labels.get(KUEUE_QUEUE) or labels.get(RUNAI_QUEUE) or None
    group = labels.get(POD_GROUP_LABEL) or annotations.get(POD_GROUP_ANNOTATION) or None
    rows = [
        {
            "node": node_name,
            "gpu_uuid": None,
            "mig_profile": g.mig_profile,
            "pod": name,
            "tenant": tenant,
            "kind": g.kind.value,
            "gpu_fraction": float(g.fraction),
            "gpu_memory_bytes": None if g.memory_mib is None else g.memory_mib * _MIB,
            "priority": priority if isinstance(priority, int) and not isinstance(priority, bool) else None,
            "queue": queue,
        }
        for g in grants
    ]
    return rows, group, notes


def _container_amounts(c: object, notes: list[str]) -> dict[str, Fraction]:
    """One container's GPU resources: limits, else requests (they must be equal for extended resources)."""
    if not isinstance(c, Mapping):
        raise ItemError("every container must be an object")
    res = section(c, "resources")
    limits, requests = section(res, "limits"), section(res, "requests")
    out: dict[str, Fraction] = {}
    for r in {*limits, *requests}:
        if not (r in (GPU, GPU_SHARED) or r.startswith(MIG_PREFIX)):
            continue
        try:
            lim = parse_quantity(limits[r]) if r in limits else None
            req = parse_quantity(requests[r]) if r in requests else None
        except QuantityError as exc:
            raise ItemError(f"container {c.get('name')!r}: {r}: {exc}") from None
        if lim is not None and req is not None and lim != req:
            notes.append(
                f"container {c.get('name')!r}: {r} request {req} differs from limit {lim}; took the limit"
            )
        out[r] = lim if lim is not None else req  # type: ignore[assignment]
    return out


def _pod_amounts(spec: Mapping[str, Any], notes: list[str]) -> dict[str, Fraction]:
    """What the pod reserves per GPU resource, by Kubernetes' effective-request rule (sidecars included)."""
    containers = spec.get("containers") or []
    inits = spec.get("initContainers") or []
    if not isinstance(containers, list) or not isinstance(inits, list):
        raise ItemError("spec.containers and spec.initContainers must be lists")
    total: dict[str, Fraction] = {}
    peak: dict[str, Fraction] = {}
    sidecars: dict[str, Fraction] = {}
    for c in inits:
        amounts = _container_amounts(c, notes)
        if isinstance(c, Mapping) and c.get("restartPolicy") == "Always":
            for r, q in amounts.items():  # a native sidecar runs next to the app containers
                sidecars[r] = sidecars.get(r, Fraction(0)) + q
            continue
        for r, q in amounts.items():
            peak[r] = max(peak.get(r, Fraction(0)), q + sidecars.get(r, Fraction(0)))
    for c in containers:
        for r, q in _container_amounts(c, notes).items():
            total[r] = total.get(r, Fraction(0)) + q
    for r, q in sidecars.items():
        total[r] = total.get(r, Fraction(0)) + q
    out = {r: max(total.get(r, Fraction(0)), peak.get(r, Fraction(0))) for r in {*total, *peak}}
    return {r: q for r, q in out.items() if q > 0}


def _grants(
    amounts: Mapping[str, Fraction], annotations: Mapping[str, str], node: NodeInfo | None, notes: list[str]
) -> list[_Grant]:
    """The pod's grants: at most one without a MIG profile, one per MIG profile."""
    grants: dict[str | None, _Grant] = {}

    def add(g: _Grant) -> None:
        if g.mig_profile in grants:
            kept = grants[g.mig_profile]
            notes.append(f"pod holds both {kept.kind} and {g.kind} GPU grants; kept {kept.kind}")
            return
        grants[g.mig_profile] = g

    for r in sorted(amounts, key=lambda r: (r != GPU, r)):
        n = amounts[r]
        if n.denominator != 1:
            notes.append(f"{r}: {n} is not a whole number of devices; ignored")
            continue
        g = _resource_grant(r, n, node, notes)
        if g is not None:
            add(g)
    if GPU_FRACTION in annotations or GPU_MEMORY in annotations:
        g = _runai_grant(annotations, node, notes)
        if g is not None:
            add(g)
    return sorted(grants.values(), key=lambda g: g.mig_profile or "")


def _resource_grant(r: str, n: Fraction, node: NodeInfo | None, notes: list[str]) -> _Grant | None:
    mem = node.gpu_memory_mib if node else None
    if r in (GPU, GPU_SHARED):
        if node is not None and node.mig_single and r == GPU:
            return _mig_grant(node.mig_single, n, node, notes)
        # Under renameByDefault the replicas are nvidia.com/gpu.shared and nvidia.com/gpu stays whole.
        shared = r == GPU_SHARED or (node is not None and node.replicas > 1 and not node.renamed)
        if not shared:
            return _Grant(AllocationKind.WHOLE, None, n, None if mem is None else mem * n)
        replicas = node.replicas if node is not None else 1
        if replicas <= 1:
            notes.append(f"{r}: the node does not advertise nvidia.com/gpu.replicas; counted as whole GPUs")
        if node is not None and node.sharing == "mps":
            return _Grant(
                AllocationKind.FRACTION, None, n / replicas, None if mem is None else mem * n / replicas
            )
        return _Grant(AllocationKind.TIMESLICE, None, n / replicas, None)
    base = r[len("nvidia.com/") :].removesuffix(".shared")
    return _mig_grant(base[len("mig-") :], n, node, notes, shared=r.endswith(".shared"))


def _mig_grant(
    profile: str, n: Fraction, node: NodeInfo | None, notes: list[str], *, shared: bool = False
) -> _Grant | None:
    share = node.mig_share(profile) if node is not None else None
    if share is None:
        share = mig_fraction(profile, None)
    if share is None:
        notes.append(f"nvidia.com/mig-{profile}: not a MIG profile name; ignored")
        return None
    replicas = node.resource_replicas.get(f"mig-{profile}", 1) if node is not None else 1
    mem = node.mig_memory(profile) if node is not None else None
    if replicas > 1 and (shared or not (node is not None and node.renamed)):
        return _Grant(AllocationKind.TIMESLICE, profile, n * share / replicas, None)
    return _Grant(AllocationKind.MIG, profile, n * share, None if mem is None else mem * n)


def _runai_grant(annotations: Mapping[str, str], node: NodeInfo | None, notes: list[str]) -> _Grant | None:
    """A Run:ai ``gpu-fraction`` (share of a GPU) or ``gpu-memory`` (MiB) on ``gpu-fraction-num-devices``."""
    devices = Fraction(1)
    if GPU_FRACTION_DEVICES in annotations:
        try:
            devices = parse_quantity(annotations[GPU_FRACTION_DEVICES])
        except QuantityError:
            devices = Fraction(0)
        if devices < 1 or devices.denominator != 1:
            notes.append(
                f"annotation {GPU_FRACTION_DEVICES}={annotations[GPU_FRACTION_DEVICES]!r} is not a "
                "positive integer; fraction ignored"
            )
            return None
    mem = node.gpu_memory_mib if node else None
    if GPU_FRACTION in annotations:
        raw = annotations[GPU_FRACTION]
        try:
            f = Fraction(raw.strip())
        except (ValueError, ZeroDivisionError):
            f = Fraction(-1)
        if not 0 < f <= 1:
            notes.append(f"annotation {GPU_FRACTION}={raw!r} is not a number in (0, 1]; ignored")
            return None
        return _Grant(
            AllocationKind.FRACTION, None, f * devices, None if mem is None else float(f * devices) * mem
        )
    raw = annotations[GPU_MEMORY]
    if not raw.strip().isdigit() or int(raw) <= 0:
        notes.append(f"annotation {GPU_MEMORY}={raw!r} is not a positive MiB count; ignored")
        return None
    if mem is None:
        notes.append(
            f"annotation {GPU_MEMORY}={raw!r}: the node's GPU memory is unknown, so the fraction is; ignored"
        )
        return None
    mib = int(raw)
    if mib > mem:
        notes.append(f"annotation {GPU_MEMORY}={raw!r} is more than the GPU's {mem:g} MiB; ignored")
        return None
    return _Grant(
        AllocationKind.FRACTION, None, Fraction(mib) / Fraction(mem) * devices, mib * float(devices)
    )
