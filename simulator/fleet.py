"""The fleet's topology: nodes, GPUs, MIG instances and pods, derived deterministically from a FleetSpec."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from enum import StrEnum

from simulator.config import (
    MIG_MEMORY_MIB,
    PRODUCTS,
    EngineKind,
    FleetSpec,
    GpuProduct,
    ModelSpec,
    PlacementSpec,
)

DRIVER_VERSION = "550.90.07"
DCGM_NAMESPACE = "gpu-operator"


class Variant(StrEnum):
    """A pod's role in a rollout."""

    BASELINE = "baseline"
    CANARY = "canary"


def stable_hex(*parts: object, n: int = 32) -> str:
    """A deterministic hex digest of ``parts`` (never Python's salted hash())."""
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:n]


def stable_uuid(*parts: object) -> str:
    """A deterministic UUID (version 4 layout) from ``parts``."""
    return str(uuid.UUID(hex=stable_hex(*parts), version=4))


def template_hash(seed: int, model: str, revision: int) -> str:
    """A pod-template-hash-like 10-character string (Kubernetes' safe alphabet)."""
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    h = int(stable_hex(seed, "tmpl", model, revision, n=16), 16)
    out = []
    for _ in range(10):
        h, r = divmod(h, len(alphabet))
        out.append(alphabet[r])
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Gpu:
    """One physical GPU on a node."""

    node: str
    index: int
    uuid: str
    pci_bus_id: str
    product: GpuProduct
    mig_profiles: tuple[str, ...]  # empty when MIG is off

    @property
    def key(self) -> tuple[str, int]:
        """(node, index)."""
        return (self.node, self.index)


@dataclass(frozen=True, slots=True)
class Grant:
    """A pod's share of one GPU: whole, one MIG instance (GPU_I_ID) or a fraction."""

    gpu: Gpu
    mig_instance: int | None = None  # position in gpu.mig_profiles
    fraction: float | None = None

    @property
    def gpu_instance_id(self) -> int | None:
        """The DCGM GPU_I_ID of the MIG instance (the driver numbers small slices high; we use 1, 2, ...)."""
        return None if self.mig_instance is None else mig_instance_id(self.gpu, self.mig_instance)

    @property
    def memory_mib(self) -> int:
        """Framebuffer this grant owns."""
        if self.mig_instance is not None:
            return MIG_MEMORY_MIB[self.gpu.mig_profiles[self.mig_instance]]
        return int(self.gpu.product.memory_mib * (self.fraction or 1.0))


def mig_instance_id(gpu: Gpu, position: int) -> int:
    """GPU_I_ID for the instance at ``position`` of the GPU's layout (A100/H100 use ids like 1, 2, 9, 13)."""
    ids = {"7g.80gb": 0, "4g.40gb": 1, "3g.40gb": 2, "2g.20gb": 3, "1g.10gb": 7}
    used: list[int] = []
    for p in gpu.mig_profiles[: position + 1]:
        i = ids[p]
        while i in used:
            i += 1
        used.append(i)
    return used[-1]


@dataclass(frozen=True, slots=True)
class Pod:
    """One pod: an engine replica or a dcgm-exporter."""

    name: str
    namespace: str
    uid: str
    node: str
    app: str  # app.kubernetes.io/name
    container: str
    engine: EngineKind | None  # None for dcgm-exporter
    model: ModelSpec | None
    variant: Variant
    revision: int
    template_hash: str
    grants: tuple[Grant, ...]
    start_s: float  # creation offset from the simulation start
    target_id: str

    @property
    def rollout(self) -> str:
        """The Argo Rollout that owns the pod."""
        return self.app


@dataclass(frozen=True, slots=True)
class Fleet:
    """Every node's GPUs and every pod, in a stable order."""

    gpus: tuple[Gpu, ...]
    engine_pods: tuple[Pod, ...]
    exporter_pods: tuple[Pod, ...]

    def gpu(self, node: str, index: int) -> Gpu:
        """The GPU at (node, index)."""
        return next(g for g in self.gpus if g.node == node and g.index == index)

    @property
    def pods(self) -> tuple[Pod, ...]:
        """Exporters first, then engine pods."""
        return self.exporter_pods + self.engine_pods


def app_name(model: str) -> str:
    """A DNS-safe workload name for a model."""
    return model.replace(".", "-").replace("/", "-").lower()


def _container(engine: EngineKind) -> str:
    return "triton" if engine is EngineKind.TRITON else "vllm"


def build_fleet(spec: FleetSpec) -> Fleet:
    """Derive GPUs (UUIDs, PCI ids) and pods (names, hashes, grants) from the spec."""
    gpus = []
    for n in spec.nodes:
        for i in range(n.gpu_count):
            u = stable_uuid(spec.seed, "gpu", n.name, i)
            gpus.append(
                Gpu(
                    n.name,
                    i,
                    f"GPU-{u}",
                    f"00000000:{0x18 + 0x11 * i:02X}:00.0",
                    PRODUCTS[n.gpu],
                    n.mig.get(i, ()),
                )
            )
    fleet_gpus = tuple(gpus)
    lookup = {g.key: g for g in fleet_gpus}

    def grants(p: PlacementSpec) -> tuple[Grant, ...]:
        return tuple(Grant(lookup[(p.node, g)], p.mig_instance, p.fraction) for g in p.gpus)

    def make(m: ModelSpec, p: PlacementSpec, variant: Variant, revision: int, start_s: float) -> Pod:
        app = app_name(m.name)
        h = template_hash(spec.seed, m.name, revision)
        suffix = stable_hex(spec.seed, "pod", m.name, revision, p.node, p.gpus, p.mig_instance, n=5)
        name = f"{app}-{h}-{suffix}"
        return Pod(
            name,
            m.tenant,
            stable_uuid(spec.seed, "poduid", name),
            p.node,
            app,
            _container(m.engine),
            m.engine,
            m,
            variant,
            revision,
            h,
            grants(p),
            start_s,
            f"{m.tenant}/{name}",
        )

    engine_pods = [make(m, p, Variant.BASELINE, 1, 0.0) for m in spec.models for p in m.replicas]
    if spec.canary is not None:
        m = next(x for x in spec.models if x.name == spec.canary.model)
        engine_pods += [
            make(m, p, Variant.CANARY, spec.canary.revision, spec.canary.start_s)
            for p in spec.canary.replicas
        ]
    exporters = []
    for n in spec.nodes:
        if n.gpu_count == 0:
            continue
        name = f"nvidia-dcgm-exporter-{stable_hex(spec.seed, 'dcgm', n.name, n=5)}"
        exporters.append(
            Pod(
                name,
                DCGM_NAMESPACE,
                stable_uuid(spec.seed, "poduid", name),
                n.name,
                "nvidia-dcgm-exporter",
                "nvidia-dcgm-exporter",
                None,
                None,
                Variant.BASELINE,
                1,
                template_hash(spec.seed, "dcgm", 1),
                (),
                0.0,
                f"dcgm/{n.name}",
            )
        )
    return Fleet(fleet_gpus, tuple(engine_pods), tuple(exporters))
