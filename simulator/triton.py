"""Triton Inference Server's /metrics (port 8002), rendered the way prometheus-cpp's TextSerializer writes it."""

from __future__ import annotations

import math
from collections.abc import Callable

from simulator.engine import EngineSim
from simulator.fleet import Pod
from simulator.state import FleetState
from simulator.stats import TRITON_FAILURE_REASONS

MODEL_VERSION = "1"  # the Triton model-repository version directory

# (family, type, help, counter key) in triton-inference-server/core src/metrics.cc registration order.
_COUNTERS = (
    ("nv_inference_request_success", "Number of successful inference requests, all batch sizes"),
    ("nv_inference_request_failure", "Number of failed inference requests, all batch sizes"),
    ("nv_inference_count", "Number of inferences performed (does not include cached requests)"),
    ("nv_inference_exec_count", "Number of model executions performed (does not include cached requests)"),
    (
        "nv_inference_request_duration_us",
        "Cumulative inference request duration in microseconds (includes cached requests)",
    ),
    (
        "nv_inference_queue_duration_us",
        "Cumulative inference queuing duration in microseconds (includes cached requests)",
    ),
    (
        "nv_inference_compute_input_duration_us",
        "Cumulative compute input duration in microseconds (does not include cached requests)",
    ),
    (
        "nv_inference_compute_infer_duration_us",
        "Cumulative compute inference duration in microseconds (does not include cached requests)",
    ),
    (
        "nv_inference_compute_output_duration_us",
        "Cumulative inference compute output duration in microseconds (does not include cached requests)",
    ),
)


def fmt(v: float) -> str:
    """prometheus-cpp's number format (precision max_digits10 - 1, default float notation)."""
    if math.isnan(v):
        return "Nan"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return f"{v:.16g}"


def _labels(pairs: dict[str, str]) -> str:
    return ",".join(f'{k}="{v}"' for k, v in sorted(pairs.items()))


def _family(name: str, typ: str, help_text: str, lines: list[str]) -> str:
    return f"# HELP {name} {help_text}\n# TYPE {name} {typ}\n" + "".join(f"{x}\n" for x in lines)


def render_triton(state: FleetState, pod: Pod, engine: EngineSim) -> str:
    """One Triton pod's /metrics page: per-model counters, pending count, first-response histogram, GPU."""
    st = engine.stats
    assert pod.model is not None
    uuid = pod.grants[0].gpu.uuid
    base = {"model": pod.model.name, "version": MODEL_VERSION, "gpu_uuid": uuid}
    key = _labels(base)
    c = st.counters
    values = {
        "nv_inference_request_success": st.success["stop"],
        "nv_inference_count": c["inference_count"],
        "nv_inference_exec_count": c["exec_count"],
        "nv_inference_request_duration_us": c["request_duration_us"],
        "nv_inference_queue_duration_us": c["queue_duration_us"],
        "nv_inference_compute_input_duration_us": c["compute_input_duration_us"],
        "nv_inference_compute_infer_duration_us": c["compute_infer_duration_us"],
        "nv_inference_compute_output_duration_us": c["compute_output_duration_us"],
    }
    out = []
    for name, help_text in _COUNTERS:
        if name == "nv_inference_request_failure":
            lines = [
                f"{name}{{{_labels({**base, 'reason': r})}}} {fmt(st.failure[r])}"
                for r in TRITON_FAILURE_REASONS
            ]
        else:
            lines = [f"{name}{{{key}}} {fmt(values[name])}"]
        out.append(_family(name, "counter", help_text, lines))
    out.append(
        _family(
            "nv_inference_pending_request_count",
            "gauge",
            "Instantaneous number of pending requests awaiting execution per-model.",
            [f"nv_inference_pending_request_count{{{key}}} {fmt(st.waiting)}"],
        )
    )
    h = st.hists["first_response_histogram_ms"]
    hname = "nv_inference_first_response_histogram_ms"
    lines = [f"{hname}_count{{{key}}} {fmt(h.count)}", f"{hname}_sum{{{key}}} {fmt(h.total)}"]
    lines += [f'{hname}_bucket{{{key},le="{fmt(le)}"}} {fmt(cum)}' for le, cum in h.cumulative()]
    out.append(_family(hname, "histogram", "Duration from request to first response in milliseconds", lines))
    out.append(_gpu_families(state, pod, engine))
    return "".join(out)


# (name, type, HELP, value of a row (labels, util, total B, used B, W, limit W, J)) as Triton prints them.
_GPU_FAMILIES: tuple[tuple[str, str, str, Callable[[tuple], float]], ...] = (
    ("nv_gpu_utilization", "gauge", "GPU utilization rate [0.0 - 1.0)", lambda r: round(r[1], 2)),
    ("nv_gpu_memory_total_bytes", "gauge", "GPU total memory, in bytes", lambda r: r[2]),
    ("nv_gpu_memory_used_bytes", "gauge", "GPU used memory, in bytes", lambda r: r[3]),
    ("nv_gpu_power_usage", "gauge", "GPU power usage in watts", lambda r: round(r[4], 3)),
    ("nv_gpu_power_limit", "gauge", "GPU power management limit in watts", lambda r: r[5]),
    ("nv_energy_consumption", "counter", "GPU energy consumption in joules since the Triton Server started",
     lambda r: round(r[6], 3)),
)


def _gpu_families(state: FleetState, pod: Pod, engine: EngineSim) -> str:
    """nv_gpu_* gauges and nv_energy_consumption (J since this Triton process started) per visible GPU."""
    rows = []
    for grant in pod.grants:
        g = grant.gpu
        s = state.gpus[g.key]
        lab = f'gpu_uuid="{g.uuid}"'
        used = int(g.product.memory_mib * (0.85 + 0.05 * s.gr)) * 1024 * 1024
        since = state.energy_since_start(pod.name, g.key)
        rows.append((lab, s.gr, g.product.memory_mib * 1024 * 1024, used, s.power_w, g.product.tdp_w, since))
    out = [
        _family(name, typ, help_text, [f"{name}{{{r[0]}}} {fmt(value(r))}" for r in rows])
        for name, typ, help_text, value in _GPU_FAMILIES
    ]
    return "".join(out)
