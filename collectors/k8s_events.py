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
| Canary | Flagger's ``Synced`` messages (see ``collectors.flagger``) | started ... promoted / aborted |
| Application | Argo CD ``OperationStarted`` / ``OperationCompleted`` (see ``collectors.argocd``) | source gitops |

``aborted`` means a canary was abandoned before promotion; ``rolled_back`` is reserved for a
promoted version being replaced by an older one. Kubernetes deduplicates events: one object stands
for ``count`` (or ``series.count``) occurrences; we emit a row at its first and, when later, at its
last occurrence, the only two whose times are known, and never invent the ones in between.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

import polars as pl

from analytics.errors import InputError, NameValidationError
from analytics.names import validate_tenant
from analytics.schema import DEPLOYMENTS, DeployAction, DeploySource, conform
from collectors import argocd, flagger
from collectors.kube_pods import APP_NAME, Pod, PodIndex

A = DeployAction


@dataclass(frozen=True, slots=True)
class EventIssue:
    """An event (or webhook) that was skipped or kept incompletely, with where it came from."""

    source: str
    index: int | None
    name: str | None
    message: str

    def __str__(self) -> str:
        where = f"items[{self.index}]" if self.index is not None else "payload"
        return f"{self.source}: {where}{f' ({self.name})' if self.name else ''}: {self.message}"


@dataclass(frozen=True, slots=True)
class EventBatch:
    """``deployments`` rows read from one document, what could not be used, and how many events were not rollout events."""

    source: str
    deployments: pl.DataFrame
    issues: tuple[EventIssue, ...] = ()
    ignored: int = 0  # well-formed events that say nothing about a rollout (Scheduled, Pulling, ...)


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


@dataclass(frozen=True, slots=True)
class Classified:
    """What one event means for a rollout, before its workload is resolved to a model and version."""

    action: DeployAction
    weight_pct: float | None = None
    revision: str | None = None
    replica_set: str | None = None  # names the version: <workload>-<hash>
    version: str | None = None  # a hash the message states outright
    digest: str | None = None  # Argo CD: the git revision synced


class _BadItem(Exception):
    """An item of the list is unusable (reported, the rest kept)."""


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
                raise _BadItem(f"TrafficWeightUpdated without a target weight: {message!r}")
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


def _timestamp(value: object, what: str) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _BadItem(f"{what} must be an RFC 3339 string, got {value!r}")
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise _BadItem(f"{what} is not an RFC 3339 time: {value!r}") from None
    if ts.tzinfo is None:
        raise _BadItem(f"{what} has no time zone: {value!r}")
    return ts


def _count(*values: object) -> int:
    counts = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
    return max([1, *counts])


def _envelope(item: object) -> _Envelope:
    """The fields every event has, from either API version; _BadItem when one is missing."""
    if not isinstance(item, Mapping):
        raise _BadItem(f"not an object ({type(item).__name__})")
    new_api = str(item.get("apiVersion", "")).startswith("events.k8s.io/")
    obj = item.get("regarding" if new_api else "involvedObject")
    meta = item.get("metadata") or {}
    series = item.get("series") or {}
    if not isinstance(obj, Mapping) or not isinstance(meta, Mapping) or not isinstance(series, Mapping):
        raise _BadItem(f"{'regarding' if new_api else 'involvedObject'}, metadata and series must be objects")
    kind, name = obj.get("kind"), obj.get("name")
    ns = obj.get("namespace") or meta.get("namespace")
    reason = item.get("reason")
    if not all(isinstance(x, str) and x for x in (kind, name, ns, reason)):
        raise _BadItem("the involved object's kind, name and namespace, and the reason, are required strings")
    message = item.get("note" if new_api else "message") or ""
    if not isinstance(message, str):
        raise _BadItem("the message must be a string")
    last_seen = _timestamp(series.get("lastObservedTime"), "series.lastObservedTime")
    if new_api:
        first = _timestamp(item.get("eventTime"), "eventTime") or _timestamp(
            item.get("deprecatedFirstTimestamp"), "deprecatedFirstTimestamp")
        last = _timestamp(item.get("deprecatedLastTimestamp"), "deprecatedLastTimestamp")
        count = _count(item.get("deprecatedCount"), series.get("count"))
    else:
        first = _timestamp(item.get("firstTimestamp"), "firstTimestamp") or _timestamp(
            item.get("eventTime"), "eventTime")
        last = _timestamp(item.get("lastTimestamp"), "lastTimestamp")
        count = _count(item.get("count"), series.get("count"))
    first = first or _timestamp(meta.get("creationTimestamp"), "metadata.creationTimestamp")
    if first is None:
        raise _BadItem("no time: eventTime, firstTimestamp and creationTimestamp are all empty")
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
            c = flagger_classified(env.message, env.namespace, env.name, workloads)
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


def flagger_classified(message: str, namespace: str, canary: str, workloads: WorkloadIndex | None) -> Classified | None:
    """A Flagger event message with the canary workload's version, when the pod list shows exactly one."""
    got = flagger.classify_flagger_message(message)
    if got is None:
        return None
    action, weight = got
    version = workloads.only_version(namespace, canary) if workloads else None
    return Classified(action, weight_pct=weight, version=version)


