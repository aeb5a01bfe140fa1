"""Every data set's columns and dtypes, declared once, and ``conform`` to check a frame against them.

Timestamps are UTC milliseconds. Units are in column names (``_s``, ``_bytes``, ``_w``, ``_j``,
``_ratio`` for 0-1 fractions, ``_total`` for monotonic counters as the source exposes them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import polars as pl

from analytics.errors import SchemaError

UTC_MS = pl.Datetime("ms", "UTC")
STR = pl.Utf8
F64 = pl.Float64
I64 = pl.Int64
I32 = pl.Int32
BOOL = pl.Boolean

# Tenant partition value for rows no tenant owns (an idle GPU). Not an RFC 1123 label, so it can
# never collide with a real namespace.
NO_TENANT = "_none"


class Engine(StrEnum):
    """Inference servers fleetlens reads."""

    VLLM = "vllm"
    TRITON = "triton"
    SGLANG = "sglang"
    TGI = "tgi"


class Variant(StrEnum):
    """Which side of a canary comparison a request or pod is on."""

    BASELINE = "baseline"
    CANARY = "canary"
    NONE = "none"


class RequestStatus(StrEnum):
    """How a request ended."""

    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"


class RequestSource(StrEnum):
    """Which stream a request row came from."""

    GATEWAY = "gateway"
    OTLP = "otlp"


class DeployAction(StrEnum):
    """What a rollout event did."""

    STARTED = "started"
    STEP = "step"
    WEIGHT = "weight"
    PAUSED = "paused"
    PROMOTED = "promoted"
    ABORTED = "aborted"
    ROLLED_BACK = "rolled_back"
    WARMUP_STARTED = "warmup_started"
    WARMUP_DONE = "warmup_done"
    SCALED = "scaled"
    # Argo CD syncs apply manifests; the rollout controller's own events say what the version did.
    SYNC_STARTED = "sync_started"
    SYNC_SUCCEEDED = "sync_succeeded"
    SYNC_FAILED = "sync_failed"


class DeploySource(StrEnum):
    """Where a rollout event came from."""

    ARGO = "argo"
    FLAGGER = "flagger"
    K8S = "k8s"
    GITOPS = "gitops"


class AllocationKind(StrEnum):
    """How a pod holds its GPU."""

    WHOLE = "whole"
    MIG = "mig"
    FRACTION = "fraction"
    TIMESLICE = "timeslice"


class HistMetric(StrEnum):
    """Normalised histogram / summary families; the suffix is the unit of ``le`` and values."""

    TTFT_S = "ttft_s"
    ITL_S = "itl_s"
    TPOT_S = "tpot_s"
    E2E_S = "e2e_s"
    QUEUE_S = "queue_s"
    PREFILL_S = "prefill_s"
    DECODE_S = "decode_s"
    INFERENCE_S = "inference_s"
    FIRST_RESPONSE_S = "first_response_s"
    PROMPT_TOKENS = "prompt_tokens"
    GENERATION_TOKENS = "generation_tokens"
    ITERATION_TOKENS = "iteration_tokens"
    # Triton summaries (per-request averages of its cumulative microsecond counters, in seconds).
    REQUEST_S = "request_s"
    COMPUTE_INPUT_S = "compute_input_s"
    COMPUTE_INFER_S = "compute_infer_s"
    COMPUTE_OUTPUT_S = "compute_output_s"


@dataclass(frozen=True, slots=True)
class Dataset:
    """One data set: its columns in order, which must be non-null, how it is partitioned on disk."""

    name: str
    columns: Mapping[str, pl.DataType]
    required: tuple[str, ...]
    key: tuple[str, ...]
    partition_by: tuple[str, ...] = ("tenant", "date")
    enums: Mapping[str, type[StrEnum]] = field(default_factory=dict)

    @property
    def schema(self) -> pl.Schema:
        """The polars schema (column -> dtype) in declared order."""
        return pl.Schema(dict(self.columns))

    def __post_init__(self) -> None:
        for col in (*self.required, *self.key, *self.enums):
            if col not in self.columns:
                raise ValueError(f"{self.name}: {col!r} is not a declared column")


GPU_SAMPLES = Dataset(
    name="gpu_samples",
    columns={
        "ts": UTC_MS,
        "cluster": STR,
        "node": STR,
        "gpu_uuid": STR,
        "gpu_index": I32,
        "gpu_model": STR,
        "mig_profile": STR,  # e.g. "1g.10gb"; null for a whole GPU
        "mig_instance": I32,  # DCGM GPU_I_ID; null for a whole GPU
        "tenant": STR,  # workload namespace; null when no pod uses the GPU
        "pod": STR,
        "container": STR,
        # True for a per-pod share of a time-sliced GPU (dcgm --kubernetes-virtual-gpus). Device
        # totals use pod_share = false rows only; tenant attribution uses the share rows.
        "pod_share": BOOL,
        "gpu_util_ratio": F64,  # DCGM_FI_DEV_GPU_UTIL / 100; absent on MIG
        "sm_active_ratio": F64,
        "gr_engine_active_ratio": F64,
        "tensor_active_ratio": F64,
        "dram_active_ratio": F64,
        "fb_used_bytes": F64,
        "fb_free_bytes": F64,
        "power_w": F64,
        "energy_j_total": F64,  # counter: DCGM mJ since boot / 1000, Triton J since start
        "temperature_c": F64,
        "xid_last": I64,  # value of the last XID error, 0 when none
    },
    required=("ts", "node", "gpu_uuid", "pod_share"),
    key=("ts", "cluster", "node", "gpu_uuid", "mig_instance", "tenant", "pod", "container", "pod_share"),
)

ENGINE_SAMPLES = Dataset(
    name="engine_samples",
    columns={
        "ts": UTC_MS,
        "cluster": STR,
        "tenant": STR,
        "pod": STR,
        "instance": STR,  # scrape target host:port
        "engine": STR,
        "model": STR,
        "model_version": STR,
        "replica": STR,  # vLLM `engine` index, SGLang tp/dp rank, Triton gpu_uuid: never summed blindly
        "requests_running": F64,
        "requests_waiting": F64,
        "kv_cache_usage_ratio": F64,
        "prompt_tokens_total": F64,
        "generation_tokens_total": F64,
        "requests_success_total": F64,
        "requests_failure_total": F64,
        "preemptions_total": F64,
        "prefix_cache_queries_total": F64,
        "prefix_cache_hits_total": F64,
        "inference_count_total": F64,  # Triton batch-weighted inference count
        "request_duration_s_total": F64,  # Triton cumulative request duration (us -> s)
        "queue_duration_s_total": F64,
        "compute_infer_duration_s_total": F64,
    },
    required=("ts", "tenant", "engine", "model"),
    key=("ts", "cluster", "tenant", "pod", "instance", "engine", "model", "model_version", "replica"),
    enums={"engine": Engine},
)

ENGINE_HIST = Dataset(
    name="engine_hist",
    columns={
        "ts": UTC_MS,
        "cluster": STR,
        "tenant": STR,
        "pod": STR,
        "instance": STR,
        "engine": STR,
        "model": STR,
        "model_version": STR,
        "replica": STR,
        "metric": STR,  # HistMetric: unit is the suffix
        "le": F64,  # bucket upper bound (+inf for the last); null on summary rows
        "quantile": F64,  # summary quantile; null on histogram rows
        "value": F64,  # cumulative bucket count, or the summary quantile's value
        "sum": F64,  # the series' _sum (in the metric's unit)
        "count": F64,  # the series' _count
    },
    required=("ts", "tenant", "engine", "model", "metric", "value"),
    key=(
        "ts", "cluster", "tenant", "pod", "instance", "engine", "model", "model_version", "replica",
        "metric", "le", "quantile",
    ),
    enums={"engine": Engine, "metric": HistMetric},
)

REQUESTS = Dataset(
    name="requests",
    columns={
        "ts": UTC_MS,  # request arrival
        "request_id": STR,
        "tenant": STR,
        "model": STR,
        "model_version": STR,
        "variant": STR,
        "pod": STR,  # upstream pod that served it, when the source says (decides version during a canary)
        "status": STR,  # ok | error | timeout | cancelled
        "http_status": I32,
        "prompt_tokens": I64,
        "output_tokens": I64,
        "queue_s": F64,
        "ttft_s": F64,
        "itl_s": F64,
        "e2e_s": F64,
        "trace_id": STR,
        "source": STR,  # gateway | otlp: which stream it came from
    },
    required=("ts", "request_id", "tenant", "model"),
    key=("tenant", "request_id"),
    enums={"variant": Variant, "status": RequestStatus, "source": RequestSource},
)

DEPLOYMENTS = Dataset(
    name="deployments",
    columns={
        "ts": UTC_MS,
        "tenant": STR,
        "model": STR,
        "model_version": STR,  # the version's pod template hash, as engine_samples.model_version
        "revision": STR,  # the rollout revision number ("2"), when the source gives one
        "workload": STR,  # Rollout / Deployment / Flagger Canary / Argo CD Application name
        "action": STR,
        "weight_pct": F64,
        "source": STR,
        "artifact_digest": STR,
        "message": STR,
    },
    required=("ts", "tenant", "model", "action", "source"),
    key=("ts", "tenant", "model", "model_version", "workload", "action", "source", "message"),
    enums={"action": DeployAction, "source": DeploySource},
)

ALLOCATIONS = Dataset(
    name="allocations",
    columns={
        "ts": UTC_MS,
        "cluster": STR,
        "node": STR,
        "gpu_uuid": STR,
        "mig_profile": STR,
        "pod": STR,
        "tenant": STR,
        "kind": STR,
        "gpu_fraction": F64,  # share of one GPU: 1 whole, 1/7 for 1g of 7, 0.5 fractional ...
        "gpu_memory_bytes": F64,
        "priority": I32,
        "queue": STR,
    },
    required=("ts", "node", "pod", "tenant", "kind", "gpu_fraction"),
    key=("ts", "cluster", "node", "gpu_uuid", "mig_profile", "tenant", "pod"),
    enums={"kind": AllocationKind},
)

INVENTORY = Dataset(
    name="inventory",
    columns={
        "ts": UTC_MS,  # snapshot time
        "cluster": STR,
        "node": STR,
        "pool": STR,
        "gpu_model": STR,
        "gpu_count": I32,
        "gpu_memory_bytes": F64,  # per GPU
        "cpu_milli": I64,
        "mig_layout": STR,  # e.g. "1g.10gb:7" or "3g.40gb:1,4g.40gb:1"; null without MIG
        "cost_class": STR,
    },
    required=("ts", "node", "gpu_count"),
    key=("ts", "cluster", "node"),
    partition_by=("date",),
)

QUOTAS = Dataset(
    name="quotas",
    columns={
        "ts": UTC_MS,  # snapshot time
        "cluster": STR,
        "tenant": STR,
        "source": STR,  # resourcequota | kueue | runai
        "name": STR,  # the ResourceQuota / ClusterQueue / Run:ai queue name
        "resource": STR,  # e.g. "requests.nvidia.com/gpu", "nvidia.com/mig-1g.10gb"
        "hard": F64,
        "used": F64,
    },
    required=("ts", "tenant", "source", "name", "resource"),
    key=("ts", "cluster", "tenant", "source", "name", "resource"),
)

# Rollups (analytics/rollup.py). One row is tenant x model x model_version x the minute [ts, ts+60s);
# only whole minutes inside the requested window are written, and a minute's row is complete (every
# column computed from all raw data of that minute), so rewriting it replaces it on ROLLUPS.key.
# - requests/errors/tokens: from requests by arrival ts (errors: status error or timeout); 0, not null,
#   when the key has rows of another stream in that minute.
# - <lat>_p50/p95/p99_s: exact, linear interpolation between order statistics (DuckDB quantile_cont).
# - <lat>_hist: mergeable log-bucket histogram (analytics/histogram.py: 1% relative accuracy),
#   List(Struct(bucket Int32, count Int64)) sorted by bucket; merge minutes for any window.
# - engine_<lat>_pNN_s: PromQL histogram_quantile(q, sum by (le) (increase(x_bucket[1m]))) at ts+60s.
# - gpu_allocated_s: allocations' gpu_fraction x seconds held; gpu_busy_s: utilisation x allocated
#   share (MIG: gr_engine_active); energy_j: device counter increase prorated by share. Rows with a
#   null tenant hold the unheld share of a device's energy; a null model is a pod with no engine metrics.
_HIST = pl.List(pl.Struct({"bucket": I32, "count": I64}))
_LAT = ("ttft", "itl", "e2e", "queue")
_PCT = ("p50", "p95", "p99")
ROLLUPS = Dataset(
    name="rollups",
    columns={
        "ts": UTC_MS,  # minute start
        "tenant": STR,
        "model": STR,
        "model_version": STR,
        "requests": I64,
        "errors": I64,
        "prompt_tokens": I64,
        "output_tokens": I64,
        **{f"{m}_{p}_s": F64 for m in _LAT for p in _PCT},
        **{f"{m}_hist": _HIST for m in _LAT},
        **{f"engine_{m}_{p}_s": F64 for m in _LAT for p in _PCT},
        "gpu_allocated_s": F64,
        "gpu_busy_s": F64,
        "energy_j": F64,
        "kv_cache_peak_ratio": F64,
    },
    required=("ts",),
    key=("ts", "tenant", "model", "model_version"),
)

SCRAPES = Dataset(
    name="scrapes",
    columns={
        "ts": UTC_MS,
        "target": STR,  # URL scraped
        "job": STR,  # dcgm | vllm | triton | sglang | tgi
        "tenant": STR,
        "pod": STR,
        "up": BOOL,  # like Prometheus's `up`
        "duration_s": F64,
        "http_status": I32,
        "samples": I64,
        "dropped_lines": I64,  # malformed lines skipped in lenient mode
        "error": STR,
    },
    required=("ts", "target", "job", "up"),
    key=("ts", "target", "tenant"),
)

DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        GPU_SAMPLES, ENGINE_SAMPLES, ENGINE_HIST, REQUESTS, DEPLOYMENTS, ALLOCATIONS, INVENTORY,
        QUOTAS, ROLLUPS, SCRAPES,
    )
}


def dataset(name: str) -> Dataset:
    """Look a data set up by name, with a typed error for an unknown one."""
    try:
        return DATASETS[name]
    except KeyError:
        raise SchemaError(name, None, f"unknown data set (known: {', '.join(sorted(DATASETS))})") from None


def empty(ds: Dataset) -> pl.DataFrame:
    """An empty frame with the data set's columns."""
    return pl.DataFrame(schema=ds.schema)


