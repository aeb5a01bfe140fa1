"""The canary rollout's timeline: traffic weight over time and the Argo Rollouts events it emits."""

from __future__ import annotations

from dataclasses import dataclass

from simulator.config import CanaryOutcome, CanarySpec


@dataclass(frozen=True, slots=True)
class RolloutEvent:
    """One event the Argo Rollouts controller (or the kubelet) records."""

    t: float  # sim seconds since start
    reason: str
    message: str
    type: str = "Normal"  # Normal | Warning
    component: str = "rollouts-controller"


@dataclass(frozen=True, slots=True)
class Rollout:
    """The weight steps of one canary and the events along them."""

    spec: CanarySpec
    rollout_name: str
    canary_rs: str
    stable_rs: str
    canary_hash: str
    baseline_replicas: int

    @property
    def end_s(self) -> float:
        """When the last step's pause ends (the promote/abort moment)."""
        return self.spec.start_s + len(self.spec.weight_steps) * self.spec.step_duration_s

    def weight(self, t: float) -> int:
        """Canary traffic weight (0-100) in effect at sim time ``t``."""
        s = self.spec
        if t < s.start_s:
            return 0
        i = int((t - s.start_s) // s.step_duration_s)
        if i < len(s.weight_steps):
            return s.weight_steps[i]
        return {CanaryOutcome.PROMOTE: 100, CanaryOutcome.ABORT: 0}.get(s.outcome, s.weight_steps[-1])

    def events(self) -> list[RolloutEvent]:
        """Every event of the rollout, in time order (Argo message formats, research/telemetry.md §6)."""
        s, n = self.spec, self.spec.revision
        total = 2 * len(s.weight_steps)
        ev = [
            RolloutEvent(s.start_s, "RolloutUpdated", f"Rollout updated to revision {n}"),
            RolloutEvent(
                s.start_s, "NewReplicaSetCreated", f"Created ReplicaSet {self.canary_rs} (revision {n})"
            ),
            RolloutEvent(
                s.start_s,
                "ScalingReplicaSet",
                f"Scaled up ReplicaSet {self.canary_rs} (revision {n}) from 0 to {len(s.replicas)}",
            ),
        ]
        prev = 0
        pause = f"{int(s.step_duration_s)}s"
        for i, w in enumerate(s.weight_steps):
            t = s.start_s + i * s.step_duration_s
            ev.append(RolloutEvent(t, "TrafficWeightUpdated", f"Traffic weight updated from {prev} to {w}"))
            ev.append(
                RolloutEvent(
                    t, "RolloutStepCompleted", f"Rollout step {2 * i + 1}/{total} completed (setWeight: {w})"
                )
            )
            ev.append(RolloutEvent(t, "RolloutPaused", "Rollout is paused (CanaryPauseStep)"))
            prev = w
            last = i == len(s.weight_steps) - 1
            if last and s.outcome is CanaryOutcome.HOLD:
                break
            if last and s.outcome is CanaryOutcome.ABORT:
                break
            t_end = t + s.step_duration_s
            ev.append(RolloutEvent(t_end, "RolloutResumed", "Rollout is resumed"))
            ev.append(
                RolloutEvent(
                    t_end,
                    "RolloutStepCompleted",
                    f"Rollout step {2 * i + 2}/{total} completed (pause: {pause})",
                )
            )
        t = self.end_s
        if s.outcome is CanaryOutcome.PROMOTE:
            ev += [
                RolloutEvent(t, "TrafficWeightUpdated", f"Traffic weight updated from {prev} to 100"),
                RolloutEvent(
                    t,
                    "RolloutCompleted",
                    f"Rollout completed update to revision {n} "
                    f"({self.canary_hash}): Completed all {total} canary steps",
                ),
                RolloutEvent(
                    t,
                    "ScalingReplicaSet",
                    f"Scaled down ReplicaSet {self.stable_rs} (revision {n - 1}) "
                    f"from {self.baseline_replicas} to 0",
                ),
            ]
        elif s.outcome is CanaryOutcome.ABORT:
            ev += [
                RolloutEvent(t, "RolloutAborted", f"Rollout aborted update to revision {n}", "Warning"),
                RolloutEvent(t, "TrafficWeightUpdated", f"Traffic weight updated from {prev} to 0"),
                RolloutEvent(
                    t,
                    "ScalingReplicaSet",
                    f"Scaled down ReplicaSet {self.canary_rs} (revision {n}) from {len(s.replicas)} to 0",
                ),
            ]
        return ev
