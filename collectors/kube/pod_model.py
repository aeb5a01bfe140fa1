"""A pod's identity as fleetlens keeps it: who its metrics belong to, and the pod list it came from."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from analytics.errors import Problem

ROLLOUT_HASH = "rollouts-pod-template-hash"
TEMPLATE_HASH = "pod-template-hash"
# The alphabet of Kubernetes' rand.SafeEncodeString and rand.String (k8s.io/apimachinery/pkg/util/rand):
# no vowels and no 0, 1, 3, so generated names never spell words. Template hashes are written in it.
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# ``<workload>-<pod-template-hash>-<suffix>``: the name a ReplicaSet (of a Deployment or an Argo
# Rollout) gives its pods. The hash is the template hash encoded in SAFE_ALPHABET (8-10 characters for
# all but 0.2% of hashes); the suffix is generateName's 5 random characters. Group 1 is the hash.
POD_NAME_HASH_PATTERN = rf"^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?-([{SAFE_ALPHABET}]{{8,10}})-[a-z0-9]{{5}}$"
_POD_NAME_HASH = re.compile(POD_NAME_HASH_PATTERN)
ROLLOUT_REVISION = "rollout.argoproj.io/revision"
APP_NAME = "app.kubernetes.io/name"
# Labels that tie the pods of one multi-node serving group together (the GPUs sit on workers, the
# metrics on the leader): LeaderWorkerSet and KubeRay.
GROUP_LABELS = (
    "leaderworkerset.sigs.k8s.io/group-key",
    "leaderworkerset.sigs.k8s.io/name",
    "ray.io/cluster",
)


def template_hash_from_name(pod: str | None) -> str | None:
    """The pod-template hash in a ReplicaSet pod's name ``<workload>-<hash>-<suffix>``, else None.

    Only a Deployment's or Rollout's pod has one: a StatefulSet pod (``<name>-<ordinal>``), a
    DaemonSet or Job pod (``<name>-<suffix>``) gives None, never a guess. A middle segment of digits
    only is refused too: that is a CronJob's Job (``<cronjob>-<minutes since epoch>-<suffix>``), and
    a real template hash is all digits about 1% of the time (a missed version stays null).
    """
    found = _POD_NAME_HASH.match(pod) if pod else None
    if found is None or found.group(1).isdigit():
        return None
    return found.group(1)


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
