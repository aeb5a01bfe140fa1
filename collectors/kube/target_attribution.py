"""Attribution of scrape targets to pods: a target's host:port matched to a pod IP and container port."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from analytics.errors import ConfigError, NameValidationError, Problem, ProblemCode
from analytics.names import validate_tenant
from collectors.kube.pod_model import Pod, PodIndex
from collectors.targets import Target, host_port, ip_of

log = logging.getLogger(__name__)

# Pods in these phases released their IP: a new pod may already hold it.
_DONE_PHASES = frozenset({"Succeeded", "Failed"})


@dataclass(frozen=True, slots=True)
class Attribution:
    """Targets with discovered labels added, and what could not be attributed (source: the target URL).

    A target that could not be attributed keeps its configured labels; its Problem's ``code`` says why.
    """

    targets: list[Target]
    issues: tuple[Problem, ...]


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
    issues: list[Problem] = []
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
                                                                    Problem | None]:
    """The pod (and container) behind a target's URL, or the reason there is none."""
    try:
        host, port = host_port(target.url)
    except ConfigError as exc:
        return None, Problem(target.url, str(exc), code=ProblemCode.BAD_URL)
    ip = ip_of(host)
    if ip is None:
        return None, Problem(target.url, f"host {host!r} is not an IP address, so it cannot be matched to a pod IP",
                             code=ProblemCode.UNMATCHED)
    candidates = by_ip.get(ip, [])
    if not candidates:
        return None, Problem(target.url, f"no running pod has IP {ip}", code=ProblemCode.UNMATCHED)
    exact = [(pod, p.container) for pod in candidates for p in pod.ports
             if port in (p.port, p.host_port) and p.protocol.upper() == "TCP"]
    # hostNetwork pods share the node's IP, so the port decides between them.
    if len({(pod.namespace, pod.name) for pod, _ in exact}) == 1:
        return exact[0], None
    if len(exact) > 1:
        names = sorted({f"{pod.namespace}/{pod.name}" for pod, _ in exact})
        return None, Problem(target.url, f"IP {ip} port {port} is declared by several pods: {names}",
                             code=ProblemCode.AMBIGUOUS)
    if len(candidates) == 1:
        # Metrics ports are often left undeclared; a pod IP held by one pod still identifies it.
        pod = candidates[0]
        return (pod, pod.containers[0] if len(pod.containers) == 1 else None), None
    names = sorted(f"{pod.namespace}/{pod.name}" for pod in candidates)
    return None, Problem(target.url, f"IP {ip} is shared by {names} and none declares port {port}",
                         code=ProblemCode.AMBIGUOUS)


def _check_tenant(target: Target) -> tuple[Target, Problem | None]:
    """Mark a target unusable when its namespace is not a valid tenant name."""
    ns = target.labels.get("namespace")
    if ns is None or target.error:
        return target, None
    try:
        validate_tenant(ns)
    except NameValidationError as exc:
        message = f"namespace label: {exc}"
        return target.unusable(message), Problem(target.url, message, code=ProblemCode.INVALID_TENANT)
    return target, None
