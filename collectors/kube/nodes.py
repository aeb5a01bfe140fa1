"""GPU nodes from ``kubectl get nodes -o json``: physical GPUs, sharing, MIG layout, pool and cost class.

Labels read (NVIDIA GPU Feature Discovery, ``docs/gfd_labels.md`` of NVIDIA/k8s-device-plugin, and the GPU
Operator's GPU-sharing pages): ``nvidia.com/gpu.product`` (``-SHARED`` appended under sharing,
``-MIG-<profile>`` under the MIG ``single`` strategy), ``nvidia.com/gpu.count`` (physical GPUs, except
under MIG ``single`` where it counts MIG devices), ``nvidia.com/gpu.memory`` (MiB per GPU, per MIG device
under ``single``), ``nvidia.com/gpu.replicas`` and ``nvidia.com/gpu.sharing-strategy`` (``none``,
``time-slicing``, ``mps``), ``nvidia.com/<resource>.replicas`` for a renamed or MIG resource,
``nvidia.com/mig.strategy`` and ``nvidia.com/mig-<profile>.memory``.

Physical GPU count: the ``gpu.count`` label, because capacity ``nvidia.com/gpu`` is overloaded (replicas
under time-slicing, only the non-MIG GPUs under the ``mixed`` strategy); without the label it is derived
from capacity (``nvidia.com/gpu`` / replicas + ``nvidia.com/gpu.shared`` / replicas + the GPUs the MIG
instances fill). Under ``single`` it is the MIG device count / instances per GPU of that profile.
Pool: the first of ``POOL_LABELS``; cost class: ``fleetlens.io/cost-class``, else the instance type.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from types import MappingProxyType
from typing import Any

import polars as pl

from analytics.errors import ItemError, Problem
from analytics.schema import INVENTORY, conform
from collectors.kube.items import Item, of_kind, read_items, section, skipped, str_map, utc
from collectors.kube.mig_profiles import MigGpu, mig_fraction, mig_gpu_for
from collectors.kube.quantity import QuantityError, milli_value, parse_quantity

GPU = "nvidia.com/gpu"
GPU_SHARED = "nvidia.com/gpu.shared"
MIG_PREFIX = "nvidia.com/mig-"
PRODUCT = "nvidia.com/gpu.product"
COUNT = "nvidia.com/gpu.count"
MEMORY = "nvidia.com/gpu.memory"
REPLICAS = "nvidia.com/gpu.replicas"
SHARING = "nvidia.com/gpu.sharing-strategy"
MIG_STRATEGY = "nvidia.com/mig.strategy"
COST_CLASS = "fleetlens.io/cost-class"
INSTANCE_TYPE = "node.kubernetes.io/instance-type"
# Node pool labels in order of preference: Karpenter, GKE, EKS managed node groups, AKS (new and old),
# then the well-known instance type as the coarsest grouping.
POOL_LABELS = (
    "karpenter.sh/nodepool",
    "cloud.google.com/gke-nodepool",
    "eks.amazonaws.com/nodegroup",
    "kubernetes.azure.com/agentpool",
    "agentpool",
    INSTANCE_TYPE,
)
_MIG_SINGLE_PRODUCT = re.compile(r"^(?P<gpu>.+)-MIG-(?P<profile>\d+g\.\d+gb(?:\+me)?)$")


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """What allocation and inventory need to know about one node."""

    name: str
    gpu_model: str | None = None
    gpu_count: int = 0  # physical GPUs
    gpu_memory_mib: float | None = None  # per physical GPU
    cpu_milli: int | None = None
    pool: str | None = None
    cost_class: str | None = None
    replicas: int = 1  # time-slicing / MPS replicas of each nvidia.com/gpu (1: not shared)
    sharing: str | None = None  # "time-slicing" | "mps" | None
    renamed: bool = False  # shared replicas advertised as nvidia.com/gpu.shared (renameByDefault)
    mig_single: str | None = None  # the profile every GPU is cut into under the MIG "single" strategy
    mig_capacity: Mapping[str, int] = field(default_factory=dict)
    mig_memory_mib: Mapping[str, float] = field(default_factory=dict)
    resource_replicas: Mapping[str, int] = field(default_factory=dict)  # "mig-1g.10gb" -> replicas
    mig: MigGpu | None = None

    def __post_init__(self) -> None:
        for name in ("mig_capacity", "mig_memory_mib", "resource_replicas"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    @property
    def mig_layout(self) -> str | None:
        """``"1g.10gb:2,2g.20gb:1,3g.40gb:1"`` (profiles sorted by name), None without MIG."""
        if not self.mig_capacity:
            return None
        return ",".join(f"{p}:{n}" for p, n in sorted(self.mig_capacity.items()))

    def mig_share(self, profile: str) -> Fraction | None:
        """Compute share of one ``profile`` instance on this node's GPU model."""
        return mig_fraction(profile, self.mig)

    def mig_memory(self, profile: str) -> float | None:
        """MiB of one ``profile`` instance: its GFD label, else its table share of the GPU's memory."""
        if profile in self.mig_memory_mib:
            return self.mig_memory_mib[profile]
        p = self.mig.profile(profile) if self.mig else None
        if p is None or self.gpu_memory_mib is None or self.mig is None:
            return None
        return self.gpu_memory_mib * p.memory_slices / self.mig.memory_slices


