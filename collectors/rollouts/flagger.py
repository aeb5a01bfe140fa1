"""Flagger events and webhook payloads -> ``deployments`` rows (source flagger).

Flagger records every event with reason ``Synced`` on the Canary (``pkg/controller/events.go``); the
message says what happened (``pkg/controller/scheduler.go``):

| message | action |
|---|---|
| "New revision detected! Scaling up %s.%s" / "... Restarting analysis for %s.%s" | started |
| "Starting canary analysis for %s.%s", "Advance %s.%s canary iteration %v/%v", "Copying %s.%s template spec to %s.%s", "Routing all traffic to primary" | step |
| "Advance %s.%s canary weight %v" | weight |
| "Advance %s.%s primary weight %v" (promotion traffic shift) | weight (100 - primary) |
| "Routing all traffic to canary" (blue/green) | weight 100 |
| "Halt %s.%s advancement ..." (failed check, waiting for approval) | paused |
| "Promotion completed! ..." | promoted |
| "Rolling back %s.%s ...", "Canary failed! Scaling down %s.%s" | aborted |

Flagger's "rollback" abandons the canary before promotion, which fleetlens calls ``aborted``.
Webhooks POST ``{name, namespace, phase, checksum, metadata}`` (``CanaryWebhookPayload``); the ``event``
hook puts the message in ``metadata.eventMessage`` and the time (Unix ms) in ``metadata.timestamp``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from analytics.errors import InputError, NameValidationError, Problem
from analytics.names import validate_tenant
from analytics.schema import DeployAction, DeploySource
from collectors.kube.workloads import WorkloadIndex
from collectors.rollouts.rows import Classified, EventBatch, resolve_row, rows_frame

A = DeployAction
_NUM = r"(\d+(?:\.\d+)?)"
_MESSAGES: tuple[tuple[re.Pattern[str], DeployAction, str | None], ...] = (
    (re.compile(r"^New revision detected!"), A.STARTED, None),
    (re.compile(rf"^Advance \S+ canary weight {_NUM}"), A.WEIGHT, "canary"),
    (re.compile(rf"^Advance \S+ primary weight {_NUM}"), A.WEIGHT, "primary"),
    (re.compile(r"^Routing all traffic to canary"), A.WEIGHT, "all"),
    (re.compile(r"^(Starting canary analysis|Advance \S+ canary iteration|Copying \S+ template spec"
                r"|Routing all traffic to primary)"), A.STEP, None),
    (re.compile(r"^Halt .*advancement"), A.PAUSED, None),
    (re.compile(r"^Promotion completed!"), A.PROMOTED, None),
    (re.compile(r"^(Rolling back |Canary failed!)"), A.ABORTED, None),
)
HOOK_TYPES = ("confirm-rollout", "pre-rollout", "rollout", "confirm-promotion", "post-rollout", "event", "rollback",
              "confirm-traffic-increase")


def classify_flagger_message(message: str) -> tuple[DeployAction, float | None] | None:
    """(action, canary weight) of a Flagger event message, or None when it says nothing about the rollout."""
    for pattern, action, weight in _MESSAGES:
        m = pattern.search(message)
        if m is None:
            continue
        if weight == "canary":
            return action, float(m.group(1))
        if weight == "primary":
            return action, 100.0 - float(m.group(1))
        return action, 100.0 if weight == "all" else None
    return None


# Flagger's CanaryPhase -> what a (non-event) webhook call at that phase means.
_PHASES: dict[str, DeployAction | None] = {
    "Initializing": None, "Initialized": None, "Terminating": None, "Terminated": None,
    "Waiting": A.PAUSED, "WaitingPromotion": A.PAUSED,
    "Progressing": A.STEP, "Promoting": A.STEP, "Finalising": A.STEP,
    "Succeeded": A.PROMOTED, "Failed": A.ABORTED,
}


def _hook_action(hook_type: str | None, phase: str) -> DeployAction | None:
    """The webhook type decides where the phase alone is ambiguous."""
    by_phase = _PHASES.get(phase)
    if hook_type == "pre-rollout":
        return A.STARTED  # runs once, as the analysis of a new revision starts
    if hook_type in ("confirm-rollout", "confirm-promotion", "confirm-traffic-increase"):
        return A.PAUSED  # a gate: the rollout waits on the answer
    return by_phase  # rollout / rollback gates are checks during the phase; post-rollout ends it


def flagger_classified(message: str, namespace: str, canary: str, workloads: WorkloadIndex | None) -> Classified | None:
    """A Flagger event message with the canary workload's version, when the pod list shows exactly one."""
    got = classify_flagger_message(message)
    if got is None:
        return None
    action, weight = got
    version = workloads.only_version(namespace, canary) if workloads else None
    return Classified(action, weight_pct=weight, version=version)


