"""A pod's identity as fleetlens keeps it: who its metrics belong to, and the pod list it came from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from analytics.errors import Problem

ROLLOUT_HASH = "rollouts-pod-template-hash"
TEMPLATE_HASH = "pod-template-hash"
ROLLOUT_REVISION = "rollout.argoproj.io/revision"
APP_NAME = "app.kubernetes.io/name"
# Labels that tie the pods of one multi-node serving group together (the GPUs sit on workers, the
# metrics on the leader): LeaderWorkerSet and KubeRay.
GROUP_LABELS = (
    "leaderworkerset.sigs.k8s.io/group-key",
    "leaderworkerset.sigs.k8s.io/name",
    "ray.io/cluster",
)


@dataclass(frozen=True, slots=True)
class ContainerPort:
    """A port a container declares (``containerPort``, and ``hostPort`` under hostNetwork)."""

    container: str
    port: int
    host_port: int | None = None
    name: str | None = None
    protocol: str = "TCP"


@dataclass(frozen=True, slots=True)
class OwnerRef:
    """One ``metadata.ownerReferences`` entry."""

    kind: str
    name: str
    uid: str | None = None
    controller: bool = False


@dataclass(frozen=True, slots=True)
class Pod:
    """The fields of a pod that identify who its metrics belong to."""

    namespace: str
    name: str
    node: str | None
    pod_ips: tuple[str, ...]
    containers: tuple[str, ...]
    ports: tuple[ContainerPort, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    owners: tuple[OwnerRef, ...] = ()
    phase: str | None = None
    uid: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))
        object.__setattr__(self, "annotations", MappingProxyType(dict(self.annotations)))

    @property
    def model_version(self) -> str | None:
        """The Argo Rollouts template hash, else the ReplicaSet template hash."""
        return self.labels.get(ROLLOUT_HASH) or self.labels.get(TEMPLATE_HASH) or None

    @property
    def revision(self) -> str | None:
        """The Argo Rollouts revision annotation, if any."""
        return self.annotations.get(ROLLOUT_REVISION) or None

    @property
    def group(self) -> str | None:
        """The multi-node serving group (LWS group key, LWS name or Ray cluster), if any."""
        return next((self.labels[k] for k in GROUP_LABELS if self.labels.get(k)), None)

    @property
    def controller(self) -> OwnerRef | None:
        """The controlling owner (ReplicaSet, StatefulSet, LeaderWorkerSet, ...), if any."""
        return next((o for o in self.owners if o.controller), None)


@dataclass(frozen=True, slots=True)
class PodIndex:
    """The pods of one pod list and what could not be read."""

    source: str
    pods: tuple[Pod, ...]
    issues: tuple[Problem, ...] = ()
