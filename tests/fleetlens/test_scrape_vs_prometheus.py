"""The two collection paths agree: scraping the simulated fleet directly, and reading the same pages back
from a real Prometheus through `fleetlens collect --prometheus`, give the same data sets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from analytics.schema import ENGINE_HIST, ENGINE_SAMPLES, GPU_SAMPLES, Dataset
from collectors.exposition import parse_text
from collectors.metrics.rounds import attach_target_labels, build_batch, target_labels
from collectors.metrics.scrape import fetch_pages
from collectors.normalise.frames import Normalised, concat
from collectors.samples import META_COLUMNS, NAME, TS, VALUE
from collectors.store.datasets import read_dataset
from fleetlens.cli import main
from simulator import Simulation, default_fleet_spec
from tests.servers import Series, Server

pytestmark = pytest.mark.realserver

ROUNDS = 6
INTERVAL_S = 15.0


def _as_series(pages: Sequence[pl.DataFrame]) -> list[Series]:
    """Wide frames (target labels attached, ts stamped) -> the series Prometheus would have stored."""
    frame = pl.concat(pages, how="diagonal_relaxed")
    labels = [c for c in frame.columns if c not in META_COLUMNS]
    # Prometheus drops empty label values; a null is an absent label.
    frame = frame.with_columns(pl.col(c).replace("", None) for c in labels)
    out = []
    for key, group in frame.sort(TS).group_by([NAME, *labels], maintain_order=True):
        name, *values = key
        out.append(Series.of(
            str(name), {k: str(v) for k, v in zip(labels, values, strict=True) if v is not None},
            [int(t.timestamp() * 1000) for t in group.get_column(TS)],
            group.get_column(VALUE).fill_null(float("nan")).to_list(),
        ))
    return out


@pytest.fixture(scope="module")
def both_paths(prometheus_factory: Callable[[Sequence[Series]], Server]) -> tuple[Normalised, Server, tuple]:
    """Scrape the simulated fleet for a few rounds; load the very same pages into a real Prometheus."""
    spec = default_fleet_spec()
    direct: list[Normalised] = []
    pages: list[pl.DataFrame] = []
    with Simulation(spec, manual=True) as sim:
        for i in range(ROUNDS):
            if i:
                sim.clock.advance(INTERVAL_S)
            sim.sync()
            results = fetch_pages(sim.targets(), clock=sim.clock.now)
            assert all(r.ok for r in results), [r.error for r in results if not r.ok]
            direct.append(build_batch(results, cluster=spec.cluster).normalised)
            for r in results:
                assert r.text is not None
                wide = parse_text(r.text, source=r.target.url).wide().with_columns(
                    pl.lit(r.ts).cast(pl.Datetime("ms", "UTC")).alias(TS))
                pages.append(attach_target_labels(wide, target_labels(r.target, cluster=spec.cluster)))
        window = (spec.start - timedelta(seconds=1), sim.now + timedelta(seconds=1))
    return concat(direct), prometheus_factory(_as_series(pages)), window


def _sorted(frame: pl.DataFrame, ds: Dataset) -> pl.DataFrame:
    return frame.sort([c for c in ds.key if c in frame.columns], nulls_last=True)


@pytest.mark.parametrize("ds", [GPU_SAMPLES, ENGINE_SAMPLES, ENGINE_HIST], ids=lambda d: d.name)
def test_collect_from_prometheus_stores_what_the_direct_scrape_saw(
    both_paths: tuple[Normalised, Server, tuple], tmp_path: Path, ds: Dataset
) -> None:
    direct, prometheus, (start, end) = both_paths
    assert main(["collect", "--prometheus", prometheus.url, "--data-dir", str(tmp_path),
                 "--start", start.isoformat(), "--end", end.isoformat()]) == 0
    stored = read_dataset(tmp_path, ds).collect()
    expected = {"gpu_samples": direct.gpu, "engine_samples": direct.engine, "engine_hist": direct.hist}[ds.name]
    assert expected.height > 0
    assert_frame_equal(_sorted(stored, ds), _sorted(expected, ds), check_exact=False, rel_tol=1e-12)
