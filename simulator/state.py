"""Stepping the world: route arrivals, run engines, restart pods, and keep the GPUs' physical state."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from simulator.config import FleetSpec, RestartSpec
from simulator.engine import Degradation, EngineSim
from simulator.fleet import Fleet, Gpu, Pod, Variant, app_name, stable_hex
from simulator.load import Arrivals, Request, seeded_rng
from simulator.rollout import Rollout

_BOOT_DAYS = 3.0  # GPUs booted this long before the simulation starts (energy counters since boot)
_THERMAL_TAU_S = 90.0
_INITIAL_POD_AGE_S = 3600.0  # baseline pods started an hour before the simulation


@dataclass(slots=True)
class GpuState:
    """Physical state of one GPU (or what DCGM reports for it)."""

    power_w: float
    temp_c: float
    energy_mj: float
    nvlink_total: float = 0.0
    gr: float = 0.0  # device-level graphics-engine activity 0..1
    per_grant: dict[tuple[str, int | None], float] = field(default_factory=dict)  # (pod, mig pos) -> activity


def resolve_restart(r: RestartSpec, pods: tuple[Pod, ...]) -> Pod | None:
    """A restart names a pod, or a model (its first baseline replica)."""
    for p in pods:
        if p.name == r.pod:
            return p
    return next((p for p in pods if p.model is not None and p.model.name == r.pod), None)


def activity(busy: float, running: bool) -> float:
    """Graphics-engine activity for a batch occupancy (0..1): decode keeps a GPU busy even at batch 1."""
    return 0.0 if not running else min(0.99, 0.35 + 0.64 * (1 - math.exp(-5.0 * busy)))


class FleetState:
    """The simulated world at sim time ``t`` (seconds since spec.start), advanced in fixed steps."""

    def __init__(self, spec: FleetSpec, fleet: Fleet) -> None:
        self.spec, self.fleet = spec, fleet
        self.t = 0.0
        self.epoch = spec.start.timestamp()
        self.start_hour = spec.start.hour + spec.start.minute / 60 + spec.start.second / 3600
        self.arrivals = {
            m.name: Arrivals(spec.seed, m, spec.load_factor, self.start_hour) for m in spec.models
        }
        self.routers = {m.name: seeded_rng(spec.seed, f"route/{m.name}") for m in spec.models}
        self.rollout: Rollout | None = None
        reg = spec.regression
        canary_deg = Degradation(
            1 + reg.ttft_regression_pct / 100, 1 + reg.itl_regression_pct / 100, reg.error_rate_add
        )
        if spec.canary is not None:
            cpods = [p for p in fleet.engine_pods if p.variant is Variant.CANARY]
            bpods = [
                p
                for p in fleet.engine_pods
                if p.variant is Variant.BASELINE and p.model is not None and p.model.name == spec.canary.model
            ]
            self.rollout = Rollout(
                spec.canary,
                app_name(spec.canary.model),
                f"{cpods[0].app}-{cpods[0].template_hash}",
                f"{bpods[0].app}-{bpods[0].template_hash}",
                cpods[0].template_hash,
                len(bpods),
            )
        self.engines: dict[str, EngineSim] = {}
        warm = spec.canary.warmup_s if spec.canary else 120.0
        for p in fleet.engine_pods:
            assert p.model is not None
            deg = canary_deg if p.variant is Variant.CANARY else Degradation()
            started = p.start_s if p.start_s > 0 else -_INITIAL_POD_AGE_S
            self.engines[p.name] = EngineSim(spec.seed, p.name, p.model, deg, started, warm, self.epoch)
        self.restarts: list[tuple[float, Pod]] = sorted(
            (r.at_s, p) for r in spec.restarts if (p := resolve_restart(r, fleet.engine_pods)) is not None
        )
        self.restart_count: dict[str, int] = dict.fromkeys(self.engines, 0)
        self.down_until: dict[str, float] = {}
        self.gpus: dict[tuple[str, int], GpuState] = {}
        for g in fleet.gpus:
            jitter = int(stable_hex(spec.seed, "boot", g.uuid, n=6), 16) / 0xFFFFFF
            e0 = g.product.idle_w * (1.2 + 0.3 * jitter) * _BOOT_DAYS * 86400 * 1000
            self.gpus[g.key] = GpuState(g.product.idle_w, 32.0 + 3 * jitter, e0)
        self.pods_by_gpu: dict[tuple[str, int], list[tuple[Pod, int | None, float | None]]] = {}
        for p in fleet.engine_pods:
            for gr in p.grants:
                self.pods_by_gpu.setdefault(gr.gpu.key, []).append((p, gr.mig_instance, gr.fraction))
        self.energy_base: dict[tuple[str, tuple[str, int]], float] = {}
        for p in fleet.engine_pods:
            if p.start_s <= 0:
                self._mark_energy(p, pre_s=_INITIAL_POD_AGE_S)
        self.records: deque[Request] = deque()
        self.noise = seeded_rng(spec.seed, "gpu-noise")

    # ------------------------------------------------------------------ queries

    def exists(self, p: Pod) -> bool:
        """Whether the pod has been created by the current time."""
        return p.start_s <= self.t

    def alive(self, p: Pod, t: float) -> bool:
        """Created and not inside a restart's downtime."""
        return p.start_s <= t and self.down_until.get(p.name, -1.0) <= t

    def weight(self, t: float) -> int:
        """The canary's traffic weight at ``t``."""
        return self.rollout.weight(t) if self.rollout else 0

    # ------------------------------------------------------------------ stepping

    def advance_to(self, t: float) -> None:
        """Step until the next step would pass ``t`` (sim seconds since start)."""
        dt = self.spec.step_s
        while self.t + dt <= t + 1e-9:
            self._step(self.t, dt)
            self.t = round(self.t + dt, 9)

    def _step(self, t0: float, dt: float) -> None:
        t1 = t0 + dt
        ended: list[Request] = []
        while self.restarts and self.restarts[0][0] < t1:
            at, pod = self.restarts.pop(0)
            for r in self.engines[pod.name].restart(at):
                r.finish, r.status, r.flags, r.counted = at, 503, "UC", False
                ended.append(r)
            self.restart_count[pod.name] += 1
            self._mark_energy(pod)
            self.down_until[pod.name] = at + self.spec.restart_downtime_s
        for p in self.fleet.engine_pods:
            if t0 <= p.start_s < t1 and p.start_s > 0:
                self._mark_energy(p)
        w = self.weight(t0)
        for m in self.spec.models:
            reqs = self.arrivals[m.name].draw(t0, dt)
            if reqs:
                ended += self._route(m.name, reqs, w, t0)
        for p in self.fleet.engine_pods:
            if p.start_s <= t0:
                ended += self.engines[p.name].step(t0, dt, self.spec.client_timeout_s)
        self._physics(dt)
        ended.sort(key=lambda r: (r.finish, r.rid))
        self.records.extend(ended)
        horizon = t1 - self.spec.log_retention_s
        while self.records and self.records[0].finish < horizon:
            self.records.popleft()

    def _route(self, model: str, reqs: list[Request], w: int, t0: float) -> list[Request]:
        """Send each request to a pod as the gateway would; return the ones the gateway answered itself."""
        pods = [p for p in self.fleet.engine_pods if p.model is not None and p.model.name == model]
        base = [p for p in pods if p.variant is Variant.BASELINE and self.alive(p, t0)]
        canary = [p for p in pods if p.variant is Variant.CANARY and self.alive(p, t0)]
        rng = self.routers[model]
        shed: list[Request] = []
        for r in reqs:
            to_canary = bool(canary) and (not base or rng.random() * 100 < w) and w > 0
            group = canary if to_canary else base
            variant = Variant.CANARY if to_canary else Variant.BASELINE
            if w >= 100 and canary:
                group, variant = canary, Variant.CANARY
            sample = pods[0]
            r.variant = variant.value if any(p.variant is Variant.CANARY for p in pods) else "none"
            r.upstream = f"outbound|8000|{variant.value}|{sample.app}.{sample.namespace}.svc.cluster.local"
            if not group:
                r.finish, r.status, r.flags = r.arrival + 0.001, 503, "UH"
                shed.append(r)
                continue
            pod = group[int(rng.integers(len(group)))]
            r.model_version = pod.template_hash
            eng = self.engines[pod.name]
            if eng.queue_len >= self.spec.max_queue_per_seq * eng.model.max_num_seqs:
                r.finish, r.status, r.flags = r.arrival + 0.002, 503, "UO"
                shed.append(r)
                continue
            r.pod = pod.name
            eng.enqueue(r)
        return shed

    def _physics(self, dt: float) -> None:
        """Power, temperature, energy and activity of every GPU from the pods on it."""
        decay = 1 - math.exp(-dt / _THERMAL_TAU_S)
        for g in self.fleet.gpus:
            s = self.gpus[g.key]
            s.per_grant = {}
            users = [u for u in self.pods_by_gpu.get(g.key, []) if u[0].start_s <= self.t + dt]
            device = 0.0
            for pod, mig, frac in users:
                if not self.alive(pod, self.t + dt):
                    act = 0.0
                else:
                    e = self.engines[pod.name]
                    act = activity(e.busy, e.stats.running > 0 or e.last_prefill_tokens > 0)
                s.per_grant[(pod.name, mig)] = act
                if mig is not None:
                    device += act * int(g.mig_profiles[mig][0]) / 7.0
                elif frac is not None:
                    device += act * frac
                else:
                    device = max(device, act)
            s.gr = min(0.99, device)
            loaded = 0.08 if users else 0.0
            jitter = 1 + 0.01 * float(self.noise.standard_normal())
            p = g.product
            s.power_w = max(
                p.idle_w * 0.9, (p.idle_w + (p.tdp_w - p.idle_w) * (loaded + 0.85 * s.gr)) * jitter
            )
            s.energy_mj += s.power_w * dt * 1000.0
            s.temp_c += (28.0 + 0.085 * s.power_w - s.temp_c) * decay
            if any(len(pod.grants) > 1 for pod, _, _ in users):
                s.nvlink_total += (
                    s.gr * 4.0e5 * dt
                )  # NVLink counter units per second under tensor parallelism

    def _mark_energy(self, pod: Pod, pre_s: float = 0.0) -> None:
        """Remember each GPU's energy when the pod's process starts (Triton reports J since its start)."""
        for gr in pod.grants:
            g = self.gpus[gr.gpu.key]
            self.energy_base[(pod.name, gr.gpu.key)] = (
                g.energy_mj - gr.gpu.product.idle_w * 1.1 * pre_s * 1000
            )

    def energy_since_start(self, pod: str, gpu: tuple[str, int]) -> float:
        """Joules the GPU used since the pod's process started."""
        return (
            self.gpus[gpu].energy_mj - self.energy_base.get((pod, gpu), self.gpus[gpu].energy_mj)
        ) / 1000.0

    # ------------------------------------------------------------------ per-GPU views for renderers

    def gpu_users(self, g: Gpu) -> list[tuple[Pod, int | None, float | None]]:
        """The engine pods holding a share of ``g`` that exist now."""
        return [u for u in self.pods_by_gpu.get(g.key, []) if self.exists(u[0])]