def resolve_row(c: Classified, *, ts: datetime, tenant: str, workload: str, source: DeploySource, message: str,
                workloads: WorkloadIndex | None, notes: list[str]) -> dict[str, Any]:
    """One ``deployments`` row: model and version resolved through the index, what could not be resolved noted."""
    version = c.version
    if version is None and c.replica_set and c.replica_set.startswith(workload + "-"):
        version = c.replica_set[len(workload) + 1:]
    if version is None and c.revision and workloads is not None:
        version = workloads.hash_of(tenant, workload, c.revision)
        if version is None and source is not DeploySource.GITOPS:
            notes.append(f"revision {c.revision} of {workload} has no pod in the pod list: version left empty")
    model = workloads.model_of(tenant, workload, f"{workload}-primary") if workloads else None
    if model is None:
        notes.append(f"model of workload {tenant}/{workload} unknown: kept with the workload name as model")
    return {
        "ts": ts, "tenant": tenant, "model": model or workload, "model_version": version,
        "revision": c.revision, "workload": workload, "action": c.action.value, "weight_pct": c.weight_pct,
        "source": source.value, "artifact_digest": c.digest, "message": message,
    }


def rows_frame(rows: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
    """``deployments`` rows -> a frame conforming to the data set (timestamps to UTC milliseconds)."""
    frame = pl.DataFrame(list(rows), schema={c: (pl.Datetime("us", "UTC") if c == "ts" else t)
                                              for c, t in DEPLOYMENTS.columns.items()})
    return conform(frame, DEPLOYMENTS)


def _load(doc: Mapping[str, Any] | str, source: str) -> list[Any]:
    if isinstance(doc, str):
        try:
            doc = json.loads(doc)
        except json.JSONDecodeError as exc:
            raise InputError(source, exc.lineno, f"not JSON: {exc.msg}") from exc
    if not isinstance(doc, Mapping):
        raise InputError(source, None, f"expected a JSON object (an Event or a List of them), got {type(doc).__name__}")
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
    issues: list[EventIssue] = []
    ignored = 0
    reported: set[str] = set()
    for i, item in enumerate(_load(doc, source)):
        name = _item_name(item)
        try:
            env = _envelope(item)
            got = _classify(env, workloads)
        except _BadItem as exc:
            issues.append(EventIssue(source, i, name, f"skipped: {exc}"))
            continue
        if got is None:
            ignored += 1
            continue
        meaning, tenant, workload, src = got
        try:
            validate_tenant(tenant)
        except NameValidationError as exc:
            issues.append(EventIssue(source, i, name, f"skipped: tenant: {exc}"))
            continue
        notes: list[str] = []
        times = [env.first] + ([env.last] if env.count > 1 and env.last > env.first else [])
        for ts in times:
            rows.append(resolve_row(meaning, ts=ts, tenant=tenant, workload=workload, source=src,
                                    message=env.message, workloads=workloads, notes=notes))
        for note in dict.fromkeys(notes):
            if note not in reported:  # one report per unknown workload, not one per event
                reported.add(note)
                issues.append(EventIssue(source, i, name, note))
    return EventBatch(source, rows_frame(rows), tuple(issues), ignored)


def _item_name(item: object) -> str | None:
    meta = item.get("metadata") if isinstance(item, Mapping) else None
    if not isinstance(meta, Mapping):
        return None
    ns, name = meta.get("namespace"), meta.get("name")
    return f"{ns}/{name}" if isinstance(ns, str) and isinstance(name, str) else None


def parse_pod_warmup(doc: Mapping[str, Any] | str, *, source: str, workloads: WorkloadIndex) -> EventBatch:
    """Warm-up rows from a pod list: container start -> warmup_started, the Ready condition turning True -> warmup_done.

    The kubelet records no event when a pod becomes Ready, so readiness is read from the pod's status.
    A pod without a Ready condition yields no warmup_done: when it got ready is unknown, not guessed.
    """
    rows: list[dict[str, Any]] = []
    issues: list[EventIssue] = []
    items = doc.get("items") if isinstance(doc, Mapping) else json.loads(doc).get("items")
    for i, item in enumerate(items or []):
        name = _item_name(item)
        meta = item.get("metadata", {}) if isinstance(item, Mapping) else {}
        pod = workloads.pods.get((meta.get("namespace"), meta.get("name")))
        if pod is None:
            continue
        try:
            started, ready = _pod_times(item.get("status") or {})
        except _BadItem as exc:
            issues.append(EventIssue(source, i, name, f"skipped: {exc}"))
            continue
        notes: list[str] = []
        for action, ts, what in ((A.WARMUP_STARTED, started, "containers started"), (A.WARMUP_DONE, ready, "Ready")):
            if ts is not None and (action is A.WARMUP_STARTED or started is None or ts >= started):
                c = Classified(action, revision=pod.revision, version=pod.version)
                rows.append(resolve_row(c, ts=ts, tenant=meta["namespace"], workload=pod.workload,
                                        source=DeploySource.K8S, message=f"pod {meta['name']} {what}",
                                        workloads=workloads, notes=notes))
        issues.extend(EventIssue(source, i, name, n) for n in dict.fromkeys(notes))
    return EventBatch(source, rows_frame(rows), tuple(issues))


def _pod_times(status: Mapping[str, Any]) -> tuple[datetime | None, datetime | None]:
    """(latest container start, Ready=True transition) of one pod status."""
    starts = [_timestamp(((c.get("state") or {}).get("running") or {}).get("startedAt"), "startedAt")
              for c in status.get("containerStatuses") or [] if isinstance(c, Mapping)]
    started = max([s for s in starts if s is not None], default=None)
    ready = None
    for cond in status.get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == "Ready" and cond.get("status") == "True":
            ready = _timestamp(cond.get("lastTransitionTime"), "conditions[Ready].lastTransitionTime")
    return started, ready