def parse_flagger_webhook(payload: Mapping[str, Any], *, source: str, received_at: datetime,
                          hook_type: str | None = None, workloads: WorkloadIndex | None = None) -> EventBatch:
    """One ``CanaryWebhookPayload`` -> at most one row; an unusable payload raises InputError naming ``source``."""
    if received_at.tzinfo is None:
        raise InputError(source, None, "received_at must carry a time zone")
    if not isinstance(payload, Mapping):
        raise InputError(source, None, f"expected a JSON object, got {type(payload).__name__}")
    name, ns, phase = payload.get("name"), payload.get("namespace"), payload.get("phase") or ""
    if not isinstance(name, str) or not name or not isinstance(ns, str) or not ns:
        raise InputError(source, None, "'name' and 'namespace' are required strings")
    meta = payload.get("metadata") or {}
    if not isinstance(meta, Mapping) or not isinstance(phase, str):
        raise InputError(source, None, "'metadata' must be an object and 'phase' a string")
    if hook_type == "":
        hook_type = "rollout"  # the CRD allows an empty type, which Flagger runs as a rollout check
    if hook_type is not None and hook_type not in HOOK_TYPES:
        raise InputError(source, None, f"unknown webhook type {hook_type!r} (known: {', '.join(HOOK_TYPES)})")
    try:
        validate_tenant(ns)
    except NameValidationError as exc:
        raise InputError(source, None, f"namespace: {exc}") from exc
    ts, message = received_at, f"webhook {hook_type or '?'} phase {phase or '?'}"
    if hook_type == "event" or "eventMessage" in meta:
        message = str(meta.get("eventMessage", ""))
        ts = _event_time(meta.get("timestamp"), received_at, source)
        classified = flagger_classified(message, ns, name, workloads)
    else:
        action = _hook_action(hook_type, phase)
        version = workloads.only_version(ns, name) if workloads else None
        classified = None if action is None else Classified(action, weight_pct=_weight(payload, meta), version=version)
    if classified is None:
        return EventBatch(source, rows_frame([]), (), ignored=1)
    notes: list[str] = []
    row = resolve_row(classified, ts=ts, tenant=ns, workload=name, source=DeploySource.FLAGGER,
                      message=message, workloads=workloads, notes=notes)
    if payload.get("checksum"):
        row["artifact_digest"] = str(payload["checksum"])  # Flagger's hash of the canary's applied spec
    return EventBatch(source, rows_frame([row]), tuple(Problem(source, n, name=f"{ns}/{name}") for n in notes))


def _weight(payload: Mapping[str, Any], meta: Mapping[str, Any]) -> float | None:
    """Newer Flagger sends ``canaryWeight`` (top level and in metadata); older payloads do not."""
    for value in (payload.get("canaryWeight"), meta.get("canaryWeight")):
        try:
            return float(value) if value is not None and value != "" else None
        except (TypeError, ValueError):
            continue
    return None


def _event_time(value: object, fallback: datetime, source: str) -> datetime:
    if value is None or value == "":
        return fallback
    try:
        return datetime.fromtimestamp(int(str(value)) / 1000.0, tz=UTC)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InputError(source, None, f"metadata.timestamp is not Unix milliseconds: {value!r}") from exc
