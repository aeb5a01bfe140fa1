"""NVIDIA dcgm-exporter /metrics into gpu_samples: one row per GPU or MIG slice (and per pod share).

Identity. GPU: ``UUID`` (``uuid`` with ``--use-old-namespace``). Host: ``Hostname`` (<= 4.8.2) or
``hostname`` (later), else the target's ``node``, else ``instance``. Model: ``modelName`` (or the
lowercased / NVLink spellings). MIG: ``GPU_I_PROFILE``/``GPU_I_ID`` (or lowercased by a managed
backend); a slice is keyed (node, parent UUID, GPU_I_ID). ``*_UTIL`` does not exist on MIG, so
``gpu_util_ratio`` is null on slices (use ``gr_engine_active_ratio``). Series without a GPU UUID
(NVLink, NVSwitch, CPU entities) are ignored.

Workload labels, decided once per frame (:func:`workload_labels`):

1. ``pod_name``/``pod_namespace``/``container_name`` present (old namespace, ``-o``): those are the
   workload; they never collide with target labels, so a ``namespace`` beside them is the target's.
2. else ``exported_namespace``/``exported_pod``/``exported_container`` present with a value, or the
   caller says it attached ``namespace``/``pod``/``container`` target labels: the scrape renamed the
   workload labels (``honor_labels: false``), so ``namespace``/``pod``/``container`` are the
   exporter's own and are never used; a GPU without ``exported_pod`` is idle. Deciding per frame,
   not per row, is what keeps an idle GPU (which has no ``exported_*``) out of the exporter's
   namespace. The one case the frame cannot show is a frame in which *every* GPU is idle: pass
   ``target_labels`` then (fleetlens's scraper knows what it attached).
3. else ``namespace``/``pod``/``container`` are the workload's.

An empty or absent pod means no tenant (tenant null). Values: ``*_UTIL`` percent -> ratio, FB MiB
-> bytes, energy mJ -> J; the DCGM blank sentinels (already null from the parser, or still numeric
from another source) stay null, never 0.

Time-slicing with ``--kubernetes-virtual-gpus`` (``transformation/kubernetes.go`` and
``process_metrics.go`` upstream): a GPU held by pods keeps a device-level series (no pod) for the
per-process fields (``GPU_UTIL``, ``FB_USED``) plus one series per pod with that pod's share, while
every other field is emitted once per holding pod with the same device value (with a ``vgpu``
label when the device plugin shares the GPU). Such a *split* device (several holders, a ``vgpu``
label, or a field with both a device and a per-pod series) becomes one ``pod_share=false`` row with
the device values (each field from its device series, else from the identical per-pod copies) plus
one ``pod_share=true`` row per pod carrying only the genuinely split fields. Summing
``pod_share=false`` rows therefore never double counts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import polars as pl

from analytics.schema import GPU_SAMPLES, conform, empty
from collectors.normalise.frames import drop_unattributed
from collectors.samples import NAME, TS, VALUE, label

log = logging.getLogger(__name__)

MIB = 1024.0 * 1024.0
# Lowercased sample name -> (gpu_samples column, factor to its unit). Current names and the 1.x
# names of ``--use-old-namespace`` (``etc/1.x-compatibility-metrics.csv``).
FIELDS: dict[str, tuple[str, float]] = {
    "dcgm_fi_dev_gpu_util": ("gpu_util_ratio", 0.01),
    "dcgm_gpu_utilization": ("gpu_util_ratio", 0.01),
    "dcgm_fi_prof_sm_active": ("sm_active_ratio", 1.0),
    "dcgm_fi_prof_gr_engine_active": ("gr_engine_active_ratio", 1.0),
    "dcgm_fi_prof_pipe_tensor_active": ("tensor_active_ratio", 1.0),
    "dcgm_fi_prof_dram_active": ("dram_active_ratio", 1.0),
    "dcgm_fi_dev_fb_used": ("fb_used_bytes", MIB),
    "dcgm_fb_used": ("fb_used_bytes", MIB),
    "dcgm_fi_dev_fb_free": ("fb_free_bytes", MIB),
    "dcgm_fb_free": ("fb_free_bytes", MIB),
    "dcgm_fi_dev_power_usage": ("power_w", 1.0),
    "dcgm_power_usage": ("power_w", 1.0),
    "dcgm_fi_dev_total_energy_consumption": ("energy_j_total", 1e-3),
    "dcgm_total_energy_consumption": ("energy_j_total", 1e-3),
    "dcgm_fi_dev_gpu_temp": ("temperature_c", 1.0),
    "dcgm_gpu_temp": ("temperature_c", 1.0),
    "dcgm_fi_dev_xid_errors": ("xid_last", 1.0),
    "dcgm_xid_errors": ("xid_last", 1.0),
}
_COUNTERS = ("energy_j_total",)
# DCGM blank sentinels: INT64 blanks are >= 0x7ffffffffffffff0, INT32 blanks 0x7ffffff0..0x7fffffff,
# FP64 blank is 2**47. A counter (energy in mJ) may legitimately pass through the INT32 window.
_INT64_BLANK = float(0x7FFFFFFFFFFFFFF0)
_INT32_BLANK = (float(0x7FFFFFF0), float(0x7FFFFFFF))
_FP64_BLANK = float(2**47)

OLD_KEYS = ("pod_namespace", "pod_name", "container_name")
EXPORTED_KEYS = ("exported_namespace", "exported_pod", "exported_container")
PLAIN_KEYS = ("namespace", "pod", "container")
DEVICE = ["ts", "cluster", "node", "gpu_uuid", "mig_instance"]
HOLDER = ["tenant", "pod", "container"]


def workload_labels(wide: pl.DataFrame, target_labels: Iterable[str] = ()) -> tuple[str, str, str]:
    """The (namespace, pod, container) label names that carry the workload in this frame."""

    def has_value(cols: Iterable[str]) -> bool:
        present = [c for c in cols if c in wide.columns]
        return bool(present) and wide.select(
            pl.any_horizontal([pl.col(c).replace("", None).is_not_null().any() for c in present])
        ).item()

    if has_value(OLD_KEYS):
        return OLD_KEYS
    if has_value(EXPORTED_KEYS) or set(PLAIN_KEYS) & set(target_labels):
        return EXPORTED_KEYS
    return PLAIN_KEYS


def _blank_to_null(field: pl.Expr) -> pl.Expr:
    """The value, null where it is a DCGM blank sentinel (missing data stays missing)."""
    v = pl.col(VALUE)
    blank = (v >= _INT64_BLANK) | (v == _FP64_BLANK)
    blank = blank | (~field.is_in(list(_COUNTERS)) & v.is_between(*_INT32_BLANK))
    return pl.when(blank).then(None).otherwise(v)


def parse_dcgm_counted(wide: pl.DataFrame, *, target_labels: Iterable[str] = ()) -> tuple[pl.DataFrame, dict[str, int]]:
    """Normalise a dcgm-exporter frame into gpu_samples; also return the rows dropped by reason."""
    if wide.height == 0 or NAME not in wide.columns:
        return empty(GPU_SAMPLES), {}
    fields = pl.DataFrame(
        {"__key__": list(FIELDS), "__field__": [f for f, _ in FIELDS.values()], "__scale__": [s for _, s in FIELDS.values()]}
    )
    df = wide.with_columns(pl.col(NAME).str.to_lowercase().alias("__key__")).join(fields, on="__key__")
    ns_key, pod_key, ctr_key = workload_labels(wide, target_labels)
    uuid = label(df, "UUID", "uuid")
    df = df.filter(uuid.is_not_null())  # NVLink/NVSwitch/CPU entities have no GPU UUID
    if df.height == 0:
        return empty(GPU_SAMPLES), {}
    pod = label(df, pod_key)
    df = df.select(
        pl.col(TS).alias("ts"),
        label(df, "cluster").alias("cluster"),
        label(df, "Hostname", "hostname", "node", "instance").alias("node"),
        label(df, "UUID", "uuid").alias("gpu_uuid"),
        label(df, "gpu").cast(pl.Int32, strict=False).alias("gpu_index"),
        label(df, "modelName", "modelname", "model_name").alias("gpu_model"),
        label(df, "GPU_I_PROFILE", "gpu_i_profile").alias("mig_profile"),
        label(df, "GPU_I_ID", "gpu_i_id").cast(pl.Int32, strict=False).alias("mig_instance"),
        pl.when(pod.is_not_null()).then(label(df, ns_key)).alias("tenant"),
        pod.alias("pod"),
        pl.when(pod.is_not_null()).then(label(df, ctr_key)).alias("container"),
        label(df, "vgpu").alias("vgpu"),
        pl.col("__field__"),
        (_blank_to_null(pl.col("__field__")) * pl.col("__scale__")).alias("value"),
    )
    out = _rows(df)
    out = out.with_columns(
        # *_UTIL is not supported on MIG: whatever a slice reports there is not the slice's.
        pl.when(pl.col("mig_instance").is_null()).then(pl.col("gpu_util_ratio")).alias("gpu_util_ratio"),
        pl.col("xid_last").cast(pl.Int64, strict=False),
    )
    out, dropped = drop_unattributed(out, required=("node",), tenant_required=False)
    if dropped:
        log.warning("dcgm: dropped %s", dict(dropped))
    sort = [*DEVICE, "pod_share", "pod", "container"]
    return conform(out, GPU_SAMPLES, fill_missing=True).sort(sort, nulls_last=False), dict(dropped)


def parse_dcgm(wide: pl.DataFrame, *, target_labels: Iterable[str] = ()) -> pl.DataFrame:
    """Normalise a dcgm-exporter frame into gpu_samples (dropped rows are logged; see parse_dcgm_counted)."""
    return parse_dcgm_counted(wide, target_labels=target_labels)[0]


def _pivot(frame: pl.DataFrame, index: list[str]) -> pl.DataFrame:
    """One row per ``index`` with a column per field (the max of duplicate series)."""
    out = frame.pivot(on="__field__", index=index, values="value", aggregate_function="max")
    for col, _ in FIELDS.values():
        if col not in out.columns:
            out = out.with_columns(pl.lit(None, pl.Float64).alias(col))
    return out


def _rows(df: pl.DataFrame) -> pl.DataFrame:
    """Device rows and, for time-sliced GPUs, per-pod share rows (see the module docstring)."""
    has_pod = pl.col("pod").is_not_null()
    holder = pl.concat_str([pl.col(c).fill_null("") for c in HOLDER], separator="/")
    df = df.with_columns(
        (has_pod.any() & (~has_pod).any()).over([*DEVICE, "__field__"]).alias("__mixed__"),
    ).with_columns(
        (
            (pl.when(has_pod).then(holder).n_unique().over(DEVICE) - (~has_pod).any().over(DEVICE).cast(pl.UInt32) > 1)
            | pl.col("vgpu").is_not_null().any().over(DEVICE)
            | pl.col("__mixed__").any().over(DEVICE)
        ).alias("__split__")
    )
    attrs = df.group_by(DEVICE).agg(
        pl.col(c).drop_nulls().first() for c in ("gpu_index", "gpu_model", "mig_profile")
    )
    whole = df.filter(~pl.col("__split__"))
    split = df.filter(pl.col("__split__"))
    parts = [_pivot(whole, [*DEVICE, *HOLDER]).with_columns(pl.lit(False).alias("pod_share"))]
    if split.height:
        device = split.group_by([*DEVICE, "__field__"]).agg(
            pl.coalesce(pl.col("value").filter(pl.col("pod").is_null()).max(), pl.col("value").max()).alias("value")
        )
        parts.append(
            _pivot(device, DEVICE).with_columns(
                *(pl.lit(None, pl.Utf8).alias(c) for c in HOLDER), pl.lit(False).alias("pod_share")
            )
        )
        shares = split.filter(has_pod).with_columns(
            pl.when(pl.col("__mixed__")).then(pl.col("value")).alias("value")
        )
        parts.append(_pivot(shares, [*DEVICE, *HOLDER]).with_columns(pl.lit(True).alias("pod_share")))
    rows = pl.concat(parts, how="diagonal_relaxed")
    return rows.join(attrs, on=DEVICE, how="left", nulls_equal=True)