@dataclass(frozen=True, slots=True)
class NodeIndex:
    """The nodes of one list and what could not be read."""

    source: str
    nodes: Mapping[str, NodeInfo]
    issues: tuple[Problem, ...] = ()

    def get(self, name: str | None) -> NodeInfo | None:
        """The node called ``name``, if listed."""
        return self.nodes.get(name) if name else None


def parse_nodes(doc: Mapping[str, Any] | str, *, source: str) -> NodeIndex:
    """The Node items of a list (other kinds ignored); malformed nodes reported, a bad document raises."""
    items, issues = read_items(doc, source=source)
    index = nodes_from_items(items, source=source)
    return NodeIndex(source, index.nodes, (*issues, *index.issues))


def nodes_from_items(items: list[Item], *, source: str) -> NodeIndex:
    """The Node items among already-read list items."""
    issues: list[Problem] = []
    nodes: dict[str, NodeInfo] = {}
    for it in of_kind(items, "Node"):
        try:
            node, notes = _parse_node(it.obj)
        except ItemError as exc:
            issues.append(skipped(source, it.index, it.name, exc))
            continue
        if node.name in nodes:
            issues.append(Problem(source, "duplicate node name; the later item is kept", item=it.index, name=it.name))
        nodes[node.name] = node
        issues.extend(Problem(source, n, item=it.index, name=it.name) for n in notes)
    return NodeIndex(source, MappingProxyType(nodes), tuple(issues))


def inventory_frame(index: NodeIndex, *, ts: datetime, cluster: str) -> pl.DataFrame:
    """INVENTORY rows, one per node (CPU-only nodes kept with gpu_count 0)."""
    at = utc(ts)
    rows = [
        {
            "ts": at,
            "cluster": cluster,
            "node": n.name,
            "pool": n.pool,
            "gpu_model": n.gpu_model,
            "gpu_count": n.gpu_count,
            "gpu_memory_bytes": None if n.gpu_memory_mib is None else n.gpu_memory_mib * 2**20,
            "cpu_milli": n.cpu_milli,
            "mig_layout": n.mig_layout,
            "cost_class": n.cost_class,
        }
        for n in sorted(index.nodes.values(), key=lambda n: n.name)
    ]
    return conform(pl.DataFrame(rows, schema=INVENTORY.schema), INVENTORY)


def parse_inventory(doc: Mapping[str, Any] | str, *, source: str, ts: datetime, cluster: str) -> pl.DataFrame:
    """INVENTORY from a node list (or a pods+nodes List); use ``parse_nodes`` to see what was skipped."""
    return inventory_frame(parse_nodes(doc, source=source), ts=ts, cluster=cluster)


def _count(value: object, what: str, notes: list[str]) -> int | None:
    """A non-negative integer from a quantity or an integer label; noted and None when it is not one."""
    if value is None:
        return None
    try:
        q = parse_quantity(value) if isinstance(value, (str, int)) else None
    except QuantityError:
        q = None
    if q is None or q < 0 or q.denominator != 1:
        notes.append(f"{what} {value!r} is not a whole number; ignored")
        return None
    return int(q)


