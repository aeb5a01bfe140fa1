"""The subcommands' bodies: build objects from flags and config, call the library, print results."""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from analytics.errors import ConfigError, InputError, UsageError
from collectors.exposition import parse_text
from collectors.metrics.rounds import ScrapeBatch
from collectors.samples import META_COLUMNS, NAME, TS, VALUE
from fleetlens.config import Config, load_config
from fleetlens.pipeline import (
    CollectSummary,
    collect_rounds,
    summarise_gpus,
    summarise_models,
    summarise_rollups,
    summarise_store,
    write_normalised,
)
from fleetlens.text_files import read_utf8

# Tables of tenants x models need room: at least 120 columns, more when the terminal has them.
console = Console(width=max(shutil.get_terminal_size((140, 40)).columns, 120))
_err = Console(stderr=True)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def load_optional_config(config_path: Path | None) -> Config | None:
    return load_config(config_path) if config_path is not None else None


def parse_file(path: Path, *, fmt: str, strict: bool, limit: int | None) -> int:
    """``fleetlens parse``: print the samples of an exposition file; dropped lines go to stderr."""
    source = "<stdin>" if str(path) == "-" else str(path)
    try:
        data = sys.stdin.buffer.read() if source == "<stdin>" else path.read_bytes()
        text = data.decode("utf-8", errors="replace")  # bad bytes become U+FFFD: the line is dropped, named
    except OSError as exc:
        raise InputError(source, None, f"cannot read: {exc.strerror}") from exc
    page = parse_text(text, strict=strict, source=source)
    wide = page.wide()
    labels = [c for c in wide.columns if c not in META_COLUMNS]
    rows = wide.iter_rows(named=True)
    if fmt == "jsonl":
        out = sys.stdout
        for row in rows:
            ts = row[TS]
            record = {
                "name": row[NAME],
                "labels": {k: row[k] for k in labels if row[k] is not None},
                "value": _json_float(row[VALUE]),
                "timestamp_ms": int(ts.timestamp() * 1000) if ts is not None else None,
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    else:
        print(f"{source}: {wide.height} samples, {len(page.dropped)} malformed line(s) dropped")
        table = Table()
        longest = max((len(n) for n in wide.get_column(NAME).head(limit or wide.height)), default=4)
        table.add_column("name", no_wrap=True, min_width=min(longest, 60))
        table.add_column("labels", overflow="fold")
        table.add_column("value", no_wrap=True)
        table.add_column("timestamp", no_wrap=True)
        for i, row in enumerate(rows):
            if limit is not None and i >= limit:
                break
            lab = ",".join(f'{k}="{row[k]}"' for k in labels if row[k] is not None)
            table.add_row(row[NAME], lab, repr(row[VALUE]), str(row[TS] or ""))
        console.print(table)
    for d in page.dropped:
        print(f"dropped {source}:{d.line}: {d.reason}", file=sys.stderr)
    for w in page.warnings:
        print(f"warning {source}:{w.line}: {w.reason}", file=sys.stderr)
    return 0


def _json_float(v: float | None) -> float | str | None:
    """JSON has no NaN/Inf: write those as the exposition spells them."""
    if v is None or math.isfinite(v):
        return v
    return "NaN" if math.isnan(v) else ("+Inf" if v > 0 else "-Inf")


def simulate(*, config_path: Path | None, seed: int | None, speed: float | None, duration_s: float | None,
             files_dir: Path | None) -> int:
    """``fleetlens simulate``: serve the simulated fleet until interrupted or ``duration_s`` passes."""
    from fleetlens.demo import write_sim_files
    from simulator import Simulation, build_fleet_spec

    cfg = load_optional_config(config_path)
    overrides: dict[str, object] = dict(cfg.simulator or {}) if cfg is not None else {}
    if seed is not None:
        overrides["seed"] = seed
    if speed is not None:
        overrides["speed"] = speed
    spec = build_fleet_spec(overrides)
    with Simulation(spec) as sim:
        # Plain lines, one target each, so scripts can read the URLs.
        for t in sim.targets():
            where = "/".join(x for x in (t.labels.get("namespace"), t.labels.get("pod")) if x)
            print(f"{t.format.value:8} {t.url}  {where}  {t.labels.get('model_version', '')}".rstrip(), flush=True)
        if files_dir is not None:
            try:
                write_sim_files(sim, files_dir, sim.spec.start, sim.now)
            except OSError as exc:
                raise UsageError("--write-files", f"{exc.filename or files_dir}: {exc.strerror or exc}") from exc
        print(f"serving on 127.0.0.1 at {spec.speed:g} simulated s per wall s; Ctrl-C stops", flush=True)
        deadline = None if duration_s is None else time.monotonic() + duration_s
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic())))
    return 0


