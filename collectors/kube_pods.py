"""Pod identity from ``kubectl get pods -A -o json``, and attribution of scrape targets to pods."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from analytics.errors import ConfigError, InputError, NameValidationError
from analytics.names import validate_tenant
from collectors.targets import Target, host_port, ip_of

log = logging.getLogger(__name__)

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
_KEPT_LABELS = (ROLLOUT_HASH, TEMPLATE_HASH, APP_NAME, *GROUP_LABELS,
                "leaderworkerset.sigs.k8s.io/group-index", "leaderworkerset.sigs.k8s.io/worker-index",
                "ray.io/node-type", "ray.io/group")
# Pods in these phases released their IP: a new pod may already hold it.
_DONE_PHASES = frozenset({"Succeeded", "Failed"})


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
class PodIssue:
    """A pod list item that was skipped or partly read."""

    source: str
    index: int
    name: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.source}: items[{self.index}]{f' ({self.name})' if self.name else ''}: {self.message}"


@dataclass(frozen=True, slots=True)
class PodIndex:
    """The pods of one pod list and what could not be read."""

    source: str
    pods: tuple[Pod, ...]
    issues: tuple[PodIssue, ...] = ()


class _BadItem(Exception):
    """An item of the list is unusable (reported, the rest kept)."""


def parse_pod_list(doc: Mapping[str, Any] | str, *, source: str) -> PodIndex:
    """Read a ``List``/``PodList`` of pods; malformed items are reported and skipped, a bad document raises."""
    if isinstance(doc, str):
        try:
            doc = json.loads(doc)
        except json.JSONDecodeError as exc:
            raise InputError(source, exc.lineno, f"not JSON: {exc.msg}") from exc
    if not isinstance(doc, Mapping):
        raise InputError(source, None, f"expected a JSON object (a List or PodList), got {type(doc).__name__}")
    kind = doc.get("kind")
    if kind not in ("List", "PodList"):
        raise InputError(source, None, f"expected kind List or PodList, got {kind!r}")
    items = doc.get("items")
    if items is None:
        items = []  # kubectl prints `"items": []` but an API server may omit an empty list
    if not isinstance(items, list):
        raise InputError(source, None, f"'items' must be a list, got {type(items).__name__}")
    pods: list[Pod] = []
    issues: list[PodIssue] = []
    for i, item in enumerate(items):
        name = _item_name(item)
        try:
            pod, notes = _parse_pod(item)
        except _BadItem as exc:
            issues.append(PodIssue(source, i, name, f"skipped: {exc}"))
            continue
        pods.append(pod)
        issues.extend(PodIssue(source, i, name, note) for note in notes)
    return PodIndex(source, tuple(pods), tuple(issues))


def _item_name(item: object) -> str | None:
    meta = item.get("metadata") if isinstance(item, Mapping) else None
    if not isinstance(meta, Mapping):
        return None
    ns, name = meta.get("namespace"), meta.get("name")
    return f"{ns}/{name}" if isinstance(ns, str) and isinstance(name, str) else None


def _str_map(value: object, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise _BadItem(f"{what} must be an object of strings")
    return dict(value)


def _parse_pod(item: object) -> tuple[Pod, list[str]]:
    """One item -> Pod and notes about fields it ignored; _BadItem if it is not a usable pod."""
    if not isinstance(item, Mapping):
        raise _BadItem(f"not an object ({type(item).__name__})")
    if item.get("kind", "Pod") != "Pod":
        raise _BadItem(f"kind {item.get('kind')!r} is not Pod")
    meta, spec, status = (item.get(k) or {} for k in ("metadata", "spec", "status"))
    if not all(isinstance(x, Mapping) for x in (meta, spec, status)):
        raise _BadItem("metadata, spec and status must be objects")
    ns, name = meta.get("namespace"), meta.get("name")
    if not isinstance(ns, str) or not ns or not isinstance(name, str) or not name:
        raise _BadItem("metadata.namespace and metadata.name are required strings")
    notes: list[str] = []
    labels = _str_map(meta.get("labels"), "metadata.labels")
    annotations = _str_map(meta.get("annotations"), "metadata.annotations")
    kept = {k: v for k, v in labels.items() if k in _KEPT_LABELS}
    containers, ports = _parse_containers(spec.get("containers"))
    ips = _parse_ips(status, notes)
    owners = _parse_owners(meta.get("ownerReferences"))
    node = spec.get("nodeName")
    phase = status.get("phase")
    uid = meta.get("uid")
    pod = Pod(
        namespace=ns, name=name, node=node if isinstance(node, str) and node else None,
        pod_ips=ips, containers=containers, ports=ports, labels=kept,
        annotations={k: v for k, v in annotations.items() if k == ROLLOUT_REVISION},
        owners=owners, phase=phase if isinstance(phase, str) else None,
        uid=uid if isinstance(uid, str) else None,
    )
    return pod, notes


def _parse_containers(value: object) -> tuple[tuple[str, ...], tuple[ContainerPort, ...]]:
    if value is None:
        return (), ()
    if not isinstance(value, list):
        raise _BadItem("spec.containers must be a list")
    names: list[str] = []
    ports: list[ContainerPort] = []
    for c in value:
        if not isinstance(c, Mapping) or not isinstance(c.get("name"), str):
            raise _BadItem("every spec.containers entry needs a string name")
        names.append(c["name"])
        declared = c.get("ports") or []
        if not isinstance(declared, list):
            raise _BadItem(f"container {c['name']!r}: ports must be a list")
        for p in declared:
            port = p.get("containerPort") if isinstance(p, Mapping) else None
            if not isinstance(port, int) or isinstance(port, bool):
                raise _BadItem(f"container {c['name']!r}: containerPort must be an integer, got {port!r}")
            hp = p.get("hostPort")
            pname = p.get("name")
            ports.append(ContainerPort(
                container=c["name"], port=port,
                host_port=hp if isinstance(hp, int) and not isinstance(hp, bool) and hp > 0 else None,
                name=pname if isinstance(pname, str) else None,
                protocol=p.get("protocol") if isinstance(p.get("protocol"), str) else "TCP",
            ))
    return tuple(names), tuple(ports)


def _parse_ips(status: Mapping[str, Any], notes: list[str]) -> tuple[str, ...]:
    """``status.podIPs`` (dual-stack) and ``status.podIP``, canonical, bad literals noted and dropped."""
    raw: list[object] = [status.get("podIP")]
    listed = status.get("podIPs") or []
    if not isinstance(listed, list):
        raise _BadItem("status.podIPs must be a list")
    for entry in listed:
        raw.append(entry.get("ip") if isinstance(entry, Mapping) else entry)
    out: list[str] = []
    for value in raw:
        if value is None or value == "":
            continue
        ip = ip_of(value) if isinstance(value, str) else None
        if ip is None:
            notes.append(f"pod IP {value!r} is not an IP address; ignored")
        elif ip not in out:
            out.append(ip)
    return tuple(out)


def _parse_owners(value: object) -> tuple[OwnerRef, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _BadItem("metadata.ownerReferences must be a list")
    owners = []
    for o in value:
        if not isinstance(o, Mapping) or not isinstance(o.get("kind"), str) or not isinstance(o.get("name"), str):
            raise _BadItem("every ownerReferences entry needs string kind and name")
        owners.append(OwnerRef(o["kind"], o["name"], o.get("uid") if isinstance(o.get("uid"), str) else None,
                               o.get("controller") is True))
    return tuple(owners)


class IssueKind(StrEnum):
    """Why a target was not (fully) attributed."""

    UNMATCHED = "unmatched"
    AMBIGUOUS = "ambiguous"
    INVALID_TENANT = "invalid_tenant"
    BAD_URL = "bad_url"


@dataclass(frozen=True, slots=True)
class AttributionIssue:
    """A target attribution could not complete; the target keeps its configured labels."""

    url: str
    kind: IssueKind
    message: str

    def __str__(self) -> str:
        return f"{self.url}: {self.kind}: {self.message}"


@dataclass(frozen=True, slots=True)
class Attribution:
    """Targets with discovered labels added, and what could not be attributed."""

    targets: list[Target]
    issues: tuple[AttributionIssue, ...]


def attribute_report(targets: Iterable[Target], pods: PodIndex | Sequence[Pod]) -> Attribution:
    """Add namespace/pod/node/container/model_version to targets whose host:port is a pod's IP and port."""
    pod_list = pods.pods if isinstance(pods, PodIndex) else tuple(pods)
    by_ip: dict[str, list[Pod]] = {}
    for pod in pod_list:
        if pod.phase in _DONE_PHASES:
            continue
        for ip in pod.pod_ips:
            by_ip.setdefault(ip, []).append(pod)
    out: list[Target] = []
    issues: list[AttributionIssue] = []
    for target in targets:
        found, issue = _match(target, by_ip)
        if issue is not None:
            issues.append(issue)
        if found is not None:
            pod, container = found
            target = target.with_labels({
                "namespace": pod.namespace, "pod": pod.name, "node": pod.node or "",
                "container": container or "", "model_version": pod.model_version or "",
            })
        target, issue = _check_tenant(target)
        if issue is not None:
            issues.append(issue)
        out.append(target)
    return Attribution(out, tuple(issues))


