"""The embedded demo: run the simulated fleet, collect every stream from it as production would, store it all."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from collectors.kube.pod_model import PodIndex
from collectors.metrics.rounds import ScrapeBatch
from collectors.targets import Target
from fleetlens.ingest import IngestReport, ingest_events, ingest_kubernetes, ingest_requests
from fleetlens.pipeline import CollectSummary, collect_rounds
from simulator import FleetSpec, Simulation

KUBE_SNAPSHOT_S = 60.0  # how often the demo "runs kubectl get pods,nodes" for allocations


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What the demo collected: scrape summary, file-stream report, the window covered, raw files folder."""

    collect: CollectSummary
    ingest: IngestReport
    start: datetime
    end: datetime
    raw_dir: Path


def kubernetes_doc(sim: Simulation) -> dict[str, Any]:
    """``kubectl get pods,nodes -A -o json`` of the simulated cluster now."""
    return {"apiVersion": "v1", "kind": "List",
            "items": sim.pods_json()["items"] + sim.nodes_json()["items"]}


def run_demo(spec: FleetSpec, *, root: Path, minutes: float, interval_s: float = 15.0,
             on_round: Callable[[int], None] | None = None) -> DemoResult:
    """Scrape the simulated fleet for ``minutes`` simulated minutes, then ingest its logs, events and pod lists."""
    rounds = max(1, int(minutes * 60 / interval_s))
    report = IngestReport()
    raw = root / "raw"

    with Simulation(spec, manual=True) as sim:
        start = sim.now
        pods: list[PodIndex] = []
        last_snapshot: list[float] = []

        def targets() -> list[Target]:
            sim.sync()  # pods come and go (the canary appears mid-run): rediscover every round
            return sim.targets()

        def after_round(i: int, _batch: ScrapeBatch) -> None:
            t = (sim.now - start).total_seconds()
            if not last_snapshot or t - last_snapshot[-1] >= KUBE_SNAPSHOT_S:
                last_snapshot.append(t)
                pods.append(ingest_kubernetes(root, kubernetes_doc(sim), source="kubectl get pods,nodes",
                                              ts=sim.now, cluster=spec.cluster, report=report))
            if on_round is not None:
                on_round(i)

        summary = collect_rounds(
            targets, root=root, rounds=rounds, interval_s=interval_s, clock=sim.clock.now,
            sleep=sim.clock.advance, cluster=spec.cluster, after_round=after_round,
        )
        end = sim.now
        doc = kubernetes_doc(sim)
        write_sim_files(sim, raw, start, end)
    final_pods = ingest_kubernetes(root, doc, source=str(raw / "kubernetes.json"), ts=end, cluster=spec.cluster,
                                   report=report)
    ingest_events(root, [raw / "events.json"], pods=final_pods, pods_doc=doc, report=report)
    ingest_requests(root, [raw / "requests.jsonl"], [], pods=final_pods, report=report)
    return DemoResult(summary, report, start, end, raw)


def write_sim_files(sim: Simulation, folder: Path, start: datetime, end: datetime) -> None:
    """The simulated request log, OTLP traces, rollout events and pod/node lists, as files a user would have."""
    folder.mkdir(parents=True, exist_ok=True)
    sim.write_request_log(folder / "requests.jsonl", start, end)
    sim.write_otlp_traces(folder / "traces.jsonl", start, end)
    sim.write_events(folder / "events.json")
    (folder / "kubernetes.json").write_text(json.dumps(kubernetes_doc(sim), indent=1, sort_keys=True))
