"""`fleetlens demo` end to end: the simulator served over HTTP, scraped, normalised and stored."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from analytics.schema import (
    ALLOCATIONS,
    DEPLOYMENTS,
    ENGINE_HIST,
    ENGINE_SAMPLES,
    GPU_SAMPLES,
    INVENTORY,
    REQUESTS,
    ROLLUPS,
    SCRAPES,
)
from collectors.store.datasets import read_dataset
from fleetlens.cli import main
from simulator import default_fleet_spec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seven simulated minutes: past the canary's start (5 min) so both versions of its model serve."""
    root = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--data-dir", str(root), "--minutes", "7"]) == 0
    return root


def test_every_scrape_of_the_demo_was_up(demo_dir: Path) -> None:
    scrapes = read_dataset(demo_dir, SCRAPES).collect()
    assert scrapes.height > 0
    assert scrapes.filter(~pl.col("up")).is_empty(), scrapes.filter(~pl.col("up")).select("target", "error")


def test_the_demo_covers_every_simulated_tenant_and_model(demo_dir: Path) -> None:
    spec = default_fleet_spec()
    engine = read_dataset(demo_dir, ENGINE_SAMPLES).collect()
    got = set(engine.select("tenant", "model").unique().iter_rows())
    want = {(m.tenant, m.name) for m in spec.models}
    assert got == want
    assert len({t for t, _ in got}) >= 3 and len(got) >= 3 * 2
    assert set(engine.get_column("engine").unique()) >= {"vllm", "triton"}


def test_the_canary_model_is_seen_at_two_versions(demo_dir: Path) -> None:
    spec = default_fleet_spec()
    assert spec.canary is not None
    engine = read_dataset(demo_dir, ENGINE_SAMPLES).collect()
    versions = engine.filter(pl.col("model") == spec.canary.model).get_column("model_version").unique()
    assert versions.null_count() == 0 and versions.len() == 2


def test_gpu_samples_include_mig_slices_and_shared_gpus_attributed_to_tenants(demo_dir: Path) -> None:
    gpu = read_dataset(demo_dir, GPU_SAMPLES).collect()
    mig = gpu.filter(pl.col("mig_profile").is_not_null())
    assert mig.height and mig.get_column("gpu_util_ratio").null_count() == mig.height, "no *_UTIL on MIG"
    assert mig.filter(pl.col("tenant").is_not_null()).height, "a used MIG slice belongs to a tenant"
    shares = gpu.filter(pl.col("pod_share"))
    assert shares.get_column("pod").n_unique() >= 2, "the time-sliced GPU is split between its pods"
    # Device rows of the shared GPU carry its whole framebuffer; the share rows split it, never both summed.
    shared_uuid = shares.get_column("gpu_uuid")[0]
    at = shares.get_column("ts")[0]
    device = gpu.filter((pl.col("gpu_uuid") == shared_uuid) & (pl.col("ts") == at) & ~pl.col("pod_share"))
    share_sum = shares.filter((pl.col("gpu_uuid") == shared_uuid) & (pl.col("ts") == at))["fb_used_bytes"].sum()
    assert device.height == 1
    assert device["fb_used_bytes"][0] == pytest.approx(share_sum)
    assert gpu.filter(pl.col("tenant").is_null()).height, "idle GPUs are kept, without a tenant"


def test_old_and_new_vllm_names_normalise_to_the_same_columns(demo_dir: Path) -> None:
    engine = read_dataset(demo_dir, ENGINE_SAMPLES).collect().filter(pl.col("engine") == "vllm")
    per_model = engine.group_by("model").agg(pl.col("kv_cache_usage_ratio").is_not_null().all().alias("kv"))
    assert per_model.get_column("kv").all(), per_model
    hist = read_dataset(demo_dir, ENGINE_HIST).collect().filter(pl.col("engine") == "vllm")
    with_itl = set(hist.filter(pl.col("metric") == "itl_s").get_column("model").unique())
    assert with_itl == set(engine.get_column("model").unique())