def attribute(targets: Iterable[Target], pods: PodIndex | Sequence[Pod]) -> list[Target]:
    """``attribute_report`` returning only the targets; its issues (and the pod list's) are logged as warnings."""
    if isinstance(pods, PodIndex):
        for pod_issue in pods.issues:
            log.warning("pod list: %s", pod_issue)
    result = attribute_report(targets, pods)
    for issue in result.issues:
        log.warning("target attribution: %s", issue)
    return result.targets


def _match(target: Target, by_ip: Mapping[str, list[Pod]]) -> tuple[tuple[Pod, str | None] | None,
                                                                    AttributionIssue | None]:
    """The pod (and container) behind a target's URL, or the reason there is none."""
    try:
        host, port = host_port(target.url)
    except ConfigError as exc:
        return None, AttributionIssue(target.url, IssueKind.BAD_URL, str(exc))
    ip = ip_of(host)
    if ip is None:
        return None, AttributionIssue(target.url, IssueKind.UNMATCHED,
                                      f"host {host!r} is not an IP address, so it cannot be matched to a pod IP")
    candidates = by_ip.get(ip, [])
    if not candidates:
        return None, AttributionIssue(target.url, IssueKind.UNMATCHED, f"no running pod has IP {ip}")
    exact = [(pod, p.container) for pod in candidates for p in pod.ports
             if port in (p.port, p.host_port) and p.protocol.upper() == "TCP"]
    # hostNetwork pods share the node's IP, so the port decides between them.
    if len({(pod.namespace, pod.name) for pod, _ in exact}) == 1:
        return exact[0], None
    if len(exact) > 1:
        names = sorted({f"{pod.namespace}/{pod.name}" for pod, _ in exact})
        return None, AttributionIssue(target.url, IssueKind.AMBIGUOUS,
                                      f"IP {ip} port {port} is declared by several pods: {names}")
    if len(candidates) == 1:
        # Metrics ports are often left undeclared; a pod IP held by one pod still identifies it.
        pod = candidates[0]
        return (pod, pod.containers[0] if len(pod.containers) == 1 else None), None
    names = sorted(f"{pod.namespace}/{pod.name}" for pod in candidates)
    return None, AttributionIssue(target.url, IssueKind.AMBIGUOUS,
                                  f"IP {ip} is shared by {names} and none declares port {port}")


def _check_tenant(target: Target) -> tuple[Target, AttributionIssue | None]:
    """Mark a target unusable when its namespace is not a valid tenant name."""
    ns = target.labels.get("namespace")
    if ns is None or target.error:
        return target, None
    try:
        validate_tenant(ns)
    except NameValidationError as exc:
        message = f"namespace label: {exc}"
        return target.unusable(message), AttributionIssue(target.url, IssueKind.INVALID_TENANT, message)
    return target, None
