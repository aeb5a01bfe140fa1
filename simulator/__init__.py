"""The embedded simulated fleet: a deterministic stand-in for the world, served over real HTTP on loopback.

Ports: one ``http://127.0.0.1:<port>/metrics`` per target (one per node's dcgm-exporter, one per engine
pod). Ports are free ports chosen at ``start()`` unless ``FleetSpec.base_port`` is set (then base_port + i
in target order). Every pod's ``status.podIP`` is 127.0.0.1 and its container port is its /metrics port,
so an ``IP:port -> pod`` map resolves a scrape target to its pod.

Time: a ``SimClock`` maps wall time to sim time (or is moved by hand); the world advances in fixed
``step_s`` steps up to the time asked for, so pages depend only on the seed and the sim time.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Self

from analytics.errors import FleetlensError
from collectors.samples import SourceFormat
from collectors.targets import Target
from simulator.clock import SimClock
from simulator.config import EngineKind, FleetSpec, build_fleet_spec, default_fleet_spec, validate_spec
from simulator.dcgm import render_dcgm
from simulator.fleet import Fleet, Pod, build_fleet
from simulator.kube import events_list, nodes_list, pods_list
from simulator.load import Request
from simulator.otlp import write_otlp
from simulator.requests_log import select, write_jsonl
from simulator.server import TargetServers
from simulator.state import FleetState
from simulator.triton import render_triton
from simulator.vllm import render_vllm

__all__ = ["FleetSpec", "SimClock", "Simulation", "SimulatorError", "build_fleet_spec", "default_fleet_spec"]


class SimulatorError(FleetlensError):
    """The simulation was asked for something it cannot give (unknown target, pod not created yet)."""


class Simulation:
    """A running (or manually stepped) simulated fleet."""

    def __init__(
        self, spec: FleetSpec | None = None, *, clock: SimClock | None = None, manual: bool = False
    ) -> None:
        self.spec = spec or default_fleet_spec()
        validate_spec(self.spec)
        self.clock = clock or SimClock(self.spec.start, self.spec.speed, manual=manual)
        self.fleet: Fleet = build_fleet(self.spec)
        self.state = FleetState(self.spec, self.fleet)
        self._lock = threading.RLock()
        self._pods = {p.target_id: p for p in self.fleet.pods}
        self._servers: TargetServers | None = None
        self._stopped = threading.Event()
        base = self.spec.base_port
        self.ports: dict[str, int] = {tid: (base + i if base else 0) for i, tid in enumerate(self._pods)}

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Simulation:
        """Bind every target's HTTP server on 127.0.0.1 and start the clock."""
        with self._lock:
            if self._servers is None:
                servers = TargetServers(self._page)
                self.ports = servers.start(dict(self.ports))
                self._servers = servers
                self._stopped.clear()
                self.clock.run()
        return self

    def stop(self) -> None:
        """Stop every server (idempotent)."""
        with self._lock:
            if self._servers is not None:
                self._servers.stop()
                self._servers = None
                self.clock.pause()
            self._stopped.set()

    def serve_forever(self) -> None:
        """Start (if needed) and block until ``stop()`` is called from another thread."""
        self.start()
        self._stopped.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the HTTP servers are up."""
        return self._servers is not None

    # ------------------------------------------------------------------ time

    def _seconds(self, t: datetime | float) -> float:
        return (t - self.spec.start).total_seconds() if isinstance(t, datetime) else float(t)

    def advance_to(self, t: datetime | float) -> None:
        """Step the world up to ``t`` (a datetime or sim seconds since start); earlier times are a no-op."""
        with self._lock:
            self.state.advance_to(self._seconds(t))

    def sync(self) -> None:
        """Step the world up to the clock's current time."""
        self.advance_to(self.clock.seconds())

    @property
    def now(self) -> datetime:
        """The sim time the world has been stepped to."""
        return self.spec.start + timedelta(seconds=self.state.t)

    # ------------------------------------------------------------------ discovery and pages

    def _job(self, p: Pod) -> SourceFormat:
        if p.engine is None:
            return SourceFormat.DCGM
        return SourceFormat.TRITON if p.engine is EngineKind.TRITON else SourceFormat.VLLM

    @property
    def pods(self) -> dict[str, Pod]:
        """Every pod (created or not yet) by target id."""
        return dict(self._pods)

    def target_ids(self) -> list[str]:
        """Ids of targets that exist at the current sim time (exporters first)."""
        return [tid for tid, p in self._pods.items() if self.state.exists(p)]

    def targets(self) -> list[Target]:
        """Scrape targets with Prometheus-SD-style labels, for pods created by the current sim time."""
        if any(port == 0 for port in self.ports.values()):
            raise SimulatorError("targets() needs bound ports: call start() first or set FleetSpec.base_port")
        out = []
        for tid in self.target_ids():
            p = self._pods[tid]
            port = self.ports[tid]
            labels = {
                "cluster": self.spec.cluster,
                "namespace": p.namespace,
                "pod": p.name,
                "node": p.node,
                "container": p.container,
                "instance": f"127.0.0.1:{port}",
            }
            if p.engine is not None:
                labels["model_version"] = p.template_hash
            out.append(Target(self._job(p), f"http://127.0.0.1:{port}/metrics", labels))
        return out

    def render(self, target_id: str) -> str:
        """The /metrics page of ``target_id`` at the world's current sim time (does not advance time)."""
        with self._lock:
            p = self._pods.get(target_id)
            if p is None:
                raise SimulatorError(f"unknown target {target_id!r}")
            if not self.state.exists(p):
                raise SimulatorError(f"pod {p.name} does not exist yet at sim time {self.state.t:.0f}s")
            if p.engine is None:
                return render_dcgm(self.state, p.node)
            engine = self.state.engines[p.name]
            if p.engine is EngineKind.TRITON:
                return render_triton(self.state, p, engine)
            return render_vllm(engine)

    def _page(self, target_id: str) -> tuple[int, str]:
        with self._lock:
            if not self.clock.manual:
                self.sync()
            try:
                return 200, self.render(target_id)
            except SimulatorError as e:
                return 503, f"{e}\n"

    # ------------------------------------------------------------------ Kubernetes and files

    def pods_json(self) -> dict[str, Any]:
        """``kubectl get pods -A -o json`` now."""
        with self._lock:
            return pods_list(self.state, self.ports)

    def nodes_json(self) -> dict[str, Any]:
        """``kubectl get nodes -o json``."""
        with self._lock:
            return nodes_list(self.state)

    def events_json(self) -> dict[str, Any]:
        """``kubectl get events -A -o json`` now."""
        with self._lock:
            return events_list(self.state)

    def write_kubernetes(self, path: str | Path) -> None:
        """Pods and nodes as one ``kind: List`` (what ``kubectl get pods,nodes -A -o json`` prints)."""
        pods, nodes = self.pods_json(), self.nodes_json()
        doc = {**pods, "items": pods["items"] + nodes["items"]}
        Path(path).write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n", encoding="utf-8")

    def write_events(self, path: str | Path) -> None:
        """The rollout's (and kubelet's) events so far, as core/v1 Event list JSON."""
        Path(path).write_text(json.dumps(self.events_json(), indent=2) + "\n", encoding="utf-8")

    def requests(self, start: datetime | float, end: datetime | float) -> list[Request]:
        """Requests that ended in [start, end) (kept for ``FleetSpec.log_retention_s``)."""
        with self._lock:
            return select(self.state.records, self._seconds(start), self._seconds(end))

    def write_request_log(self, path: str | Path, start: datetime | float, end: datetime | float) -> int:
        """The gateway's JSONL access log of requests that ended in [start, end); returns the line count."""
        with self._lock:
            return write_jsonl(self.state, path, self._seconds(start), self._seconds(end), self._host_of)

    def write_otlp_traces(self, path: str | Path, start: datetime | float, end: datetime | float) -> int:
        """The engines' GenAI spans (OTLP JSON lines) for requests that ended in [start, end); returns the span count."""
        with self._lock:
            return write_otlp(self.state, path, self._seconds(start), self._seconds(end))

    def _host_of(self, pod_name: str) -> str | None:
        for tid, p in self._pods.items():
            if p.name == pod_name:
                return f"127.0.0.1:{self.ports[tid]}"
        return None