def _progress() -> Progress:
    # Only on a terminal: piped or captured stderr gets the errors alone, one line each.
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=_err, transient=False, disable=not _err.is_terminal)


def collect(*, config_path: Path | None, data_dir: Path | None, rounds: int, prometheus: str | None,
            start: datetime | None, end: datetime | None, pod_list: Path | None) -> int:
    """``fleetlens collect``: scrape configured targets, or read a Prometheus-API window, into data sets."""
    cfg = load_optional_config(config_path)
    root = data_dir or (cfg.data_dir if cfg is not None else None)
    if root is None:
        raise ConfigError("data_dir", "no data directory: pass --data-dir or set data_dir in the config")
    url = prometheus or (cfg.prometheus.url if cfg is not None and cfg.prometheus is not None else None)
    if url is not None:
        if pod_list is not None:
            raise UsageError("--pod-list", "attributes scrape targets: it cannot be used with a Prometheus-API URL")
        return _collect_prometheus(cfg, url, Path(root), start, end)
    if start is not None or end is not None:
        raise UsageError("--start" if start is not None else "--end",
                         "needs --prometheus (or prometheus.url in the config): a scrape reads current values")
    if cfg is None or not cfg.collect.targets:
        raise ConfigError("collect.targets", "nothing to collect: no targets configured and no --prometheus",
                          source=cfg.source if cfg is not None else "config")
    targets = list(cfg.collect.targets)
    pods_path = pod_list or cfg.collect.kubernetes.pod_list
    if pods_path is not None:
        from collectors.kube.pods import parse_pod_list
        from collectors.kube.target_attribution import attribute_targets

        doc = read_utf8(Path(pods_path))
        targets = attribute_targets(targets, parse_pod_list(doc, source=str(pods_path)))
    with _progress() as progress:
        task = progress.add_task("scraping", total=rounds)

        def advance(_i: int, _batch: ScrapeBatch) -> None:
            progress.advance(task)

        summary = collect_rounds(
            targets, root=Path(root), rounds=rounds, interval_s=cfg.collect.interval_s, clock=_utc_now,
            sleep=time.sleep, cluster=cfg.cluster, after_round=advance, timeout_s=cfg.collect.timeout_s,
            retries=cfg.collect.retries, concurrency=cfg.collect.concurrency,
        )
    _print_summary(summary, Path(root))
    return 0 if summary.scrapes_ok else 1


def _collect_prometheus(cfg: Config | None, url: str, root: Path, start: datetime | None,
                        end: datetime | None) -> int:
    from collectors.metrics.prom_api import PromApiSource

    end = end or _utc_now()
    start = start or end - timedelta(hours=1)
    if start >= end:
        raise UsageError("--start", f"{start.isoformat()} is not before the window's end {end.isoformat()}")
    pcfg = cfg.prometheus if cfg is not None else None
    source = PromApiSource(
        url,
        chunk_s=pcfg.chunk_s if pcfg is not None else 3600,
        headers={"Authorization": f"Bearer {pcfg.bearer_token}"} if pcfg is not None and pcfg.bearer_token else None,
        **({"jobs": pcfg.selectors} if pcfg is not None and pcfg.selectors else {}),
    )
    summary = CollectSummary()
    with _progress() as progress:
        task = progress.add_task(f"querying {url}", total=1)
        normalised = source.collect(start, end)
        write_normalised(root, normalised, None, summary)
        progress.advance(task)
    _print_summary(summary, root)
    return 0


def _print_summary(summary: CollectSummary, root: Path) -> None:
    console.print(
        f"{summary.rounds} round(s), {summary.scrapes_ok} scrape(s) up, {summary.scrapes_failed} down, "
        f"{summary.dropped_lines} malformed line(s) dropped"
    )
    table = Table("data set", "rows written", title=f"written under {root}")
    for name, n in sorted(summary.rows.items()):
        table.add_row(name, str(n))
    console.print(table)


