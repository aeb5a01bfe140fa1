"""The wiring from sources to stored data sets: scrape rounds or a Prometheus-API window -> Parquet."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from analytics.rollup import build_rollups
from analytics.schema import (
    ALLOCATIONS,
    DATASETS,
    DEPLOYMENTS,
    ENGINE_HIST,
    ENGINE_SAMPLES,
    GPU_SAMPLES,
    REQUESTS,
    ROLLUPS,
    SCRAPES,
    Dataset,
)
from analytics.timeline import build_version_timeline
from collectors.metrics.rounds import ScrapeBatch, run_rounds
from collectors.normalise.frames import Normalised, concat
from collectors.store.datasets import read_dataset, write_dataset
from collectors.targets import Target

Clock = Callable[[], datetime]


@dataclass(slots=True)
class CollectSummary:
    """What a collection run did: rounds, scrape outcomes and rows written per data set."""

    rounds: int = 0
    scrapes_ok: int = 0
    scrapes_failed: int = 0
    dropped_lines: int = 0
    rows: dict[str, int] = field(default_factory=dict)

    def add_rows(self, name: str, n: int) -> None:
        """Count ``n`` rows written to data set ``name``."""
        self.rows[name] = self.rows.get(name, 0) + n


def write_normalised(root: Path, normalised: Normalised, scrapes: pl.DataFrame | None,
                     summary: CollectSummary) -> None:
    """Write one batch of normalised frames (and scrape records) to the store."""
    parts: list[tuple[Dataset, pl.DataFrame | None]] = [
        (GPU_SAMPLES, normalised.gpu), (ENGINE_SAMPLES, normalised.engine), (ENGINE_HIST, normalised.hist),
        (SCRAPES, scrapes),
    ]
    for ds, frame in parts:
        if frame is not None and frame.height:
            write_dataset(root, ds, frame)
            summary.add_rows(ds.name, frame.height)


def collect_rounds(
    targets: Sequence[Target] | Callable[[], Sequence[Target]],
    *,
    root: Path,
    rounds: int | None,
    interval_s: float,
    clock: Clock,
    sleep: Callable[[float], None],
    cluster: str | None = None,
    after_round: Callable[[int, ScrapeBatch], None] | None = None,
    timeout_s: float = 5.0,
    retries: int = 2,
    concurrency: int = 16,
    flush_every: int = 20,
) -> CollectSummary:
    """Scrape ``targets`` every ``interval_s`` for ``rounds`` rounds and write the data sets under ``root``.

    ``clock`` and ``sleep`` may be a simulated clock (the demo) or the wall clock; batches are written
    every ``flush_every`` rounds so a long run keeps memory flat.
    """
    summary = CollectSummary()
    pending: list[Normalised] = []
    pending_scrapes: list[pl.DataFrame] = []

    def flush() -> None:
        if pending_scrapes:
            write_normalised(root, concat(pending), pl.concat(pending_scrapes, how="vertical_relaxed"), summary)
            pending.clear()
            pending_scrapes.clear()

    def on_round(i: int, batch: ScrapeBatch) -> None:
        pending.append(batch.normalised)
        pending_scrapes.append(batch.scrapes)
        up = batch.scrapes.get_column("up")
        summary.rounds += 1
        summary.scrapes_ok += int(up.sum())
        summary.scrapes_failed += int((~up).sum())
        summary.dropped_lines += int(batch.scrapes.get_column("dropped_lines").fill_null(0).sum())
        if after_round is not None:
            after_round(i, batch)
        if (i + 1) % flush_every == 0:
            flush()

    try:
        run_rounds(targets, rounds=rounds, interval_s=interval_s, clock=clock, sleep=sleep, on_round=on_round,
                   timeout_s=timeout_s, retries=retries, concurrency=concurrency, cluster=cluster)
    finally:
        flush()  # an interrupted run keeps what it collected
    return summary


def summarise_store(root: Path) -> pl.DataFrame:
    """One row per stored data set: rows, tenants, partitions' time span."""
    rows = []
    for ds in DATASETS.values():
        frame = read_dataset(root, ds).collect()
        if frame.is_empty():
            continue
        tenants = frame.get_column("tenant").drop_nulls().n_unique() if "tenant" in frame.columns else 0
        rows.append({"data set": ds.name, "rows": frame.height, "tenants": tenants,
                     "first": frame.get_column("ts").min(), "last": frame.get_column("ts").max()})
    return pl.DataFrame(rows)


