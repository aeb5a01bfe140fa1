"""`fleetlens demo` end to end: the simulator served over HTTP, scraped, normalised and stored."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import fleetlens.demo
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
from simulator import FleetSpec, Simulation, default_fleet_spec
from simulator.requests_log import log_line

pytestmark = pytest.mark.slow


@dataclass(frozen=True, slots=True)
class DemoRun:
    """One `fleetlens demo` run: its data folder, the simulated fleet's spec and the window the demo reports."""

    root: Path
    spec: FleetSpec
    start: datetime
    end: datetime


def _run_demo(root: Path, *args: str) -> DemoRun:
    """``fleetlens demo`` through the CLI, keeping the spec it simulated and the window ``run_demo`` reported."""
    seen: dict[str, object] = {}
    real = fleetlens.demo.run_demo

    def spy(spec: FleetSpec, **kw: object) -> fleetlens.demo.DemoResult:
        seen["spec"], seen["result"] = spec, real(spec, **kw)  # type: ignore[arg-type]
        return seen["result"]  # type: ignore[return-value]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fleetlens.demo, "run_demo", spy)
        assert main(["demo", "--data-dir", str(root), *args]) == 0
    result = seen["result"]
    assert isinstance(result, fleetlens.demo.DemoResult)
    return DemoRun(root, seen["spec"], result.start, result.end)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """Seven simulated minutes: past the canary's start (5 min) so both versions of its model serve."""
    return _run_demo(tmp_path_factory.mktemp("demo"), "--minutes", "7")


@pytest.fixture(scope="module")
def demo_dir(demo_run: DemoRun) -> Path:
    return demo_run.root


@pytest.fixture(scope="module")
def mid_minute_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """Three simulated minutes from 08:00:20: the run starts and ends inside a minute."""
    root = tmp_path_factory.mktemp("demo-mid-minute")
    config = root.parent / f"{root.name}.yaml"
    config.write_text('simulator:\n  start: "2025-06-02T08:00:20Z"\n', encoding="utf-8")
    return _run_demo(root, "--minutes", "3", "--config", str(config))


@pytest.fixture(params=["demo_run", "mid_minute_run"])
def run(request: pytest.FixtureRequest) -> DemoRun:
    return request.getfixturevalue(request.param)


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


def _minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def test_the_run_reports_its_own_window(run: DemoRun) -> None:
    assert run.start == run.spec.start
    scrapes = read_dataset(run.root, SCRAPES).collect().get_column("ts")
    assert (scrapes.min(), scrapes.max()) == (run.start, run.end)  # the first and the last scrape round
    assert run.end.second != 0, "the run ends inside a minute: the rollups must still cover its last seconds"


def test_rollups_cover_every_minute_of_the_run(run: DemoRun) -> None:
    minutes = read_dataset(run.root, ROLLUPS).collect().get_column("ts").unique().sort().to_list()
    want, t = [], _minute(run.start)
    while t < run.end:
        want.append(t)
        t += timedelta(minutes=1)
    assert minutes == want


def _simulated_requests(run: DemoRun) -> pl.DataFrame:
    """The gateway log lines of every request the simulated fleet finished in the run, from a fresh simulation."""
    sim = Simulation(run.spec, manual=True)
    sim.advance_to(run.end)
    lines = [log_line(sim.state, r, lambda _pod: None) for r in sim.requests(run.start, run.end)]
    return pl.DataFrame(lines).select(
        "prompt_tokens", "completion_tokens",
        # error or timeout: not 2xx, and not the client's doing (Envoy DC, 499 -> cancelled)
        (~pl.col("response_code").is_between(200, 299) & (pl.col("response_flags") != "DC")
         & (pl.col("response_code") != 499)).alias("error"),
    )


def test_rollup_totals_reconcile_with_the_requests_over_the_whole_run(run: DemoRun) -> None:
    simulated = _simulated_requests(run)
    requests = read_dataset(run.root, REQUESTS).collect()
    in_run = requests.filter((pl.col("ts") >= run.start) & (pl.col("ts") < run.end))
    assert in_run.height == requests.height == simulated.height > 0
    want = {
        "requests": simulated.height,
        "prompt_tokens": simulated.get_column("prompt_tokens").sum(),
        "output_tokens": simulated.get_column("completion_tokens").sum(),
        "errors": simulated.get_column("error").sum(),
    }
    from_data_set = {
        "requests": in_run.height,
        "prompt_tokens": in_run.get_column("prompt_tokens").sum(),
        "output_tokens": in_run.get_column("output_tokens").sum(),
        "errors": in_run.filter(pl.col("status").is_in(["error", "timeout"])).height,
    }
    rollups = read_dataset(run.root, ROLLUPS).collect()
    in_rollups = {c: rollups.get_column(c).sum() for c in want}
    assert from_data_set == want
    assert in_rollups == want
    last = rollups.filter(pl.col("ts") == _minute(run.end)).get_column("requests").sum()
    assert last == in_run.filter(pl.col("ts") >= _minute(run.end)).height > 0


