"""Per-tenant quotas (QUOTAS) from ResourceQuotas, Kueue ClusterQueue/LocalQueue and Run:ai (KAI) queues.

- ``ResourceQuota`` (core/v1, namespaced): one row per resource of ``status.hard`` (else ``spec.hard``),
  ``used`` from ``status.used``; tenant = namespace, name = the quota's name, source ``resourcequota``.
- Kueue (``kueue.x-k8s.io``): a ``LocalQueue`` in namespace N (``spec.clusterQueue``) ties tenant N to
  a ``ClusterQueue``. One row per tenant x ClusterQueue x flavor x resource of
  ``spec.resourceGroups[].flavors[].resources[].nominalQuota``; name = ``<clusterqueue>/<flavor>``
  (both RFC 1123 names, so the ``/`` is unambiguous), ``hard`` = nominalQuota (shared by every tenant
  of the ClusterQueue), ``used`` = the tenant's LocalQueues' ``status.flavorUsage[].resources[].total``
  (null when the LocalQueue reports none). Source ``kueue``.
- Run:ai / KAI ``Queue`` (``scheduling.run.ai/v2``, cluster-scoped): ``spec.resources.gpu.quota`` as
  ``hard`` (``-1``, unlimited, becomes null) for resource ``gpu``, tied to the namespaces whose pods carry
  the ``runai/queue`` label naming it (pods in the same document); ``used`` is not read. Source ``runai``.

Amounts are Kubernetes quantities parsed exactly (``36Gi`` -> bytes, ``500m`` -> 0.5). Tenants are
validated as RFC 1123 labels; objects with bad names or quantities are reported with source and index.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from analytics.errors import ItemError, NameValidationError, Problem
from analytics.names import validate_tenant
from analytics.schema import QUOTAS, conform
from collectors.kube.items import Item, of_kind, read_items, section, skipped, str_map, utc
from collectors.kube.quantity import QuantityError, parse_quantity

RUNAI_QUEUE = "runai/queue"


@dataclass(frozen=True, slots=True)
class QuotaBatch:
    """QUOTAS rows of one document and what was skipped."""

    frame: pl.DataFrame
    issues: tuple[Problem, ...] = ()


def parse_quotas(doc: Mapping[str, Any] | str, *, source: str, ts: datetime, cluster: str) -> QuotaBatch:
    """QUOTAS from a List of ResourceQuota, ClusterQueue, LocalQueue, Queue and Pod items (others ignored)."""
    items, issues = read_items(doc, source=source)
    rows: list[dict[str, Any]] = []

    def guarded(it: Item, fn: Any) -> Any:
        try:
            return fn(it.obj)
        except (ItemError, NameValidationError, QuantityError) as exc:
            issues.append(skipped(source, it.index, it.name, exc))
            return None

    for it in of_kind(items, "ResourceQuota"):
        rows.extend(guarded(it, _resource_quota) or [])
    queues = {}
    for it in of_kind(items, "ClusterQueue"):
        cq = guarded(it, _cluster_queue)
        if cq is not None:
            queues[cq[0]] = cq[1]
    usage: dict[tuple[str, str], dict[tuple[str, str], float]] = {}
    for it in of_kind(items, "LocalQueue"):
        lq = guarded(it, _local_queue)
        if lq is None:
            continue
        tenant, cq_name, used = lq
        if cq_name not in queues:
            issues.append(
                Problem(source, f"ClusterQueue {cq_name!r} is not in the document", item=it.index, name=it.name)
            )
            continue
        merged = usage.setdefault((tenant, cq_name), {})
        for k, v in used.items():
            merged[k] = merged.get(k, 0.0) + v
    for (tenant, cq_name), used in sorted(usage.items()):
        for (flavor, resource), hard in queues[cq_name].items():
            rows.append(
                {
                    "tenant": tenant,
                    "source": "kueue",
                    "name": f"{cq_name}/{flavor}",
                    "resource": resource,
                    "hard": hard,
                    "used": used.get((flavor, resource)),
                }
            )
    rows.extend(_runai_rows(items, issues, source))
    at = utc(ts)
    frame = pl.DataFrame([{"ts": at, "cluster": cluster, **r} for r in rows], schema=QUOTAS.schema)
    return QuotaBatch(conform(frame, QUOTAS), tuple(issues))


def _amount(value: object) -> float:
    return float(parse_quantity(value))  # type: ignore[arg-type]


def _resource_quota(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    meta, spec, status = section(obj, "metadata"), section(obj, "spec"), section(obj, "status")
    tenant = validate_tenant(meta.get("namespace"))  # type: ignore[arg-type]
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise ItemError("metadata.name is a required string")
    hard = section(status, "hard") or section(spec, "hard")
    used = section(status, "used")
    return [
        {
            "tenant": tenant,
            "source": "resourcequota",
            "name": name,
            "resource": r,
            "hard": _amount(q),
            "used": _amount(used[r]) if r in used else None,
        }
        for r, q in sorted(hard.items())
    ]


def _cluster_queue(obj: Mapping[str, Any]) -> tuple[str, dict[tuple[str, str], float]]:
    meta, spec = section(obj, "metadata"), section(obj, "spec")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise ItemError("metadata.name is a required string")
    nominal: dict[tuple[str, str], float] = {}
    groups = spec.get("resourceGroups") or []
    if not isinstance(groups, list):
        raise ItemError("spec.resourceGroups must be a list")
    for group in groups:
        flavors = group.get("flavors") if isinstance(group, Mapping) else None
        if not isinstance(flavors, list):
            raise ItemError("every resourceGroups entry needs a flavors list")
        for flavor in flavors:
            resources = flavor.get("resources") if isinstance(flavor, Mapping) else None
            if (
                not isinstance(flavor, Mapping)
                or not isinstance(flavor.get("name"), str)
                or not isinstance(resources, list)
            ):
                raise ItemError("every flavor needs a name and a resources list")
            for res in resources:
                if (
                    not isinstance(res, Mapping)
                    or not isinstance(res.get("name"), str)
                    or "nominalQuota" not in res
                ):
                    raise ItemError(
                        f"flavor {flavor['name']!r}: every resource needs a name and a nominalQuota"
                    )
                nominal[(flavor["name"], res["name"])] = _amount(res["nominalQuota"])
    return name, nominal


def _local_queue(obj: Mapping[str, Any]) -> tuple[str, str, dict[tuple[str, str], float]]:
    meta, spec, status = section(obj, "metadata"), section(obj, "spec"), section(obj, "status")
    tenant = validate_tenant(meta.get("namespace"))  # type: ignore[arg-type]
    cq = spec.get("clusterQueue")
    if not isinstance(cq, str) or not cq:
        raise ItemError("spec.clusterQueue is a required string")
    used: dict[tuple[str, str], float] = {}
    flavors = status.get("flavorUsage") or []
    if not isinstance(flavors, list):
        raise ItemError("status.flavorUsage must be a list")
    for flavor in flavors:
        if not isinstance(flavor, Mapping) or not isinstance(flavor.get("name"), str):
            raise ItemError("every status.flavorUsage entry needs a name")
        for res in flavor.get("resources") or []:
            if isinstance(res, Mapping) and isinstance(res.get("name"), str):
                used[(flavor["name"], res["name"])] = _amount(res.get("total", "0"))
    return tenant, cq, used


def _runai_rows(items: list[Item], issues: list[Problem], source: str) -> list[dict[str, Any]]:
    """Run:ai/KAI Queue GPU quotas, tied to the namespaces of the pods labelled with the queue's name."""
    tenants: dict[str, set[str]] = {}
    for it in of_kind(items, "Pod"):
        try:
            meta = section(it.obj, "metadata")
            queue = str_map(meta.get("labels"), "metadata.labels").get(RUNAI_QUEUE)
        except ItemError:
            continue  # the allocation parser reports bad pods
        if queue and isinstance(meta.get("namespace"), str):
            tenants.setdefault(queue, set()).add(meta["namespace"])
    rows = []
    for it in of_kind(items, "Queue"):
        if not str(it.obj.get("apiVersion", "")).startswith("scheduling.run.ai/"):
            continue
        try:
            meta, spec = section(it.obj, "metadata"), section(it.obj, "spec")
            gpu = section(section(spec, "resources"), "gpu")
            quota = gpu.get("quota")
            hard = None if quota is None or float(quota) < 0 else float(quota)
            name = meta.get("name")
            if not isinstance(name, str) or not name:
                raise ItemError("metadata.name is a required string")
            for tenant in sorted(tenants.get(name, ())):
                rows.append(
                    {
                        "tenant": validate_tenant(tenant),
                        "source": "runai",
                        "name": name,
                        "resource": "gpu",
                        "hard": hard,
                        "used": None,
                    }
                )
        except (ItemError, NameValidationError, TypeError, ValueError) as exc:
            issues.append(skipped(source, it.index, it.name, exc))
    return rows
