"""Benchmark: fleetlens ``build_rollups`` (requests part) against DuckDB SQL and a pandas groupby.

N synthetic requests (seeded: 10 tenants x 5 models x 2 versions, arrivals spread over one day,
2 % errors, lognormal latencies, some nulls) are rolled up per tenant x model x version x minute by
the three, each in its own process on the same rows (regenerated there from the seed): counts, errors, token sums and the
p50/p95/p99 of TTFT, ITL, E2E and queue time (linear interpolation: DuckDB ``quantile_cont``,
pandas' default). fleetlens also builds the four mergeable histograms per minute, which the others
do not. The results are checked to agree (counts exactly, quantiles to 1e-9 relative). Timings
exclude generating the rows, handing the rows to each engine (polars -> Arrow for DuckDB, -> pandas for pandas)
and loading each engine (``import duckdb`` + ``connect()``; fleetlens' compiled kernels, printed apart).
Peak memory is each child's peak RSS above its RSS just before the run (``/proc/self/clear_refs``
resets the high-water mark). Run: ``python bench/rollup.py --rows 1000000``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from queue import Empty
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import polars as pl

from analytics.rollup import COUNTS, LATENCIES, QUANTILES, build_rollups
from analytics.schema import REQUESTS, conform

START = datetime(2025, 1, 1, tzinfo=UTC)
END = START + timedelta(days=1)
KEY = ["ts", "tenant", "model", "model_version"]
QCOLS = [f"{m}_p{int(q * 100)}_s" for m in LATENCIES for q in QUANTILES]


def synth_requests(rows: int, seed: int = 7) -> pl.DataFrame:
    """``rows`` seeded synthetic requests with realistic cardinality, conformed to REQUESTS."""
    rng = np.random.default_rng(seed)
    tenants = [f"team-{i}" for i in range(10)]
    combo = rng.integers(0, 10 * 5 * 2, rows)
    tenant_i, model_i, version_i = combo // 10, (combo // 2) % 5, combo % 2
    ms = np.sort(rng.integers(0, 86_400_000, rows)) + int(START.timestamp() * 1000)
    statuses = np.array(["ok", "error", "timeout", "cancelled"])
    status_i = rng.choice(4, rows, p=[0.975, 0.015, 0.005, 0.005])

    def nullable(values: np.ndarray, null_share: float) -> pl.Series:
        mask = rng.random(rows) < null_share
        return pl.Series(values).set(pl.Series(mask), None) if null_share else pl.Series(values)

    ttft = rng.lognormal(-2.0, 0.8, rows)
    frame = pl.DataFrame({
        "ts": pl.Series(ms).cast(pl.Datetime("ms", "UTC")),
        "request_id": pl.int_range(rows, eager=True).cast(pl.Utf8),
        "tenant": pl.Series(tenants)[tenant_i],
        "model": pl.Series([f"model-{i}" for i in range(5)])[model_i],
        "model_version": pl.Series(["v1abcde", "v2fghij"])[version_i],
        "status": pl.Series(statuses)[status_i],
        "prompt_tokens": rng.integers(10, 4000, rows),
        "output_tokens": rng.integers(1, 1000, rows),
        "queue_s": nullable(rng.exponential(0.05, rows), 0.0),
        "ttft_s": nullable(ttft, 0.03),
        "itl_s": nullable(rng.lognormal(-3.5, 0.3, rows), 0.10),
        "e2e_s": nullable(ttft + rng.lognormal(1.0, 0.7, rows), 0.0),
    })
    return conform(frame, REQUESTS, fill_missing=True)


def run_fleetlens(frame: pl.DataFrame) -> tuple[float, pl.DataFrame]:
    """Time ``build_rollups`` on the requests only, after a call on a few rows has loaded the kernels.

    That first call loads the compiled kernels from numba's on-disk cache (~0.4 s, once per
    process), the counterpart of ``import duckdb`` + ``connect()``, which DuckDB's timing leaves out
    too; it is printed as ``fleetlens_kernel_load_s``.
    """
    t0 = time.perf_counter()
    build_rollups(requests=frame.head(100), start=START, end=END)
    print(f"fleetlens_kernel_load_s={time.perf_counter() - t0:.3f}", flush=True)
    t0 = _start()
    out = build_rollups(requests=frame, start=START, end=END)
    return _stop("fleetlens", t0), out.select(*KEY, *COUNTS, *QCOLS)


def run_duckdb(frame: pl.DataFrame) -> tuple[float, pl.DataFrame]:
    """Time the same rollup as one DuckDB SQL query over the Arrow table."""
    import duckdb

    table = frame.to_arrow()  # noqa: F841  (DuckDB reads it by name)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    qs = ", ".join(str(q) for q in QUANTILES)
    lat = ",\n".join(f"quantile_cont({m}_s, [{qs}]) AS {m}_q" for m in LATENCIES)
    sql = f"""
        SELECT time_bucket(INTERVAL '1 minute', ts) AS ts, tenant, model, model_version,
               count(*) AS requests,
               count(*) FILTER (WHERE status IN ('error', 'timeout')) AS errors,
               coalesce(sum(prompt_tokens), 0) AS prompt_tokens,
               coalesce(sum(output_tokens), 0) AS output_tokens,
               {lat}
        FROM "table"
        WHERE ts >= TIMESTAMPTZ '{START.isoformat()}' AND ts < TIMESTAMPTZ '{END.isoformat()}'
        GROUP BY ALL
    """
    t0 = _start()
    res = con.sql(sql).to_arrow_table()
    elapsed = _stop("duckdb", t0)
    out = pl.from_arrow(res)
    assert isinstance(out, pl.DataFrame)
    out = out.with_columns(
        pl.col(f"{m}_q").list.get(i).alias(f"{m}_p{int(q * 100)}_s")
        for m in LATENCIES for i, q in enumerate(QUANTILES)
    )
    return elapsed, out.select(*KEY, *COUNTS, *QCOLS)


def run_pandas(frame: pl.DataFrame) -> tuple[float, pl.DataFrame]:
    """Time the same rollup as a pandas groupby (quantiles with pandas' default linear interpolation)."""
    import pandas as pd

    df = frame.select(*KEY, "status", "prompt_tokens", "output_tokens", *(f"{m}_s" for m in LATENCIES)).to_pandas()
    t0 = _start()
    df = df[(df["ts"] >= pd.Timestamp(START)) & (df["ts"] < pd.Timestamp(END))]
    df = df.assign(ts=df["ts"].dt.floor("min"), errors=df["status"].isin(["error", "timeout"]))
    g = df.groupby(KEY, sort=False, observed=True)
    counts = g.agg(requests=("status", "size"), errors=("errors", "sum"),
                   prompt_tokens=("prompt_tokens", "sum"), output_tokens=("output_tokens", "sum"))
    lat = g[[f"{m}_s" for m in LATENCIES]].quantile(list(QUANTILES)).unstack()
    lat.columns = [f"{m.removesuffix('_s')}_p{int(q * 100)}_s" for m, q in lat.columns]
    res = counts.join(lat).reset_index()
    elapsed = _stop("pandas", t0)
    return elapsed, pl.from_pandas(res).select(*KEY, *COUNTS, *QCOLS)


def _start() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _stop(name: str, start: tuple[float, float]) -> float:
    """Wall seconds since ``start``; prints the CPU seconds of all threads, steadier when the cores are shared."""
    print(f"{name}_cpu_s={time.process_time() - start[1]:.3f}", flush=True)
    return time.perf_counter() - start[0]


def _child(name: str, rows: int, seed: int, queue: Any) -> None:
    """Run one contender in a fresh process on the seeded rows; report time, peak RSS above the start, result."""
    frame = synth_requests(rows, seed)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS mark: count the run, not the set-up
    base = _status_kb("VmRSS")
    elapsed, out = CONTENDERS[name](frame)
    queue.put((elapsed, (_status_kb("VmHWM") - base) / 1024, out.sort(KEY)))


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure(name: str, rows: int, seed: int) -> tuple[float, float, pl.DataFrame]:
    """(seconds, peak MiB above start, result) of one contender, run in a spawned child.

    Spawned, not forked: a fork of a process whose polars thread pool is running can deadlock.
    """
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(name, rows, seed, queue))
    proc.start()
    while True:
        try:
            result = queue.get(timeout=1.0)
            break
        except Empty:
            if not proc.is_alive():
                raise RuntimeError(f"{name} exited with {proc.exitcode} before reporting") from None
    proc.join()
    return result