def demo(*, data_dir: Path, minutes: float, seed: int, config_path: Path | None) -> int:
    """``fleetlens demo``: simulate, collect every stream for ``minutes`` simulated minutes, show the data sets."""
    from fleetlens.demo import run_demo
    from fleetlens.pipeline import build_and_write_rollups
    from simulator import build_fleet_spec

    cfg = load_optional_config(config_path)
    overrides: dict[str, object] = dict(cfg.simulator or {}) if cfg is not None else {}
    overrides.setdefault("seed", seed)
    spec = build_fleet_spec(overrides)
    interval_s = cfg.collect.interval_s if cfg is not None else 15.0
    rounds = max(1, int(minutes * 60 / interval_s))
    console.print(f"simulated fleet: seed {spec.seed}, cluster {spec.cluster}, tenants {', '.join(spec.tenants)}; "
                   f"scraping its /metrics endpoints on 127.0.0.1 every {interval_s:g} simulated s")
    with _progress() as progress:
        task = progress.add_task(f"collecting {minutes:g} simulated minutes", total=rounds)
        result = run_demo(spec, root=data_dir, minutes=minutes, interval_s=interval_s,
                          on_round=lambda _i: progress.advance(task))
    _print_summary(result.collect, data_dir)
    _print_ingest(result.ingest, data_dir)
    rollups = build_and_write_rollups(data_dir, start=result.start, end=result.end)
    for title, frame in (("data sets", summarise_store(data_dir)),
                         ("tenants x models (engine_samples)", summarise_models(data_dir)),
                         ("GPUs per tenant (gpu_samples; empty tenant = idle)", summarise_gpus(data_dir)),
                         ("rollups: tenant x model x version", summarise_rollups(rollups))):
        print_frame(title, frame)
    console.print(f"raw request log, OTLP traces, rollout events and pod/node lists: {result.raw_dir}")
    return 0


def print_frame(title: str, frame: pl.DataFrame) -> None:
    table = Table(*frame.columns, title=title)
    for row in frame.iter_rows():
        table.add_row(*(_cell(v) for v in row))
    console.print(table)


def _cell(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"
    return str(v)


def resolve_data_dir(cfg: Config | None, data_dir: Path | None) -> Path:
    if data_dir is not None:
        return Path(data_dir)
    if cfg is not None:
        return Path(cfg.data_dir)
    raise ConfigError("data_dir", "no data directory: pass --data-dir or set data_dir in the config")


def ingest(*, config_path: Path | None, data_dir: Path | None, gateway_logs: list[Path], otlp: list[Path],
           events: list[Path], kubernetes: Path | None, at: datetime | None, cluster: str | None) -> int:
    """``fleetlens ingest``: file-borne streams into data sets; every bad line is listed, good ones kept."""
    from fleetlens.ingest import IngestReport, ingest_events, ingest_kubernetes, ingest_requests, read_json

    cfg = load_optional_config(config_path)
    root = resolve_data_dir(cfg, data_dir)
    if not (gateway_logs or otlp or events or kubernetes):
        raise ConfigError("ingest", "nothing to ingest: give --gateway-log, --otlp, --events or --kubernetes")
    report = IngestReport()
    pods = doc = None
    if kubernetes is not None:
        doc = read_json(kubernetes)
        ts = at or datetime.fromtimestamp(kubernetes.stat().st_mtime, UTC)
        pods = ingest_kubernetes(root, doc, source=str(kubernetes), ts=ts,
                                 cluster=cluster or (cfg.cluster if cfg else "default"), report=report)
    if events:
        ingest_events(root, events, pods=pods, pods_doc=doc, report=report)
    if gateway_logs or otlp:
        ingest_requests(root, gateway_logs, otlp, pods=pods, report=report)
    _print_ingest(report, root)
    return 0


def _print_ingest(report: object, root: Path) -> None:
    rows = report.rows  # type: ignore[attr-defined]
    problems = report.problems  # type: ignore[attr-defined]
    table = Table("data set", "rows written", title=f"written under {root}")
    for name, n in sorted(rows.items()):
        table.add_row(name, str(n))
    console.print(table)
    for p in problems[:50]:
        print(f"skipped {p}", file=sys.stderr)
    if len(problems) > 50:
        print(f"... and {len(problems) - 50} more skipped lines/items", file=sys.stderr)


def rollup(*, config_path: Path | None, data_dir: Path | None, start: datetime, end: datetime) -> int:
    """``fleetlens rollup``: rebuild the per-minute rollups of ``[start, end)`` from the stored data sets."""
    from fleetlens.pipeline import build_and_write_rollups

    root = resolve_data_dir(load_optional_config(config_path), data_dir)
    rollups = build_and_write_rollups(root, start=start, end=end)
    minutes = rollups.get_column("ts").n_unique() if rollups.height else 0
    console.print(f"{rollups.height} rollup rows over {minutes} minute(s) written under {root}")
    print_frame("per tenant x model x version", summarise_rollups(rollups))
    return 0