def _allocated_s(allocations: pl.DataFrame, start: datetime, end: datetime) -> float:
    """GPU-seconds the allocation snapshots show in [start, end]: each holds until its cluster's next one, the last to ``end``."""
    total = 0.0
    for _, part in allocations.group_by("cluster"):
        snaps = sorted(set(part.get_column("ts")))
        until = dict(zip(snaps, [*snaps[1:], end], strict=True))
        for at, fraction in part.select("ts", "gpu_fraction").iter_rows():
            held = (min(until[at], end) - max(at, start)).total_seconds()
            total += fraction * max(held, 0.0)
    return total


def _energy_j(gpu: pl.DataFrame, start: datetime, end: datetime) -> float:
    """Joules the devices' energy counters show in [start, end], counter resets included."""
    total = 0.0
    counters = gpu.filter(~pl.col("pod_share") & pl.col("energy_j_total").is_not_null()
                          & (pl.col("ts") >= start) & (pl.col("ts") <= end))
    for _, part in counters.group_by("cluster", "node", "gpu_uuid"):
        values = part.group_by("ts").agg(pl.col("energy_j_total").max()).sort("ts").get_column("energy_j_total").to_numpy()
        steps = np.diff(values)
        total += float(np.where(steps < 0, values[1:], steps).sum())
    return total


def _busy_s(gpu: pl.DataFrame, allocations: pl.DataFrame, end: datetime, interval_s: float) -> float:
    """GPU-seconds busy the held samples show, each standing for one scrape interval of its pod's unit."""
    util = pl.when(pl.col("mig_instance").is_null()).then(pl.coalesce("gpu_util_ratio", "gr_engine_active_ratio")) \
        .otherwise(pl.col("gr_engine_active_ratio"))
    fraction = allocations.group_by("tenant", "pod").agg(
        (pl.col("gpu_fraction").sum() / pl.col("ts").n_unique()).alias("fraction"))
    held = gpu.filter(pl.col("pod").is_not_null() & (pl.col("ts") < end)).join(fraction, on=["tenant", "pod"])
    exclusive = (~pl.col("pod_share")).cast(pl.Int64).sum().over("ts", "tenant", "pod")
    unit = pl.when(pl.col("pod_share")).then(1.0).otherwise(pl.col("fraction") / exclusive)
    return held.select((util * unit * interval_s).sum()).item()


def test_gpu_seconds_and_energy_reconcile_with_the_samples_and_allocations_over_the_whole_run(run: DemoRun) -> None:
    gpu = read_dataset(run.root, GPU_SAMPLES).collect()
    allocations = read_dataset(run.root, ALLOCATIONS).collect()
    rollups = read_dataset(run.root, ROLLUPS).collect()
    allocated = _allocated_s(allocations, run.start, run.end)
    assert allocated > 0
    assert rollups.get_column("gpu_allocated_s").sum() == pytest.approx(allocated, rel=1e-9)
    assert rollups.get_column("energy_j").sum() == pytest.approx(_energy_j(gpu, run.start, run.end), rel=1e-9)
    # Busy is a per-minute mean of sampled utilisation: the same integral, sampled differently.
    assert rollups.get_column("gpu_busy_s").sum() == pytest.approx(_busy_s(gpu, allocations, run.end, 15.0), rel=0.03)
    over = rollups.filter(pl.col("gpu_busy_s") > pl.col("gpu_allocated_s") * (1 + 1e-9))
    assert over.is_empty(), over
    held = rollups.filter(pl.col("ts") == _minute(run.end)).get_column("gpu_allocated_s").sum()
    assert held > 0, "the run's last, partial minute holds GPU-seconds"


def test_rerunning_the_rollup_with_edges_inside_minutes_rewrites_the_same_rows(demo_run: DemoRun, tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(demo_run.root, root)
    before = read_dataset(root, ROLLUPS).collect()
    key = list(ROLLUPS.key)
    windows = [
        (demo_run.start + timedelta(minutes=2), demo_run.end + timedelta(minutes=5)),  # past the data: nothing more claimed
        (demo_run.start + timedelta(seconds=90), demo_run.start + timedelta(seconds=210)),  # both edges inside minutes
    ]
    for start, end in windows:
        assert main(["rollup", "--data-dir", str(root), "--start", start.isoformat(), "--end", end.isoformat()]) == 0
        after = read_dataset(root, ROLLUPS).collect()
        assert after.select(key).is_duplicated().sum() == 0
        assert_frame_equal(after.sort(key, nulls_last=True), before.sort(key, nulls_last=True))


def test_the_rollup_command_over_the_runs_own_window_rebuilds_every_minute(demo_run: DemoRun, tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(demo_run.root, root)
    before = read_dataset(root, ROLLUPS).collect()
    shutil.rmtree(root / ROLLUPS.name)
    assert main(["rollup", "--data-dir", str(root), "--start", demo_run.start.isoformat(),
                 "--end", demo_run.end.isoformat()]) == 0
    key = list(ROLLUPS.key)
    assert_frame_equal(read_dataset(root, ROLLUPS).collect().sort(key, nulls_last=True), before.sort(key, nulls_last=True))
