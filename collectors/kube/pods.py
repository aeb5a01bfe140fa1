"""Pod identity from ``kubectl get pods -A -o json`` (``parse_pod_list``); attribution lives in ``target_attribution``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from analytics.errors import InputError, ItemError, Problem
from collectors.kube.items import json_document, skipped, str_map
from collectors.kube.pod_model import (
    APP_NAME,
    GROUP_LABELS,
    ROLLOUT_HASH,
    ROLLOUT_REVISION,
    TEMPLATE_HASH,
    ContainerPort,
    OwnerRef,
    Pod,
    PodIndex,
)
from collectors.targets import ip_of

# Labels a Pod keeps (the rest say nothing about who its metrics belong to).
_KEPT_LABELS = (ROLLOUT_HASH, TEMPLATE_HASH, APP_NAME, *GROUP_LABELS,
                "leaderworkerset.sigs.k8s.io/group-index", "leaderworkerset.sigs.k8s.io/worker-index",
                "ray.io/node-type", "ray.io/group")


def item_name(item: object) -> str | None:
    """``namespace/name`` of a list item for issue reports, or None when its metadata lacks either."""
    meta = item.get("metadata") if isinstance(item, Mapping) else None
    if not isinstance(meta, Mapping):
        return None
    ns, name = meta.get("namespace"), meta.get("name")
    return f"{ns}/{name}" if isinstance(ns, str) and isinstance(name, str) else None


def parse_pod_list(doc: Mapping[str, Any] | str, *, source: str) -> PodIndex:
    """Read a ``List``/``PodList`` of pods; malformed items are reported and skipped, a bad document raises."""
    doc = json_document(doc, source=source, expected="a List or PodList")
    kind = doc.get("kind")
    if kind not in ("List", "PodList"):
        raise InputError(source, None, f"expected kind List or PodList, got {kind!r}")
    items = doc.get("items")
    if items is None:
        items = []  # kubectl prints `"items": []` but an API server may omit an empty list
    if not isinstance(items, list):
        raise InputError(source, None, f"'items' must be a list, got {type(items).__name__}")
    pods: list[Pod] = []
    issues: list[Problem] = []
    for i, item in enumerate(items):
        name = item_name(item)
        try:
            pod, notes = _parse_pod(item)
        except ItemError as exc:
            issues.append(skipped(source, i, name, exc))
            continue
        pods.append(pod)
        issues.extend(Problem(source, note, item=i, name=name) for note in notes)
    return PodIndex(source, tuple(pods), tuple(issues))


def _parse_pod(item: object) -> tuple[Pod, list[str]]:
    """One item -> Pod and notes about fields it ignored; ItemError if it is not a usable pod."""
    if not isinstance(item, Mapping):
        raise ItemError(f"not an object ({type(item).__name__})")
    if item.get("kind", "Pod") != "Pod":
        raise ItemError(f"kind {item.get('kind')!r} is not Pod")
    meta, spec, status = (item.get(k) or {} for k in ("metadata", "spec", "status"))
    if not all(isinstance(x, Mapping) for x in (meta, spec, status)):
        raise ItemError("metadata, spec and status must be objects")
    ns, name = meta.get("namespace"), meta.get("name")
    if not isinstance(ns, str) or not ns or not isinstance(name, str) or not name:
        raise ItemError("metadata.namespace and metadata.name are required strings")
    notes: list[str] = []
    labels = str_map(meta.get("labels"), "metadata.labels")
    annotations = str_map(meta.get("annotations"), "metadata.annotations")
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
        raise ItemError("spec.containers must be a list")
    names: list[str] = []
    ports: list[ContainerPort] = []
    for c in value:
        if not isinstance(c, Mapping) or not isinstance(c.get("name"), str):
            raise ItemError("every spec.containers entry needs a string name")
        names.append(c["name"])
        declared = c.get("ports") or []
        if not isinstance(declared, list):
            raise ItemError(f"container {c['name']!r}: ports must be a list")
        for p in declared:
            port = p.get("containerPort") if isinstance(p, Mapping) else None
            if not isinstance(port, int) or isinstance(port, bool):
                raise ItemError(f"container {c['name']!r}: containerPort must be an integer, got {port!r}")
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
        raise ItemError("status.podIPs must be a list")
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
        raise ItemError("metadata.ownerReferences must be a list")
    owners = []
    for o in value:
        if not isinstance(o, Mapping) or not isinstance(o.get("kind"), str) or not isinstance(o.get("name"), str):
            raise ItemError("every ownerReferences entry needs string kind and name")
        owners.append(OwnerRef(o["kind"], o["name"], o.get("uid") if isinstance(o.get("uid"), str) else None,
                               o.get("controller") is True))
    return tuple(owners)
