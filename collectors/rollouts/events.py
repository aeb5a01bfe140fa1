"""Kubernetes Events (core/v1 and events.k8s.io/v1) -> ``deployments`` rows: Argo Rollouts, Deployments, kubelet, Flagger, Argo CD.

Which event becomes which action (message formats from the controllers' sources):

| involved kind | reason / message | action |
|---|---|---|
| Rollout | ``RolloutUpdated`` "Rollout updated to revision %s", ``NewReplicaSetCreated``, ``RolloutRetry`` | started |
| Rollout | ``RolloutStepCompleted`` "Rollout step %d/%d completed (%s)", ``RolloutResumed`` | step |
| Rollout | ``TrafficWeightUpdated`` "Traffic weight updated %s" (``from a to b``) | weight (b) |
| Rollout | ``RolloutPaused`` | paused |
| Rollout | ``RolloutAborted``; ``AnalysisRunFailed`` (Argo aborts the update when a run fails) | aborted |
| Rollout | ``RolloutCompleted`` "Rollout completed update to revision %d (%s): %s" | promoted |
| Rollout, Deployment | ``ScalingReplicaSet`` "Scaled %s ReplicaSet %s (revision %d) from %d to %d" | scaled |
| Deployment | ``DeploymentRollback`` | rolled_back |
| Pod (kubelet) | ``Started`` "Started container %s" | warmup_started |
| Canary | Flagger's ``Synced`` messages (see ``collectors.rollouts.flagger``) | started ... promoted / aborted |
| Application | Argo CD ``OperationStarted`` / ``OperationCompleted`` (see ``collectors.rollouts.argocd``) | source gitops |

``aborted`` means a canary was abandoned before promotion; ``rolled_back`` is reserved for a
promoted version being replaced by an older one. Kubernetes deduplicates events: one object stands
for ``count`` (or ``series.count``) occurrences; we emit a row at its first and, when later, at its
last occurrence, the only two whose times are known, and never invent the ones in between.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from analytics.errors import InputError, ItemError, NameValidationError, Problem
from analytics.names import validate_tenant
from analytics.schema import DeployAction, DeploySource
from collectors.kube.items import json_document, skipped
from collectors.kube.pods import item_name
from collectors.kube.workloads import WorkloadIndex
from collectors.rollouts import argocd, flagger
from collectors.rollouts.rows import (
    Classified,
    EventBatch,
    resolve_row,
    rows_frame,
    timestamp,
)

A = DeployAction


@dataclass(frozen=True, slots=True)
class _Envelope:
    kind: str
    namespace: str
    name: str
    reason: str
    message: str
    type: str
    first: datetime
    last: datetime
    count: int
    annotations: Mapping[str, str]


_REVISION = re.compile(r"revision (\d+)")
_RS = re.compile(r"(?:ReplicaSet|replica set) (\S+?)(?: \(revision (\d+)\))?(?: (?:from \d+ )?to \d+)?$")
_CREATED_RS = re.compile(r"Created ReplicaSet (\S+) \(revision (\d+)\)")
_COMPLETED = re.compile(r"revision (\d+) \(([^)]+)\)")
_WEIGHT_TO = re.compile(r"to (\d+(?:\.\d+)?)\s*$")
_SET_WEIGHT = re.compile(r"setWeight: (\d+(?:\.\d+)?)")


def _classify_rollout(reason: str, message: str) -> Classified | None:
    """Argo Rollouts reasons (``utils/conditions/conditions.go``)."""
    rev = m.group(1) if (m := _REVISION.search(message)) else None
    match reason:
        case "RolloutUpdated" | "RolloutRetry":
            return Classified(A.STARTED, revision=rev)
        case "NewReplicaSetCreated":
            m = _CREATED_RS.search(message)
            return Classified(A.STARTED, revision=m.group(2) if m else rev, replica_set=m.group(1) if m else None)
        case "RolloutStepCompleted":
            w = _SET_WEIGHT.search(message)
            return Classified(A.STEP, weight_pct=float(w.group(1)) if w else None)
        case "RolloutResumed":
            return Classified(A.STEP)
        case "TrafficWeightUpdated":
            w = _WEIGHT_TO.search(message)
            if w is None:
                raise ItemError(f"TrafficWeightUpdated without a target weight: {message!r}")
            return Classified(A.WEIGHT, weight_pct=float(w.group(1)))
        case "RolloutPaused":
            return Classified(A.PAUSED)
        case "RolloutAborted" | "AnalysisRunFailed":
            return Classified(A.ABORTED, revision=rev)
        case "RolloutCompleted":
            m = _COMPLETED.search(message)
            return Classified(A.PROMOTED, revision=m.group(1) if m else rev, version=m.group(2) if m else None)
        case "ScalingReplicaSet":
            return _scaling(message)
    return None


def _scaling(message: str) -> Classified:
    m = _RS.search(message)
    return Classified(A.SCALED, revision=m.group(2) if m else None, replica_set=m.group(1) if m else None)


def _classify_deployment(reason: str, message: str) -> Classified | None:
    """``kubernetes/kubernetes`` deployment controller reasons."""
    if reason == "ScalingReplicaSet":
        return _scaling(message)
    if reason.startswith("DeploymentRollback"):
        m = _REVISION.search(message)
        return Classified(A.ROLLED_BACK, revision=m.group(1) if m else None)
    return None


def _count(*values: object) -> int:
    counts = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
    return max([1, *counts])


def _envelope(item: object) -> _Envelope:
    """The fields every event has, from either API version; ItemError when one is missing."""
    if not isinstance(item, Mapping):
        raise ItemError(f"not an object ({type(item).__name__})")
    new_api = str(item.get("apiVersion", "")).startswith("events.k8s.io/")
    obj = item.get("regarding" if new_api else "involvedObject")
    meta = item.get("metadata") or {}
    series = item.get("series") or {}
    if not isinstance(obj, Mapping) or not isinstance(meta, Mapping) or not isinstance(series, Mapping):
        raise ItemError(f"{'regarding' if new_api else 'involvedObject'}, metadata and series must be objects")
    kind, name = obj.get("kind"), obj.get("name")
    ns = obj.get("namespace") or meta.get("namespace")
    reason = item.get("reason")
    if not all(isinstance(x, str) and x for x in (kind, name, ns, reason)):
        raise ItemError("the involved object's kind, name and namespace, and the reason, are required strings")
    message = item.get("note" if new_api else "message") or ""
    if not isinstance(message, str):
        raise ItemError("the message must be a string")
    last_seen = timestamp(series.get("lastObservedTime"), "series.lastObservedTime")
    if new_api:
        first = timestamp(item.get("eventTime"), "eventTime") or timestamp(
            item.get("deprecatedFirstTimestamp"), "deprecatedFirstTimestamp")
        last = timestamp(item.get("deprecatedLastTimestamp"), "deprecatedLastTimestamp")
        count = _count(item.get("deprecatedCount"), series.get("count"))
    else:
        first = timestamp(item.get("firstTimestamp"), "firstTimestamp") or timestamp(
            item.get("eventTime"), "eventTime")
        last = timestamp(item.get("lastTimestamp"), "lastTimestamp")
        count = _count(item.get("count"), series.get("count"))
    first = first or timestamp(meta.get("creationTimestamp"), "metadata.creationTimestamp")
    if first is None:
        raise ItemError("no time: eventTime, firstTimestamp and creationTimestamp are all empty")
    last = max([t for t in (first, last, last_seen) if t is not None])
    annotations = meta.get("annotations") or {}
    return _Envelope(
        kind=kind, namespace=ns, name=name, reason=reason, message=message, type=str(item.get("type") or ""),
        first=first, last=last, count=count,
        annotations={k: v for k, v in annotations.items() if isinstance(v, str)} if isinstance(annotations, Mapping) else {},
    )


def _classify(env: _Envelope, workloads: WorkloadIndex | None) -> tuple[Classified, str, str, DeploySource] | None:
    """(meaning, tenant, workload, source) of an event, or None when it is not a rollout event."""
    match env.kind:
        case "Rollout":
            c = _classify_rollout(env.reason, env.message)
            return (c, env.namespace, env.name, DeploySource.ARGO) if c else None
        case "Deployment":
            c = _classify_deployment(env.reason, env.message)
            return (c, env.namespace, env.name, DeploySource.K8S) if c else None
        case "Pod":
            pod = workloads.pods.get((env.namespace, env.name)) if workloads else None
            if env.reason != "Started" or pod is None:
                return None  # pods we cannot tie to a versioned workload are not rollout events
            return Classified(A.WARMUP_STARTED, revision=pod.revision, version=pod.version), env.namespace, \
                pod.workload, DeploySource.K8S
        case "Canary":
            c = flagger.flagger_classified(env.message, env.namespace, env.name, workloads)
            return (c, env.namespace, env.name, DeploySource.FLAGGER) if c else None
        case "Application":
            got = argocd.classify_argocd_event(env.reason, env.message)
            if got is None:
                return None
            action, revision = got
            # Argo CD records Application events in its own namespace; the tenant is the destination.
            tenant = env.annotations.get("dest-namespace") or env.namespace
            return Classified(action, digest=revision), tenant, env.name, DeploySource.GITOPS
    return None


def _load(doc: Mapping[str, Any] | str, source: str) -> list[Any]:
    doc = json_document(doc, source=source, expected="an Event or a List of them")
    kind = doc.get("kind")
    if kind == "Event":
        return [doc]
    if kind not in ("List", "EventList"):
        raise InputError(source, None, f"expected kind Event, EventList or List, got {kind!r}")
    items = doc.get("items") or []
    if not isinstance(items, list):
        raise InputError(source, None, f"'items' must be a list, got {type(items).__name__}")
    return items


def parse_k8s_events(doc: Mapping[str, Any] | str, *, source: str, workloads: WorkloadIndex | None = None) -> EventBatch:
    """``kubectl get events -A -o json`` (or one Event) -> rollout rows; malformed items reported, the rest kept."""
    rows: list[dict[str, Any]] = []
    issues: list[Problem] = []
    ignored = 0
    reported: set[str] = set()
    for i, item in enumerate(_load(doc, source)):
        name = item_name(item)
        try:
            env = _envelope(item)
            got = _classify(env, workloads)
        except ItemError as exc:
            issues.append(skipped(source, i, name, exc))
            continue
        if got is None:
            ignored += 1
            continue
        meaning, tenant, workload, src = got
        try:
            validate_tenant(tenant)
        except NameValidationError as exc:
            issues.append(Problem(source, f"skipped: tenant: {exc}", item=i, name=name))
            continue
        notes: list[str] = []
        times = [env.first] + ([env.last] if env.count > 1 and env.last > env.first else [])
        for ts in times:
            rows.append(resolve_row(meaning, ts=ts, tenant=tenant, workload=workload, source=src,
                                    message=env.message, workloads=workloads, notes=notes))
        for note in dict.fromkeys(notes):
            if note not in reported:  # one report per unknown workload, not one per event
                reported.add(note)
                issues.append(Problem(source, note, item=i, name=name))
    return EventBatch(source, rows_frame(rows), tuple(issues), ignored)