def conform(df: pl.DataFrame, ds: Dataset, *, fill_missing: bool = False) -> pl.DataFrame:
    """Check ``df`` against ``ds`` and return it cast and ordered; raise SchemaError naming the column.

    Extra columns are an error. Missing columns are an error unless ``fill_missing``, which adds
    them as nulls (collectors pass it: a source that lacks a field leaves it null, never zero).
    """
    extra = [c for c in df.columns if c not in ds.columns]
    if extra:
        raise SchemaError(ds.name, extra[0], f"column not in the data set (extra columns: {extra})")
    missing = [c for c in ds.columns if c not in df.columns]
    if missing and not fill_missing:
        raise SchemaError(ds.name, missing[0], f"missing column (missing: {missing})")
    exprs = []
    for col, dtype in ds.columns.items():
        if col not in df.columns:
            exprs.append(pl.lit(None, dtype=dtype).alias(col))
            continue
        src = df.schema[col]
        if src == dtype:
            exprs.append(pl.col(col))
            continue
        if not _castable(src, dtype):
            raise SchemaError(ds.name, col, f"dtype {src} cannot become {dtype}")
        exprs.append(pl.col(col).cast(dtype, strict=True))
    try:
        out = df.select(exprs)
    except pl.exceptions.PolarsError as exc:
        col = _first_bad_cast(df, ds)
        raise SchemaError(ds.name, col, f"values do not cast to {ds.columns.get(col or '', '?')}: {exc}") from exc
    for col in ds.required:
        nulls = out.get_column(col).null_count()
        if nulls:
            raise SchemaError(ds.name, col, f"{nulls} null value(s) in a required column")
    for col, enum in ds.enums.items():
        allowed = {m.value for m in enum}
        bad = out.get_column(col).drop_nulls().unique().to_list()
        bad = sorted(v for v in bad if v not in allowed)
        if bad:
            raise SchemaError(ds.name, col, f"values {bad[:5]} not in {sorted(allowed)}")
    return out


def _castable(src: pl.DataType, dst: pl.DataType) -> bool:
    """Casts conform allows: numeric widening/narrowing, null columns, datetimes across units/zones."""
    if src == pl.Null:
        return True
    if isinstance(dst, pl.Datetime):
        return isinstance(src, pl.Datetime) or src == pl.Date
    if dst == STR:
        return src in (STR, pl.Categorical) or isinstance(src, pl.Enum)
    if dst.is_numeric():
        return src.is_numeric() or src == BOOL
    if dst == BOOL:
        return src == BOOL
    return False


def _first_bad_cast(df: pl.DataFrame, ds: Dataset) -> str | None:
    for col, dtype in ds.columns.items():
        if col in df.columns and df.schema[col] != dtype:
            try:
                df.select(pl.col(col).cast(dtype, strict=True))
            except pl.exceptions.PolarsError:
                return col
    return None