def test_the_data_sets_are_partitioned_by_tenant_and_date(demo_dir: Path) -> None:
    parts = sorted(p.relative_to(demo_dir).parts[:3] for p in (demo_dir / "engine_samples").rglob("*.parquet"))
    tenants = {p[1] for p in parts}
    assert tenants == {f"tenant={t}" for t in default_fleet_spec().tenants}
    assert all(p[2].startswith("date=") for p in parts)


def test_the_demo_writes_the_raw_files_the_next_stage_ingests(demo_dir: Path) -> None:
    raw = demo_dir / "raw"
    assert (raw / "requests.jsonl").stat().st_size > 0
    assert (raw / "events.json").stat().st_size > 0
    assert (raw / "kubernetes.json").stat().st_size > 0


def _window(root: Path) -> tuple:
    rollups = read_dataset(root, ROLLUPS).collect()
    return rollups.get_column("ts").min(), rollups.get_column("ts").max() + timedelta(minutes=1)


def test_the_demo_writes_every_stream_for_every_tenant_and_model(demo_dir: Path) -> None:
    spec = default_fleet_spec()
    want = {(m.tenant, m.name) for m in spec.models}
    requests = read_dataset(demo_dir, REQUESTS).collect()
    assert set(requests.select("tenant", "model").unique().iter_rows()) == want
    rollups = read_dataset(demo_dir, ROLLUPS).collect().filter(pl.col("model").is_not_null())
    assert set(rollups.select("tenant", "model").unique().iter_rows()) == want
    assert {t for t, _ in want} <= set(read_dataset(demo_dir, ALLOCATIONS).collect().get_column("tenant"))
    inventory = read_dataset(demo_dir, INVENTORY).collect()
    assert set(inventory.get_column("node")) == {n.name for n in spec.nodes}
    deployments = read_dataset(demo_dir, DEPLOYMENTS).collect()
    assert spec.canary is not None
    warmup = pl.col("action").is_in(["warmup_started", "warmup_done"])
    assert set(deployments.filter(~warmup).get_column("model")) == {spec.canary.model}
    assert set(deployments.filter(warmup).select("tenant", "model").unique().iter_rows()) == want


def test_the_rollups_carry_the_canary_version_next_to_the_baseline(demo_dir: Path) -> None:
    spec = default_fleet_spec()
    assert spec.canary is not None
    rollups = read_dataset(demo_dir, ROLLUPS).collect().filter(pl.col("model") == spec.canary.model)
    served = rollups.filter(pl.col("requests") > 0).get_column("model_version").unique()
    assert served.len() == 2
    engine_versions = read_dataset(demo_dir, ENGINE_SAMPLES).collect().filter(
        pl.col("model") == spec.canary.model).get_column("model_version").unique()
    assert set(served) == set(engine_versions)


def test_rollup_totals_reconcile_with_the_raw_requests(demo_dir: Path) -> None:
    lo, hi = _window(demo_dir)
    raw = read_dataset(demo_dir, REQUESTS, start=lo, end=hi).collect()
    rollups = read_dataset(demo_dir, ROLLUPS).collect()
    assert rollups.get_column("requests").sum() == raw.height > 0
    assert rollups.get_column("output_tokens").sum() == raw.get_column("output_tokens").sum()
    assert rollups.get_column("prompt_tokens").sum() == raw.get_column("prompt_tokens").sum()
    assert rollups.get_column("errors").sum() == raw.filter(pl.col("status") != "ok").height


def test_rerunning_the_rollup_over_an_overlapping_window_adds_no_rows(demo_dir: Path) -> None:
    before = read_dataset(demo_dir, ROLLUPS).collect()
    lo, hi = _window(demo_dir)
    assert main(["rollup", "--data-dir", str(demo_dir), "--start", (lo + timedelta(minutes=2)).isoformat(),
                 "--end", hi.isoformat()]) == 0
    after = read_dataset(demo_dir, ROLLUPS).collect()
    key = list(ROLLUPS.key)
    assert after.height == before.height
    assert after.select(key).is_duplicated().sum() == 0
    assert_frame_equal(after.sort(key, nulls_last=True), before.sort(key, nulls_last=True))
