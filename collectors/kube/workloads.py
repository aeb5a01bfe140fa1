"""Which workload, model and version each pod belongs to: the index deployment rows are resolved through."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from collectors.kube.pod_model import APP_NAME, Pod, PodIndex


@dataclass(frozen=True, slots=True)
class PodVersion:
    """Which workload and version one pod belongs to."""

    workload: str
    version: str
    revision: str | None


@dataclass(frozen=True, slots=True)
class WorkloadIndex:
    """Model and versions of every workload, built from the pod list and the engines' model names."""

    models: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (namespace, workload) -> model
    versions: Mapping[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)  # -> hashes seen
    revisions: Mapping[tuple[str, str, str], str] = field(default_factory=dict)  # (ns, wl, revision) -> hash
    pods: Mapping[tuple[str, str], PodVersion] = field(default_factory=dict)  # (namespace, pod) -> version

    def __post_init__(self) -> None:
        for name in ("models", "versions", "revisions", "pods"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    def model_of(self, namespace: str, *workloads: str) -> str | None:
        """The model served by the first of ``workloads`` the index knows."""
        return next((self.models[(namespace, w)] for w in workloads if (namespace, w) in self.models), None)

    def hash_of(self, namespace: str, workload: str, revision: str) -> str | None:
        """The pod template hash of one revision of a workload."""
        return self.revisions.get((namespace, workload, revision))

    def only_version(self, namespace: str, workload: str) -> str | None:
        """The workload's version when its pods run exactly one, else None (never a guess)."""
        seen = self.versions.get((namespace, workload), ())
        return seen[0] if len(seen) == 1 else None


def workload_of(pod: Pod) -> str | None:
    """The workload (Rollout / Deployment) a pod belongs to: its ReplicaSet owner minus the hash suffix."""
    owner, version = pod.controller, pod.model_version
    if owner is not None and owner.kind == "ReplicaSet" and version and owner.name.endswith("-" + version):
        return owner.name[: -len(version) - 1]
    if owner is not None and owner.kind != "ReplicaSet":
        return owner.name
    return pod.labels.get(APP_NAME) or (owner.name if owner is not None else None)


def build_workload_index(pods: PodIndex, models: Mapping[tuple[str, str], str]) -> WorkloadIndex:
    """Index pods that carry a template hash; ``models`` maps (namespace, pod) to the model its engine reports."""
    wl_models: dict[tuple[str, str], Counter[str]] = {}
    fallback: dict[tuple[str, str], str] = {}
    versions: dict[tuple[str, str], list[str]] = {}
    revisions: dict[tuple[str, str, str], str] = {}
    by_pod: dict[tuple[str, str], PodVersion] = {}
    for pod in pods.pods:
        version, workload = pod.model_version, workload_of(pod)
        if not version or not workload:
            continue  # DaemonSet pods (dcgm-exporter) and bare pods carry no version
        key = (pod.namespace, workload)
        by_pod[(pod.namespace, pod.name)] = PodVersion(workload, version, pod.revision)
        if version not in versions.setdefault(key, []):
            versions[key].append(version)
        if pod.revision:
            revisions[(pod.namespace, workload, pod.revision)] = version
        model = models.get((pod.namespace, pod.name))
        if model:
            wl_models.setdefault(key, Counter())[model] += 1
        elif pod.labels.get(APP_NAME):
            fallback.setdefault(key, pod.labels[APP_NAME])
    resolved = {**fallback, **{k: c.most_common(1)[0][0] for k, c in wl_models.items()}}
    return WorkloadIndex(resolved, {k: tuple(sorted(v)) for k, v in versions.items()}, revisions, by_pod)
