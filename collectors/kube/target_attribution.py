"""Attribution of scrape targets to pods: a target's host:port matched to a pod IP and container port."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from analytics.errors import ConfigError, NameValidationError
from analytics.names import validate_tenant
from collectors.kube.pod_model import Pod, PodIndex
from collectors.targets import Target, host_port, ip_of

log = logging.getLogger(__name__)

# Pods in these phases released their IP: a new pod may already hold it.
_DONE_PHASES = frozenset({"Succeeded", "Failed"})


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


def attribute_targets_report(targets: Iterable[Target], pods: PodIndex | Sequence[Pod]) -> Attribution:
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


def attribute_targets(targets: Iterable[Target], pods: PodIndex | Sequence[Pod]) -> list[Target]:
    """``attribute_targets_report`` returning only the targets; its issues (and the pod list's) are logged as warnings."""
    if isinstance(pods, PodIndex):
        for pod_issue in pods.issues:
            log.warning("pod list: %s", pod_issue)
    result = attribute_targets_report(targets, pods)
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
