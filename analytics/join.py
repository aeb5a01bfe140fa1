"""The join: GPU samples and allocations to tenant, pod, model and version; engine rows and requests to versions.

Order of evidence for a GPU sample (first that answers wins, never a guess when two could):

1. its own ``tenant``/``pod`` (dcgm-exporter attributes pods through the kubelet);
2. else the allocation of its device: a sample without a pod takes the one pod whose allocation on
   the same node and MIG profile is the only candidate at that time (allocations name no device, so a
   node with two candidate pods leaves the sample unattributed);
3. the model and version of the pod: its own engine samples (``engine_samples`` tenant x pod ->
   model, model_version), as-of the sample's time;
4. multi-node serving: pods of one group (LWS / Ray / gang: a ``(tenant, pod) -> group`` key the caller
   passes) share the model and version of the group's pod that exports engine metrics.

Time-sliced GPUs: the ``pod_share`` rows carry the attribution, the device row (``pod_share`` false,
no holder) carries the totals; nothing is attributed twice.

Clock skew: dcgm-exporter, the engines and the Kubernetes API keep their own clocks, so as-of joins
take the *nearest* row of the same pod within ``SKEW_TOLERANCE_S`` (300 s, Prometheus's lookback),
either side. A pod's model does not change while it lives, so this never mixes two models.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from analytics.schema import UTC_MS, Variant

SKEW_TOLERANCE_S = 300.0
PodGroups = pl.DataFrame | Mapping[tuple[str, str], str] | None


def pod_group_frame(pod_groups: PodGroups) -> pl.DataFrame:
    """``pod_groups`` as a (tenant, pod, group) frame; a mapping is ``(namespace, pod) -> group``."""
    schema = {"tenant": pl.Utf8, "pod": pl.Utf8, "group": pl.Utf8}
    if pod_groups is None:
        return pl.DataFrame(schema=schema)
    if isinstance(pod_groups, pl.DataFrame):
        return pod_groups.select(pl.col(c).cast(pl.Utf8) for c in schema).unique()
    rows = [(t, p, g) for (t, p), g in pod_groups.items()]
    return pl.DataFrame(rows, schema=schema, orient="row")


def pod_models(engine_samples: pl.DataFrame | None, pod_groups: PodGroups = None) -> pl.DataFrame:
    """(ts, tenant, pod, model, model_version) observations per pod, group members included."""
    schema = {"ts": UTC_MS, "tenant": pl.Utf8, "pod": pl.Utf8, "model": pl.Utf8, "model_version": pl.Utf8}
    if engine_samples is None or engine_samples.is_empty():
        return pl.DataFrame(schema=schema)
    own = (
        engine_samples.filter(pl.col("pod").is_not_null())
        .select(pl.col("ts").cast(UTC_MS), "tenant", "pod", "model", "model_version")
        .unique(["ts", "tenant", "pod", "model", "model_version"])
    )
    groups = pod_group_frame(pod_groups)
    if groups.is_empty():
        return own.sort("ts", "tenant", "pod")
    # A group member without engine metrics borrows the observations of its group's exporting pod.
    exporting = own.join(groups, on=["tenant", "pod"]).drop("pod")
    members = groups.join(own.select("tenant", "pod").unique(), on=["tenant", "pod"], how="anti")
    borrowed = exporting.join(members, on=["tenant", "group"]).select(*schema)
    return pl.concat([own, borrowed]).unique(list(schema)).sort("ts", "tenant", "pod")


def attach_pod_models(
    frame: pl.DataFrame, models: pl.DataFrame, *, tolerance_s: float = SKEW_TOLERANCE_S
) -> pl.DataFrame:
    """Add ``model`` and ``model_version`` to rows with ts, tenant, pod: the nearest observation of that pod.

    Rows keep their order and number; a pod observed with two models within the tolerance (never in
    a sane fleet) takes none rather than a guess.
    """
    base = frame.drop([c for c in ("model", "model_version") if c in frame.columns]).with_row_index("__row__")
    if models.is_empty() or base.is_empty():
        return base.drop("__row__").with_columns(pl.lit(None, pl.Utf8).alias("model"), pl.lit(None, pl.Utf8).alias("model_version"))
    ambiguous = models.group_by("tenant", "pod").agg(pl.col("model").n_unique().alias("__n__")).filter(pl.col("__n__") > 1)
    obs = models.join(ambiguous, on=["tenant", "pod"], how="anti").sort("ts")
    joined = (
        base.with_columns(pl.col("ts").cast(UTC_MS))
        .sort("ts")
        .join_asof(
            obs.rename({"ts": "__obs_ts__"}), left_on="ts", right_on="__obs_ts__", by=["tenant", "pod"],
            strategy="nearest", tolerance=timedelta(seconds=tolerance_s), check_sortedness=False,
        )
        .sort("__row__")
    )
    return joined.drop("__row__", "__obs_ts__").with_columns(pl.col("ts").cast(frame.schema["ts"]))


def fill_holders_from_allocations(gpu_samples: pl.DataFrame, allocations: pl.DataFrame | None) -> pl.DataFrame:
    """Give an unattributed GPU sample the one pod whose allocation could be its device at that time."""
    if allocations is None or allocations.is_empty():
        return gpu_samples
    # A MIG parent row (its GPU has slice rows) is never a pod's: its slices are.
    mig_parents = gpu_samples.filter(pl.col("mig_instance").is_not_null()).select("cluster", "node", "gpu_uuid").unique()
    is_parent = pl.struct("cluster", "node", "gpu_uuid").is_in(mig_parents.to_struct().implode()) & pl.col("mig_instance").is_null()
    need = pl.col("pod").is_null() & ~pl.col("pod_share") & pl.col("node").is_not_null() & ~is_parent
    snaps = allocations.select(
        pl.col("ts").cast(UTC_MS).alias("__snap__"), "cluster", "node", "mig_profile", "tenant", "pod"
    )
    # Candidates per (snapshot, node, profile): attribute only when exactly one pod qualifies, and
    # only to a device no other pod's samples already name at that time.
    unique = (
        snaps.group_by("__snap__", "cluster", "node", "mig_profile")
        .agg(pl.col("tenant").first(), pl.col("pod").first(), pl.len().alias("__n__"))
        .filter(pl.col("__n__") == 1)
        .drop("__n__")
        .sort("__snap__")
    )
    named = gpu_samples.filter(pl.col("pod").is_not_null()).select("cluster", "node", "pod").unique()
    unique = unique.join(named, on=["cluster", "node", "pod"], how="anti", nulls_equal=True)
    rows = gpu_samples.with_row_index("__row__")
    # join_asof never matches null `by` keys: a whole GPU (no profile) or an unnamed cluster is "".
    by = ["__c__", "node", "__mp__"]
    blank = [pl.col("cluster").fill_null("").alias("__c__"), pl.col("mig_profile").fill_null("").alias("__mp__")]
    todo = rows.filter(need).drop("tenant", "pod").with_columns(blank).sort("ts")
    filled = todo.join_asof(
        unique.rename({"tenant": "__t__", "pod": "__p__"}).with_columns(blank).drop("cluster", "mig_profile"),
        left_on="ts", right_on="__snap__", by=by, strategy="backward", check_sortedness=False,
    ).select("__row__", pl.col("__t__").alias("tenant"), pl.col("__p__").alias("pod"))
    out = rows.join(filled, on="__row__", how="left", suffix="__f")
    return out.sort("__row__").with_columns(
        pl.coalesce("tenant", "tenant__f").alias("tenant"), pl.coalesce("pod", "pod__f").alias("pod")
    ).select(gpu_samples.columns)


def attribute_gpu_samples(
    gpu_samples: pl.DataFrame, *, allocations: pl.DataFrame | None = None, engine_samples: pl.DataFrame | None = None,
    pod_groups: PodGroups = None, tolerance_s: float = SKEW_TOLERANCE_S,
) -> pl.DataFrame:
    """GPU_SAMPLES rows plus ``model`` and ``model_version``, holders filled from allocations (see module doc)."""
    filled = fill_holders_from_allocations(gpu_samples, allocations)
    return attach_pod_models(filled, pod_models(engine_samples, pod_groups), tolerance_s=tolerance_s)


def assign_request_versions(frame: pl.DataFrame, timeline: pl.DataFrame | None) -> pl.DataFrame:
    """Requests or engine rows with the version active at their time: their own version wins, else the timeline's.

    The variant stays the row's own when it says baseline or canary; otherwise the timeline decides
    (``none`` when no canary runs or the version is unknown). Rows keep their order and number.
    """
    if timeline is None or frame.is_empty():
        return frame
    from analytics.timeline import assign_versions  # the timeline module is optional for callers

    own_variant = frame.get_column("variant") if "variant" in frame.columns else None
    out = assign_versions(frame, timeline)
    if own_variant is not None:
        keep = own_variant.is_in([Variant.BASELINE.value, Variant.CANARY.value]).fill_null(False)
        out = out.with_columns(pl.when(keep).then(own_variant).otherwise(pl.col("variant")).alias("variant"))
    return out.select(frame.columns if "variant" in frame.columns else [*frame.columns, "variant"])


def compute_gpu_use(
    gpu_samples: pl.DataFrame | None, allocations: pl.DataFrame | None, models: pl.DataFrame, *,
    lo: datetime, hi: datetime, tolerance_s: float = SKEW_TOLERANCE_S,
) -> pl.DataFrame:
    """Per minute in ``[lo, hi)`` and tenant x model x version: GPU-seconds allocated and busy, energy in joules.

    Allocated: each allocation snapshot holds from its time to the cluster's next snapshot, the
    last one to the cluster's last observation (its latest GPU sample or snapshot), never past
    ``hi``; ``gpu_fraction`` x seconds held. GPU-seconds past what was observed are not claimed: a
    minute the data end in (a partial minute) holds the seconds up to that end, and rolling it up
    again once more data arrived gives the full minute. Busy: the minute's mean of the pod's
    utilisation x unit, x seconds held, where a ``pod_share`` row's utilisation is of the whole
    device (unit 1) and an exclusive row's of the pod's unit (the GPU-equivalents it held, averaged
    over the minute's snapshots, / its rows: a whole GPU, a MIG slice with ``gr_engine_active``, a
    fraction). Energy: the device counter, reset-corrected and linearly interpolated at minute
    boundaries (never extrapolated past the first or last sample), split between the pods on the
    device by their GPU-equivalents x the part of the counter's span in the minute they held them;
    the unheld rest has no tenant.
    """
    held = _held_minutes(allocations, lo, hi, _last_observed(gpu_samples, allocations))
    # Per pod and minute: GPU-seconds, the seconds held (snapshots hold disjoint intervals; one
    # snapshot's rows of a pod share one) and the GPU-equivalents held on average over them.
    pods = (
        held.group_by("ts", "tenant", "pod", "__snap__")
        .agg(pl.col("gpu_fraction").sum(), pl.col("held_s").first())
        .group_by("ts", "tenant", "pod")
        .agg((pl.col("gpu_fraction") * pl.col("held_s")).sum().alias("gpu_allocated_s"),
             pl.col("held_s").sum().alias("__held__"))
        .with_columns((pl.col("gpu_allocated_s") / pl.col("__held__")).alias("__frac__"))
    )
    samples = _minute_samples(gpu_samples, lo, hi)
    parts = [pods.select("ts", "tenant", "pod", "gpu_allocated_s")]
    if not samples.is_empty() and not pods.is_empty():
        parts.append(_busy(samples, pods))
    if gpu_samples is not None and not gpu_samples.is_empty():
        parts.append(_energy(gpu_samples, samples, pods, lo, hi))
    out = pl.concat(parts, how="diagonal_relaxed")
    for col in ("gpu_allocated_s", "gpu_busy_s", "energy_j"):
        if col not in out.columns:
            out = out.with_columns(pl.lit(None, pl.Float64).alias(col))
    per_pod = out.group_by("ts", "tenant", "pod").agg(_sum_or_null(c) for c in ("gpu_allocated_s", "gpu_busy_s", "energy_j"))
    named = attach_pod_models(per_pod.filter(pl.col("pod").is_not_null()), models, tolerance_s=tolerance_s)
    idle = per_pod.filter(pl.col("pod").is_null()).with_columns(
        pl.lit(None, pl.Utf8).alias("model"), pl.lit(None, pl.Utf8).alias("model_version")
    )
    return (
        pl.concat([named, idle.select(named.columns)])
        .group_by("ts", "tenant", "model", "model_version")
        .agg(_sum_or_null(c) for c in ("gpu_allocated_s", "gpu_busy_s", "energy_j"))
    )


def _sum_or_null(col: str) -> pl.Expr:
    """The sum, but null (no data) rather than 0 when every value is null."""
    return pl.when(pl.col(col).is_not_null().any()).then(pl.col(col).sum()).alias(col)


def _last_observed(gpu_samples: pl.DataFrame | None, allocations: pl.DataFrame | None) -> pl.DataFrame:
    """(cluster, ``__seen__``): the latest time each cluster was observed, by a GPU sample or an allocation snapshot."""
    seen = [f.select("cluster", pl.col("ts").cast(UTC_MS)) for f in (gpu_samples, allocations) if f is not None and f.height]
    if not seen:
        return pl.DataFrame(schema={"cluster": pl.Utf8, "__seen__": UTC_MS})
    return pl.concat(seen, how="vertical_relaxed").group_by("cluster").agg(pl.col("ts").max().alias("__seen__"))


def _held_minutes(allocations: pl.DataFrame | None, lo: datetime, hi: datetime, seen: pl.DataFrame) -> pl.DataFrame:
    """Allocation rows split per minute: (ts minute, tenant, pod, gpu_fraction, held_s, ``__snap__``: the snapshot's time).

    A cluster's last snapshot holds until the cluster's ``__seen__`` time in ``seen`` (see
    :func:`compute_gpu_use`); every hold is cut to ``[lo, hi)``.
    """
    schema = {"ts": UTC_MS, "tenant": pl.Utf8, "pod": pl.Utf8, "gpu_fraction": pl.Float64, "held_s": pl.Float64,
              "__snap__": UTC_MS}
    if allocations is None or allocations.is_empty():
        return pl.DataFrame(schema=schema)
    snaps = allocations.select(pl.col("ts").cast(UTC_MS), "cluster").unique().sort("ts")
    snaps = snaps.with_columns(pl.col("ts").shift(-1).over("cluster", order_by="ts").alias("__to__"))
    snaps = snaps.join(seen.select(pl.col("cluster").cast(snaps.schema["cluster"]), "__seen__"), on="cluster",
                       how="left", nulls_equal=True)
    snaps = snaps.with_columns(pl.coalesce("__to__", "__seen__").alias("__to__")).drop("__seen__")
    rows = allocations.with_columns(pl.col("ts").cast(UTC_MS)).join(snaps, on=["ts", "cluster"], nulls_equal=True)
    rows = rows.with_columns(
        pl.max_horizontal(pl.col("ts"), pl.lit(lo, UTC_MS)).alias("__a__"),
        pl.min_horizontal(pl.col("__to__").fill_null(pl.lit(hi, UTC_MS)), pl.lit(hi, UTC_MS)).alias("__b__"),
    ).filter(pl.col("__a__") < pl.col("__b__"))
    minutes = rows.with_columns(
        pl.datetime_ranges(pl.col("__a__").dt.truncate("1m"), pl.col("__b__") - timedelta(milliseconds=1), "1m")
        .alias("__m__")
    ).explode("__m__")
    end = pl.col("__m__") + timedelta(minutes=1)
    held = (pl.min_horizontal(end, pl.col("__b__")) - pl.max_horizontal(pl.col("__m__"), pl.col("__a__")))
    return minutes.select(
        pl.col("__m__").cast(UTC_MS).alias("ts"), "tenant", "pod", pl.col("gpu_fraction").cast(pl.Float64),
        (held.dt.total_milliseconds() / 1000.0).alias("held_s"), pl.col("ts").alias("__snap__"),
    ).filter(pl.col("held_s") > 0)


def _minute_samples(gpu_samples: pl.DataFrame | None, lo: datetime, hi: datetime) -> pl.DataFrame:
    """Held GPU sample rows in ``[lo, hi)`` with their minute and utilisation of their unit."""
    if gpu_samples is None or gpu_samples.is_empty():
        return pl.DataFrame()
    util = pl.when(pl.col("mig_instance").is_null()).then(
        pl.coalesce("gpu_util_ratio", "gr_engine_active_ratio")
    ).otherwise(pl.col("gr_engine_active_ratio"))
    return gpu_samples.filter(
        (pl.col("ts") >= lo) & (pl.col("ts") < hi) & pl.col("pod").is_not_null()
    ).select(
        pl.col("ts").cast(UTC_MS).alias("__ts__"), pl.col("ts").cast(UTC_MS).dt.truncate("1m").alias("ts"),
        "cluster", "node", "gpu_uuid", "tenant", "pod", "pod_share", util.alias("__util__"),
    )


def _busy(samples: pl.DataFrame, pods: pl.DataFrame) -> pl.DataFrame:
    """gpu_busy_s per (minute, tenant, pod)."""
    rows = samples.join(pods, on=["ts", "tenant", "pod"])
    exclusive = (~pl.col("pod_share")).cast(pl.Int64).sum().over("__ts__", "tenant", "pod")
    unit = pl.when(pl.col("pod_share")).then(1.0).otherwise(pl.col("__frac__") / exclusive)
    rate = rows.with_columns((pl.col("__util__") * unit).alias("__r__")).group_by("ts", "__ts__", "tenant", "pod").agg(
        pl.col("__r__").sum(), pl.col("__held__").first()
    )
    return rate.group_by("ts", "tenant", "pod").agg((pl.col("__r__").mean() * pl.col("__held__").first()).alias("gpu_busy_s"))


def _energy(gpu_samples: pl.DataFrame, samples: pl.DataFrame, pods: pl.DataFrame, lo: datetime, hi: datetime) -> pl.DataFrame:
    """energy_j per (minute, tenant, pod); the unheld share of each device under a null tenant and pod."""
    device = ["cluster", "node", "gpu_uuid"]
    counters = (
        gpu_samples.filter(~pl.col("pod_share") & pl.col("energy_j_total").is_not_null())
        .group_by(*device, pl.col("ts").cast(UTC_MS))
        .agg(pl.col("energy_j_total").max())
        .sort(*device, "ts")
    )
    if counters.is_empty():
        return pl.DataFrame(schema={"ts": UTC_MS, "tenant": pl.Utf8, "pod": pl.Utf8, "energy_j": pl.Float64})
    prev = pl.col("energy_j_total").shift(1).over(device, order_by="ts")
    counters = counters.with_columns(
        (pl.col("energy_j_total") + pl.when(pl.col("energy_j_total") < prev).then(prev).otherwise(0.0).cum_sum().over(device, order_by="ts"))
        .alias("__cum__"),
        pl.col("ts").dt.epoch("ms").alias("__ms__"),
    )
    lo_ms, hi_ms = int(lo.timestamp() * 1000), int(hi.timestamp() * 1000)
    bounds = np.arange(lo_ms, hi_ms + 1, 60_000, dtype=np.int64)
    rows: list[pl.DataFrame] = []
    for key, part in counters.partition_by(device, as_dict=True, maintain_order=True).items():
        ms = part["__ms__"].to_numpy()
        cum = np.interp(bounds, ms, part["__cum__"].to_numpy())
        per_minute = np.diff(cum)
        # The seconds of each minute the counter covers: a minute the device's samples start or
        # end in (a partial minute) has its energy from that part only.
        covered = np.clip(np.minimum(bounds[1:], ms[-1]) - np.maximum(bounds[:-1], ms[0]), 0, None) / 1000.0
        keep = per_minute != 0
        rows.append(pl.DataFrame({
            "cluster": [key[0]] * int(keep.sum()), "node": [key[1]] * int(keep.sum()), "gpu_uuid": [key[2]] * int(keep.sum()),
            "ts": pl.Series(bounds[:-1][keep]).cast(pl.Datetime("ms")).dt.replace_time_zone("UTC"), "__e__": per_minute[keep],
            "__covered__": covered[keep],
        }, schema_overrides={"cluster": pl.Utf8, "node": pl.Utf8, "gpu_uuid": pl.Utf8}))
    energy = pl.concat(rows) if rows else pl.DataFrame(
        schema={**dict.fromkeys(device, pl.Utf8), "ts": UTC_MS, "__e__": pl.Float64, "__covered__": pl.Float64})
    # Each pod's share of a device: its GPU-equivalents spread over the devices it appears on, for
    # the part of the counter's span in the minute it held them.
    on_device = samples.select("ts", *device, "tenant", "pod").unique().join(pods, on=["ts", "tenant", "pod"])
    on_device = on_device.with_columns((pl.col("__frac__") / pl.len().over("ts", "tenant", "pod")).alias("__share__"))
    on_device = on_device.join(energy.select("ts", *device, "__covered__"), on=["ts", *device], nulls_equal=True)
    on_device = on_device.with_columns(
        (pl.col("__share__") * pl.min_horizontal("__held__", "__covered__") / pl.col("__covered__")).alias("__share__")
    ).drop("__covered__")
    total = pl.col("__share__").sum().over("ts", *device)
    shared = energy.join(on_device, on=["ts", *device], nulls_equal=True).with_columns(
        (pl.col("__e__") * pl.col("__share__") / pl.max_horizontal(total, pl.lit(1.0))).alias("energy_j")
    )
    used = shared.group_by("ts", *device).agg(pl.col("energy_j").sum().alias("__used__"))
    idle = energy.join(used, on=["ts", *device], how="left", nulls_equal=True).select(
        "ts", pl.lit(None, pl.Utf8).alias("tenant"), pl.lit(None, pl.Utf8).alias("pod"),
        (pl.col("__e__") - pl.col("__used__").fill_null(0.0)).alias("energy_j"), pl.col("__e__"),
    ).filter(pl.col("energy_j").abs() > 1e-9 * pl.col("__e__").abs()).drop("__e__")  # rounding, not idle
    return pl.concat([shared.select("ts", "tenant", "pod", "energy_j"), idle])
