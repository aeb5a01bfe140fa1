"""Benchmark: fleetlens ``parse_text`` against ``prometheus_client``'s text parser on one fleet page.

The page (built by ``bench/pages.py`` in this run) is one 1,000-GPU dcgm-exporter scrape plus 100
vLLM engines. Both parsers read the same string; prometheus_client's generator is fully consumed.
Each timing is the best of N runs. Run: ``make bench`` or ``python bench/parse.py [--runs N]``.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client.parser import text_string_to_metric_families

from bench.pages import fleet_page
from collectors.exposition import parse_text


def best_of(runs: int, fn: Callable[[], int]) -> tuple[float, int]:
    """The fastest wall time of ``runs`` calls (garbage collection paused while timing) and the result."""
    best = float("inf")
    result = 0
    for _ in range(runs):
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            result = fn()
            best = min(best, time.perf_counter() - start)
        finally:
            gc.enable()
    return best, result


def ours(text: str) -> int:
    """Parse with fleetlens and touch the result (labels are parsed inside ``parse_text``)."""
    page = parse_text(text, source="bench")
    return page.samples.height


def theirs(text: str) -> int:
    """Parse with prometheus_client, consuming every family and sample."""
    return sum(len(family.samples) for family in text_string_to_metric_families(text))


def main(argv: list[str] | None = None) -> None:
    """Build the page, time both parsers, print the numbers."""
    args = argparse.ArgumentParser(description=__doc__)
    args.add_argument("--runs", type=int, default=15, help="runs of fleetlens (best is kept)")
    args.add_argument("--oracle-runs", type=int, default=3, help="runs of prometheus_client")
    args.add_argument("--gpus", type=int, default=1000)
    args.add_argument("--engines", type=int, default=100)
    opts = args.parse_args(argv)
    text = fleet_page(opts.gpus, opts.engines)
    lines = text.count("\n")
    page = parse_text(text)
    assert not page.dropped, page.dropped[:3]
    t_ours, n_ours = best_of(opts.runs, lambda: ours(text))
    t_wide, _ = best_of(opts.runs, lambda: page.wide().height)
    t_theirs, n_theirs = best_of(opts.oracle_runs, lambda: theirs(text))
    if n_ours != n_theirs:
        raise SystemExit(f"sample counts differ: fleetlens {n_ours}, prometheus_client {n_theirs}")
    print(
        f"page: {opts.gpus} GPUs + {opts.engines} vLLM engines, {lines} lines, {len(text) / 1e6:.1f} MB, "
        f"{n_ours} samples, {page.wide().width - 5} label names"
    )
    print(f"fleetlens_parse_text_s={t_ours:.4f} ({lines / t_ours:,.0f} lines/s, best of {opts.runs})")
    print(f"prometheus_client_s={t_theirs:.4f} ({lines / t_theirs:,.0f} lines/s, best of {opts.oracle_runs})")
    print(f"fleetlens_wide_s={t_wide:.4f} (ParsedPage.wide() of the whole page, after parsing)")
    print(f"parse_plus_wide_speedup_vs_prometheus_client={t_theirs / (t_ours + t_wide):.1f}")
    print(f"parse_speedup_vs_prometheus_client={t_theirs / t_ours:.1f}")


if __name__ == "__main__":
    main()
