"""``deployments`` rows as the event readers build them: an event's meaning, its resolved row, and batches."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from analytics.errors import ItemError, Problem
from analytics.schema import DEPLOYMENTS, DeployAction, DeploySource, conform
from collectors.kube.workloads import WorkloadIndex


@dataclass(frozen=True, slots=True)
class EventBatch:
    """``deployments`` rows read from one document, what could not be used, and how many events were not rollout events.

    An event skipped or kept incompletely is a Problem naming its list item (a webhook: the canary).
    """

    source: str
    deployments: pl.DataFrame
    issues: tuple[Problem, ...] = ()
    ignored: int = 0  # well-formed events that say nothing about a rollout (Scheduled, Pulling, ...)


@dataclass(frozen=True, slots=True)
class Classified:
    """What one event means for a rollout, before its workload is resolved to a model and version."""

    action: DeployAction
    weight_pct: float | None = None
    revision: str | None = None
    replica_set: str | None = None  # names the version: <workload>-<hash>
    version: str | None = None  # a hash the message states outright
    digest: str | None = None  # Argo CD: the git revision synced


def timestamp(value: object, what: str) -> datetime | None:
    """An RFC 3339 time with a zone, None when empty; ItemError naming ``what`` otherwise."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ItemError(f"{what} must be an RFC 3339 string, got {value!r}")
    try:
        ts = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ItemError(f"{what} is not an RFC 3339 time: {value!r}") from exc
    if ts.tzinfo is None:
        raise ItemError(f"{what} has no time zone: {value!r}")
    return ts


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
