"""Triton Inference Server /metrics into engine frames (and, on request, its nv_gpu_* series into gpu_samples).

Labels: ``model``; ``version`` is the model-repository version, not the deployment's: the pod's
revision (``collectors.normalise.revision``: target label ``model_version``, the template-hash labels,
the pod's name) is the model_version, as for every other engine, so Triton rows join requests and
rollout events. ``version`` is never the model_version, not even when the pod's revision is unknown
(the model_version is null then): it stays beside it in replica = ``version/gpu_uuid`` (a pod may
serve two repository versions at once, and a model spread over two GPUs reports two series).
Units: the cumulative ``*_duration_us`` counters and ``*_summary_us`` summaries become seconds, the
``nv_inference_first_response_histogram_ms`` bounds and sum become seconds.

Tenant. Triton's own ``namespace`` label (``--model-namespacing``) is a model-repository path, never
a tenant. The tenant is the scrape target's ``namespace`` label. When both exist the exposed one was
renamed ``exported_namespace`` and ``namespace`` is the target's. When the frame has no
``exported_namespace``, ``namespace`` is taken as the target's unless it is Triton's: that shows as
a ``namespace`` on model series while Triton's model-less series (``nv_cpu_*``, ``nv_gpu_*``, which
carry every target label) have none. Such rows get no tenant and are dropped and counted.
"""

from __future__ import annotations

import polars as pl

from analytics.schema import GPU_SAMPLES, Engine, HistMetric, conform, empty
from collectors.normalise.frames import Normalised, concat, drop_unattributed
from collectors.normalise.rules import (
    EngineSpec,
    Rule,
    RuleKind,
    histogram,
    parse_engine,
    sample_key,
    scalar,
    summary,
)
from collectors.samples import NAME, TS, VALUE, label

US = 1e-6
MS = 1e-3

RULES = (
    *scalar("nv_inference_request_success", "requests_success_total"),
    *scalar("nv_inference_request_failure", "requests_failure_total"),  # summed over ``reason``
    *scalar("nv_inference_count", "inference_count_total"),
    *scalar("nv_inference_request_duration_us", "request_duration_s_total", scale=US),
    *scalar("nv_inference_queue_duration_us", "queue_duration_s_total", scale=US),
    *scalar("nv_inference_compute_infer_duration_us", "compute_infer_duration_s_total", scale=US),
    *scalar("nv_inference_pending_request_count", "requests_waiting"),
    *histogram("nv_inference_first_response_histogram_ms", HistMetric.FIRST_RESPONSE_S, scale=MS),
    # Triton's own doc sample writes buckets without ``_bucket``; a sample named like the family
    # that carries ``le`` can only be a bucket, so accept it (rows without ``le`` are dropped).
    Rule("nv_inference_first_response_histogram_ms", RuleKind.BUCKET, HistMetric.FIRST_RESPONSE_S, 1.0, MS, 1),
    *summary("nv_inference_request_summary_us", HistMetric.REQUEST_S, scale=US),
    *summary("nv_inference_queue_summary_us", HistMetric.QUEUE_S, scale=US),
    *summary("nv_inference_compute_input_summary_us", HistMetric.COMPUTE_INPUT_S, scale=US),
    *summary("nv_inference_compute_infer_summary_us", HistMetric.COMPUTE_INFER_S, scale=US),
    *summary("nv_inference_compute_output_summary_us", HistMetric.COMPUTE_OUTPUT_S, scale=US),
)

SPEC = EngineSpec(
    engine=Engine.TRITON,
    rules=RULES,
    model=("model",),
    replica=("version", "gpu_uuid"),
)

# nv_gpu_* gauges (labelled gpu_uuid only) -> gpu_samples column, with the unit factor.
GPU_FIELDS = {
    "nv_gpu_utilization": ("gpu_util_ratio", 1.0),  # already 0-1
    "nv_gpu_memory_used_bytes": ("fb_used_bytes", 1.0),
    "nv_gpu_memory_total_bytes": ("__fb_total__", 1.0),
    "nv_gpu_power_usage": ("power_w", 1.0),
    "nv_energy_consumption": ("energy_j_total", 1.0),  # J since Triton started (not mJ since boot)
    "nv_energy_consumption_total": ("energy_j_total", 1.0),
}
_MODEL_LESS = ("nv_cpu_", "nv_gpu_", "nv_energy_", "nv_pinned_")


