"""Wiring for the file-borne streams: request logs, OTLP traces, rollout events, pod/node lists -> data sets.

Each ``ingest_*`` reads its files through the collectors, writes the rows to the store and records
every bad line or item as a ``Problem`` (source, and line or item) in an ``IngestReport``: the good rows
are always kept.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from analytics.errors import InputError, Problem
from analytics.schema import ALLOCATIONS, DEPLOYMENTS, ENGINE_SAMPLES, INVENTORY, QUOTAS, REQUESTS, Dataset
from collectors.kube.allocations import parse_allocations
from collectors.kube.nodes import parse_inventory, parse_nodes
from collectors.kube.pod_model import PodIndex
from collectors.kube.pods import parse_pod_list
from collectors.kube.quotas import parse_quotas
from collectors.kube.workloads import build_workload_index
from collectors.requests.gateway_logs import fetch_gateway_log
from collectors.requests.otlp_traces import fetch_otlp_traces
from collectors.rollouts.events import parse_k8s_events
from collectors.rollouts.warmup import parse_pod_warmup
from collectors.store.datasets import read_dataset, write_dataset
from fleetlens.text_files import read_utf8


@dataclass(slots=True)
class IngestReport:
    """Rows written per data set and every problem met, none fatal."""

    rows: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    lines_read: int = 0

    def write(self, root: Path, ds: Dataset, frame: pl.DataFrame) -> None:
        """Write ``frame`` (if it has rows) and count them."""
        if frame.height:
            write_dataset(root, ds, frame)
            self.rows[ds.name] = self.rows.get(ds.name, 0) + frame.height


def read_json(path: Path) -> Any:
    """A JSON document from a file, with a typed error naming the file and line."""
    text = read_utf8(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(str(path), exc.lineno, f"not JSON: {exc.msg}") from exc


def ingest_kubernetes(root: Path, doc: Mapping[str, Any], *, source: str, ts: datetime, cluster: str,
                      report: IngestReport) -> PodIndex:
    """A ``kubectl get pods,nodes -A -o json`` snapshot -> allocations, inventory, quotas; returns the pods."""
    nodes = parse_nodes(doc, source=source)
    allocations = parse_allocations(doc, source=source, ts=ts, cluster=cluster, nodes=nodes)
    report.problems += allocations.issues
    report.write(root, ALLOCATIONS, allocations.frame)
    report.write(root, INVENTORY, parse_inventory(doc, source=source, ts=ts, cluster=cluster))
    quotas = parse_quotas(doc, source=source, ts=ts, cluster=cluster)
    report.problems += quotas.issues
    report.write(root, QUOTAS, quotas.frame)
    pods = parse_pod_list(_only(doc, "Pod"), source=source)
    report.problems += pods.issues
    return pods


def _only(doc: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """The items of one kind from a mixed ``kind: List``."""
    items = [i for i in doc.get("items", []) if not isinstance(i, Mapping) or i.get("kind", kind) == kind]
    return {"apiVersion": "v1", "kind": "List", "items": items}


def pod_models(root: Path) -> dict[tuple[str, str], str]:
    """(namespace, pod) -> model, as the engines report it in ``engine_samples``."""
    frame = read_dataset(root, ENGINE_SAMPLES).select("tenant", "pod", "model").unique().collect()
    return {(t, p): m for t, p, m in frame.iter_rows() if t and p and m}


def ingest_events(root: Path, paths: Iterable[Path], *, pods: PodIndex | None, pods_doc: Mapping[str, Any] | None,
                  report: IngestReport) -> None:
    """``kubectl get events -A -o json`` files (and pod readiness) -> deployments."""
    workloads = build_workload_index(pods, pod_models(root)) if pods is not None else None
    batches = [parse_k8s_events(read_json(p), source=str(p), workloads=workloads) for p in paths]
    if pods_doc is not None and workloads is not None:
        batches.append(parse_pod_warmup(pods_doc, source="pods", workloads=workloads))
    for batch in batches:
        report.problems += batch.issues
        report.write(root, DEPLOYMENTS, batch.deployments)


def ingest_requests(root: Path, gateway_logs: Sequence[Path], otlp_files: Sequence[Path], *,
                    pods: PodIndex | None, report: IngestReport) -> None:
    """Gateway access logs (JSONL) and OTLP JSON trace files -> requests."""
    batches = [fetch_gateway_log(p, pods=pods) for p in gateway_logs]
    batches += [fetch_otlp_traces(p, pods=pods) for p in otlp_files]
    for batch in batches:
        report.lines_read += batch.total_lines
        report.problems += batch.bad_lines
        report.write(root, REQUESTS, batch.requests)
