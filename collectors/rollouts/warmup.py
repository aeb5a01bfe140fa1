"""Warm-up rows from a pod list: container start -> warmup_started, the Ready condition -> warmup_done."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from analytics.errors import ItemError, Problem
from analytics.schema import DeployAction, DeploySource
from collectors.kube.items import skipped
from collectors.kube.pods import item_name
from collectors.kube.workloads import WorkloadIndex
from collectors.rollouts.rows import Classified, EventBatch, resolve_row, rows_frame, timestamp

A = DeployAction


def parse_pod_warmup(doc: Mapping[str, Any] | str, *, source: str, workloads: WorkloadIndex) -> EventBatch:
    """Warm-up rows from a pod list: container start -> warmup_started, the Ready condition turning True -> warmup_done.

    The kubelet records no event when a pod becomes Ready, so readiness is read from the pod's status.
    A pod without a Ready condition yields no warmup_done: when it got ready is unknown, not guessed.
    """
    rows: list[dict[str, Any]] = []
    issues: list[Problem] = []
    items = doc.get("items") if isinstance(doc, Mapping) else json.loads(doc).get("items")
    for i, item in enumerate(items or []):
        name = item_name(item)
        meta = item.get("metadata", {}) if isinstance(item, Mapping) else {}
        pod = workloads.pods.get((meta.get("namespace"), meta.get("name")))
        if pod is None:
            continue
        try:
            started, ready = _pod_times(item.get("status") or {})
        except ItemError as exc:
            issues.append(skipped(source, i, name, exc))
            continue
        notes: list[str] = []
        for action, ts, what in ((A.WARMUP_STARTED, started, "containers started"), (A.WARMUP_DONE, ready, "Ready")):
            if ts is not None and (action is A.WARMUP_STARTED or started is None or ts >= started):
                c = Classified(action, revision=pod.revision, version=pod.version)
                rows.append(resolve_row(c, ts=ts, tenant=meta["namespace"], workload=pod.workload,
                                        source=DeploySource.K8S, message=f"pod {meta['name']} {what}",
                                        workloads=workloads, notes=notes))
        issues.extend(Problem(source, n, item=i, name=name) for n in dict.fromkeys(notes))
    return EventBatch(source, rows_frame(rows), tuple(issues))


def _pod_times(status: Mapping[str, Any]) -> tuple[datetime | None, datetime | None]:
    """(latest container start, Ready=True transition) of one pod status."""
    starts = [timestamp(((c.get("state") or {}).get("running") or {}).get("startedAt"), "startedAt")
              for c in status.get("containerStatuses") or [] if isinstance(c, Mapping)]
    started = max([s for s in starts if s is not None], default=None)
    ready = None
    for cond in status.get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == "Ready" and cond.get("status") == "True":
            ready = timestamp(cond.get("lastTransitionTime"), "conditions[Ready].lastTransitionTime")
    return started, ready