def _parse_node(obj: Mapping[str, Any]) -> tuple[NodeInfo, list[str]]:
    meta, status = section(obj, "metadata"), section(obj, "status")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise ItemError("metadata.name is a required string")
    labels = str_map(meta.get("labels"), "metadata.labels")
    capacity, allocatable = section(status, "capacity"), section(status, "allocatable")
    notes: list[str] = []
    cpu = allocatable.get("cpu", capacity.get("cpu"))
    cpu_milli = None
    if cpu is not None:
        try:
            cpu_milli = milli_value(parse_quantity(cpu))
        except QuantityError as exc:
            notes.append(f"cpu: {exc}; ignored")
    product = labels.get(PRODUCT) or None
    model, single = product, None
    if model and model.endswith("-SHARED"):
        model = model[: -len("-SHARED")]
    if model and (m := _MIG_SINGLE_PRODUCT.match(model)):
        model, single = m["gpu"], m["profile"]
    memory = _count(labels.get(MEMORY), f"label {MEMORY}", notes)
    replicas = _count(labels.get(REPLICAS), f"label {REPLICAS}", notes) or 1
    sharing = labels.get(SHARING)
    sharing = None if sharing in (None, "", "none") else sharing
    if replicas > 1 and sharing is None:
        sharing = "time-slicing"  # GFD before the sharing-strategy label only set replicas
    mig = mig_gpu_for(model, memory)
    mig_capacity: dict[str, int] = {}
    for res, value in capacity.items():
        if res.startswith(MIG_PREFIX) and not res.endswith(".shared"):
            n = _count(value, f"capacity {res}", notes)
            if n:
                mig_capacity[res[len(MIG_PREFIX) :]] = n
    mig_memory = {
        k[len(MIG_PREFIX) : -len(".memory")]: float(v)
        for k, v in labels.items()
        if k.startswith(MIG_PREFIX) and k.endswith(".memory") and v.isdigit()
    }
    resource_replicas = {
        k[len("nvidia.com/") : -len(".replicas")]: int(v)
        for k, v in labels.items()
        if k.startswith(MIG_PREFIX) and k.endswith(".replicas") and v.isdigit() and int(v) > 0
    }
    cap_gpu = _count(capacity.get(GPU), f"capacity {GPU}", notes) or 0
    cap_shared = _count(capacity.get(GPU_SHARED), f"capacity {GPU_SHARED}", notes) or 0
    label_count = _count(labels.get(COUNT), f"label {COUNT}", notes)
    single_mode = single is not None and labels.get(MIG_STRATEGY, "single") == "single"
    if single_mode and single is not None:
        mig_capacity = {single: label_count if label_count is not None else cap_gpu}
        gpu_count, memory = _single_strategy(single, mig, mig_capacity[single], memory, notes)
    else:
        derived = _from_capacity(cap_gpu, cap_shared, replicas, mig_capacity, mig)
        if label_count is not None:
            gpu_count = label_count
            if derived > label_count:
                notes.append(
                    f"capacity implies {derived} GPUs but label {COUNT} says {label_count}; kept the label"
                )
        else:
            gpu_count = derived
    return NodeInfo(
        name=name,
        gpu_model=model,
        gpu_count=gpu_count,
        gpu_memory_mib=float(memory) if memory is not None else None,
        cpu_milli=cpu_milli,
        pool=next((labels[k] for k in POOL_LABELS if labels.get(k)), None),
        cost_class=labels.get(COST_CLASS) or labels.get(INSTANCE_TYPE) or None,
        replicas=replicas,
        sharing=sharing,
        renamed=cap_shared > 0,
        mig_single=single if single_mode else None,
        mig_capacity=mig_capacity,
        mig_memory_mib=mig_memory,
        resource_replicas=resource_replicas,
        mig=mig,
    ), notes


def _from_capacity(
    cap_gpu: int, cap_shared: int, replicas: int, mig_capacity: Mapping[str, int], mig: MigGpu | None
) -> int:
    """Physical GPUs implied by capacity alone (used without the gpu.count label)."""
    whole = cap_gpu if cap_shared else math.ceil(cap_gpu / replicas)
    shared = math.ceil(cap_shared / replicas)
    filled = sum((mig_fraction(p, mig) or Fraction(0)) * n for p, n in mig_capacity.items())
    return whole + shared + math.ceil(filled)


def _single_strategy(
    profile: str, mig: MigGpu | None, devices: int, memory: int | None, notes: list[str]
) -> tuple[int, float | None]:
    """Physical GPUs and per-GPU memory under MIG ``single``, where the labels describe MIG devices."""
    p = mig.profile(profile) if mig else None
    per_gpu = p.max_instances if p else None
    if per_gpu is None:
        share = mig_fraction(profile, None)
        per_gpu = int(1 / share) if share else 1
    notes.append(
        f"MIG single strategy ({profile}): physical GPUs estimated as {devices} devices / {per_gpu} per GPU"
    )
    full = None
    if memory is not None and p is not None and mig is not None:
        full = memory * mig.memory_slices / p.memory_slices
    return math.ceil(devices / per_gpu), full