def summarise_models(root: Path) -> pl.DataFrame:
    """One row per tenant x model x engine: versions, pods and samples seen, from ``engine_samples``."""
    engine = read_dataset(root, ENGINE_SAMPLES)
    return (
        engine.group_by("tenant", "model", "engine")
        .agg(
            pl.col("model_version").drop_nulls().unique().sort().str.join(",").alias("versions"),
            pl.col("pod").n_unique().alias("pods"),
            pl.len().alias("samples"),
            pl.col("generation_tokens_total").max().alias("max_generation_tokens_total"),
        )
        .sort("tenant", "model")
        .collect()
    )


def summarise_gpus(root: Path) -> pl.DataFrame:
    """One row per tenant (null: idle): whole GPUs, MIG slices and time-sliced shares, from ``gpu_samples``."""
    gpu = read_dataset(root, GPU_SAMPLES)
    return (
        gpu.group_by("tenant")
        .agg(
            pl.struct("node", "gpu_uuid").filter(pl.col("mig_profile").is_null() & ~pl.col("pod_share"))
            .n_unique().alias("whole_or_shared_gpus"),
            pl.struct("node", "gpu_uuid", "mig_instance").filter(pl.col("mig_profile").is_not_null())
            .n_unique().alias("mig_slices"),
            pl.col("mig_profile").drop_nulls().unique().sort().str.join(",").alias("mig_profiles"),
            pl.struct("gpu_uuid", "pod").filter(pl.col("pod_share")).n_unique().alias("timesliced_shares"),
            pl.col("energy_j_total").is_not_null().sum().alias("energy_samples"),
        )
        .sort("tenant", nulls_last=True)
        .collect()
    )


# Samples before the window feed its first minute's increases and as-of joins (rollup.py, join.py).
ROLLUP_LOOKBACK = timedelta(minutes=10)


def build_and_write_rollups(root: Path, *, start: datetime, end: datetime) -> pl.DataFrame:
    """Rebuild the rollups of every minute overlapping ``[start, end)`` from the stored data sets and store them.

    An edge that is not on a minute boundary takes its whole minute, with every row of that minute
    the store holds: a run that ended at 08:39:45 gets a (partial) 08:39 row of those 45 s. Re-running
    over an overlapping window rewrites the same minutes (the store merges on the key), so a partial
    minute becomes whole once its data have arrived.
    """
    lo, hi = start - ROLLUP_LOOKBACK, end + ROLLUP_LOOKBACK

    def window(ds: Dataset) -> pl.DataFrame:
        return read_dataset(root, ds, start=lo, end=hi).collect()

    deployments = read_dataset(root, DEPLOYMENTS, end=hi).collect()
    rollups = build_rollups(
        requests=window(REQUESTS), engine_samples=window(ENGINE_SAMPLES), engine_hist=window(ENGINE_HIST),
        gpu_samples=window(GPU_SAMPLES), allocations=read_dataset(root, ALLOCATIONS, end=hi).collect(),
        timeline=build_version_timeline(deployments) if deployments.height else None,
        start=start, end=end,
    )
    if rollups.height:
        write_dataset(root, ROLLUPS, rollups)
    return rollups


def summarise_rollups(rollups: pl.DataFrame) -> pl.DataFrame:
    """One row per tenant x model x version of a rollup frame: requests, errors, tokens, p95 TTFT, GPU-hours."""
    if rollups.is_empty():
        return pl.DataFrame()
    return (
        rollups.filter(pl.col("model").is_not_null())
        .group_by("tenant", "model", "model_version")
        .agg(
            pl.col("requests").sum(),
            pl.col("errors").sum(),
            pl.col("output_tokens").sum(),
            pl.col("ttft_p95_s").median().alias("median_minute_ttft_p95_s"),
            (pl.col("gpu_allocated_s").sum() / 3600).alias("gpu_hours"),
            (pl.col("energy_j").sum() / 3.6e6).alias("energy_kwh"),
        )
        .sort("tenant", "model", "model_version")
    )