def target_tenant(wide: pl.DataFrame) -> pl.Expr:
    """The tenant expression for a Triton frame: the target's ``namespace``, never Triton's own."""
    if "namespace" not in wide.columns or "exported_namespace" in wide.columns:
        return label(wide, "namespace")
    name = pl.col(NAME)
    model_less = pl.any_horizontal([name.str.starts_with(p) for p in _MODEL_LESS])
    ns = label(wide, "namespace")
    probe = wide.select(
        model_less.any().alias("has_model_less"),
        (model_less & ns.is_not_null()).any().alias("model_less_has_ns"),
        (~model_less & ns.is_not_null()).any().alias("model_has_ns"),
    ).row(0, named=True)
    if probe["has_model_less"] and probe["model_has_ns"] and not probe["model_less_has_ns"]:
        return pl.lit(None, dtype=pl.Utf8)  # Triton's repository path: no target namespace at all
    return ns


def parse_triton_gpu(wide: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
    """Triton's nv_gpu_* / nv_energy_consumption series as gpu_samples rows (one per GPU and scrape)."""
    key = sample_key()
    df = wide.filter(key.is_in(list(GPU_FIELDS)))
    if df.height == 0 or "gpu_uuid" not in df.columns:
        return empty(GPU_SAMPLES), {}
    fields = pl.DataFrame(
        {"__key__": list(GPU_FIELDS), "__field__": [v[0] for v in GPU_FIELDS.values()],
         "__scale__": [v[1] for v in GPU_FIELDS.values()]}
    )
    df = df.with_columns(sample_key().alias("__key__")).join(fields, on="__key__")
    index = ["ts", "cluster", "node", "gpu_uuid", "tenant", "pod"]
    df = df.select(
        pl.col(TS).alias("ts"),
        label(df, "cluster").alias("cluster"),
        label(df, "node", "instance").alias("node"),
        label(df, "gpu_uuid").alias("gpu_uuid"),
        # Model-less series never carry Triton's own namespace: ``namespace`` here is the target's.
        label(df, "namespace").alias("tenant"),
        label(df, "pod").alias("pod"),
        pl.col("__field__"),
        (pl.col(VALUE) * pl.col("__scale__")).alias("value"),
    ).filter(pl.col("gpu_uuid").is_not_null())
    if df.height == 0:
        return empty(GPU_SAMPLES), {}
    out = df.pivot(on="__field__", index=index, values="value", aggregate_function="max")
    if "__fb_total__" in out.columns:
        # Triton reports total and used; free = total - used (DCGM's FB_FREE also excludes reserved).
        used = pl.col("fb_used_bytes") if "fb_used_bytes" in out.columns else pl.lit(None, pl.Float64)
        out = out.with_columns((pl.col("__fb_total__") - used).alias("fb_free_bytes")).drop("__fb_total__")
    out = out.with_columns(pl.lit(False).alias("pod_share"))
    out, dropped = drop_unattributed(out, required=("node",), tenant_required=False)
    return conform(out, GPU_SAMPLES, fill_missing=True), dict(dropped)


def parse_triton(wide: pl.DataFrame, *, include_gpu: bool = False) -> Normalised:
    """Normalise a Triton page into engine frames; its GPU gauges too when ``include_gpu``."""
    if wide.height == 0 or NAME not in wide.columns:
        return parse_engine(wide, SPEC)
    tenant = target_tenant(wide)
    out = parse_engine(wide, SPEC, tenant=tenant)
    if not include_gpu:
        return out
    gpu, dropped = parse_triton_gpu(wide)
    return concat([out, Normalised(gpu, out.engine.clear(), out.hist.clear(), dropped)])