CONTENDERS: dict[str, Callable[[pl.DataFrame], tuple[float, pl.DataFrame]]] = {
    "fleetlens": run_fleetlens, "duckdb": run_duckdb, "pandas": run_pandas,
}


def check_agree(ours: pl.DataFrame, other: pl.DataFrame, name: str) -> None:
    """Raise unless ``other`` has the same rows, counts and (to 1e-9 relative) quantiles as ``ours``."""
    if ours.height != other.height:
        raise AssertionError(f"{name}: {other.height} rows, fleetlens {ours.height}")
    other = other.with_columns(pl.col(c).cast(pl.Int64) for c in COUNTS)
    if not ours.select(*KEY, *COUNTS).equals(other.select(*KEY, *COUNTS)):
        raise AssertionError(f"{name}: keys or counts differ")
    for col in QCOLS:
        a, b = ours[col].to_numpy(), other[col].to_numpy()
        if not np.allclose(a, b, rtol=1e-9, atol=0.0, equal_nan=True):
            raise AssertionError(f"{name}: {col} differs (max |diff| {np.nanmax(np.abs(a - b))})")


def main(argv: list[str] | None = None) -> None:
    """Generate the rows, run the three contenders, check they agree, print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-pandas", action="store_true", help="leave pandas out (slow at 10M rows)")
    opts = parser.parse_args(argv)
    names = [n for n in CONTENDERS if not (opts.skip_pandas and n == "pandas")]
    results = {name: measure(name, opts.rows, opts.seed) for name in names}
    ours = results["fleetlens"][2]
    for name, (_, _, out) in results.items():
        if name != "fleetlens":
            check_agree(ours, out, name)
    print(f"rows={opts.rows} groups={ours.height} agree=yes")
    for name, (secs, mib, _) in results.items():
        print(f"{name}_s={secs:.3f} {name}_peak_rss_mib={mib:.0f}")
    fl = results["fleetlens"][0]
    print(f"rollup_vs_duckdb_ratio={fl / results['duckdb'][0]:.3f}")
    if "pandas" in results:
        print(f"rollup_vs_pandas_ratio={fl / results['pandas'][0]:.3f}")


if __name__ == "__main__":
    main()
