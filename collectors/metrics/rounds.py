"""One scrape round end to end: fetch every target, parse, attach target labels, normalise, record."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Unpack

import polars as pl

from analytics.errors import ConfigError, FleetlensError
from analytics.schema import SCRAPES, UTC_MS, conform
from collectors.exposition import parse_text
from collectors.metrics.scrape import FetchOptions, ScrapeResult, afetch_pages
from collectors.normalise.dispatch import normalise
from collectors.normalise.frames import Normalised, concat
from collectors.samples import TS, SourceFormat
from collectors.targets import Target

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class ScrapeBatch:
    """What one round produced: the normalised samples and one SCRAPES row per target."""

    normalised: Normalised
    scrapes: pl.DataFrame


def target_labels(target: Target, *, cluster: str | None = None) -> dict[str, str]:
    """The labels a scrape attaches to every sample of ``target``: its own, ``instance``, ``job``, ``cluster``."""
    labels = {k: v for k, v in target.labels.items() if v}
    labels.setdefault("instance", target.instance)
    labels.setdefault("job", str(target.format))
    if cluster:
        labels.setdefault("cluster", cluster)
    return labels


def attach_target_labels(wide: pl.DataFrame, labels: Mapping[str, str]) -> pl.DataFrame:
    """Add ``labels`` as constant columns, Prometheus ``honor_labels: false`` style.

    An exposed label that collides with a target label moves to ``exported_<name>``, or, if that is
    taken too, to the first free ``exported_exported_<name>``... (Prometheus's
    ``resolveConflictingExposedLabels``), so nothing the page said is lost. Prometheus decides per
    series whether a name is free; here it is per column, which differs only when a page sets
    ``exported_<name>`` on some of its series and not on others.
    """
    taken = set(wide.columns) | set(labels)
    renames: dict[str, str] = {}
    for name in sorted((n for n in labels if n in wide.columns), key=len):
        new = f"exported_{name}"
        while new in taken:
            new = f"exported_{new}"
        renames[name] = new
        taken.add(new)
    out = wide.rename(renames) if renames else wide
    return out.with_columns([pl.lit(v, dtype=pl.Utf8).alias(k) for k, v in labels.items()])


def build_batch(results: Sequence[ScrapeResult], *, cluster: str | None = None) -> ScrapeBatch:
    """Parse and normalise the pages of one round; every target gets a SCRAPES row, none stops the round."""
    rows: list[dict[str, object]] = []
    groups: dict[tuple[str, tuple[str, ...]], list[_Prepared]] = {}
    for result in results:
        row = _row(result)
        rows.append(row)
        prepared = _prepare(result, row, cluster)
        if prepared is not None:
            groups.setdefault((prepared.job, prepared.labels), []).append(prepared)
    parts = [part for group in groups.values() for part in _normalise_group(group)]
    scrapes = pl.DataFrame(rows, schema=SCRAPES.schema) if rows else pl.DataFrame(schema=SCRAPES.schema)
    return ScrapeBatch(concat(parts), conform(scrapes, SCRAPES))


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A parsed page with its target labels attached, waiting to be normalised; ``row`` is its SCRAPES row."""

    job: str
    labels: tuple[str, ...]
    wide: pl.DataFrame
    row: dict[str, object]
    url: str


def _row(result: ScrapeResult) -> dict[str, object]:
    """The SCRAPES row of a result, as a down scrape until its page is normalised."""
    target = result.target
    return {
        "ts": result.ts, "target": target.url, "job": str(target.format),
        "tenant": target.labels.get("namespace") or None, "pod": target.labels.get("pod") or None,
        "up": False, "duration_s": result.duration_s, "http_status": result.http_status,
        "samples": None, "dropped_lines": None, "error": result.error or None,
    }


def _prepare(result: ScrapeResult, row: dict[str, object], cluster: str | None) -> _Prepared | None:
    """Parse one page and attach its target labels; None (and ``row`` says why) if it has nothing usable."""
    target = result.target
    if not result.ok or result.text is None:
        return None
    try:
        page = parse_text(result.text, strict=False, source=target.url)
        wide = page.wide()
    except FleetlensError as exc:
        row["error"] = str(exc)
        return None
    row["samples"], row["dropped_lines"] = wide.height, len(page.dropped)
    if page.dropped:
        first = page.dropped[0]
        row["error"] = f"{len(page.dropped)} malformed line(s) dropped; first at line {first.line}: {first.reason}"
        if wide.height == 0:
            # Nothing readable (an HTML error page, binary garbage): a failed scrape, as in Prometheus.
            row["error"] = f"no samples parsed, {row['error']}"
            return None
    wide = wide.with_columns(pl.col(TS).fill_null(pl.lit(result.ts).cast(UTC_MS)))
    labels = target_labels(target, cluster=cluster)
    return _Prepared(str(target.format), tuple(sorted(labels)), attach_target_labels(wide, labels), row, target.url)


def _normalise_group(group: list[_Prepared]) -> list[Normalised]:
    """Normalise pages of one job and label set together (one call costs about as much as one page).

    If the batch fails or drops rows, each page is normalised alone so the fault or the loss lands
    on the SCRAPES row of the page that caused it.
    """
    job, labels = group[0].job, group[0].labels
    if len(group) > 1:
        try:
            # The normaliser needs to know which labels are ours: for dcgm, `namespace`/`pod` are
            # then the exporter's and the workload's arrive as `exported_*`.
            part = normalise(pl.concat([p.wide for p in group], how="diagonal_relaxed"), SourceFormat(job),
                             target_labels=labels)
        except Exception:
            # Retried page by page below, which names the page at fault.
            log.debug("batch normalise of %d %s pages failed", len(group), job, exc_info=True)
            part = None
        if part is not None and not part.dropped:
            for p in group:
                p.row["up"] = True
            return [part]
    return [part for p in group if (part := _normalise_one(p)) is not None]


def _normalise_one(p: _Prepared) -> Normalised | None:
    """Normalise one page; a failure marks its row down with the message, drops are noted on it."""
    try:
        part = normalise(p.wide, SourceFormat(p.job), target_labels=p.labels)
    except FleetlensError as exc:
        p.row["error"] = str(exc)
        return None
    except Exception as exc:
        # A normaliser bug on one odd page must not stop the round: log it loudly, record it, go on.
        log.exception("scrape of %s: unexpected failure while normalising", p.url)
        p.row["error"] = f"internal error: {type(exc).__name__}: {exc}"
        return None
    p.row["up"] = True
    if part.dropped:
        # An up page can still lose data: say so on its row, so a target without a tenant is visible.
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(part.dropped.items()))
        note = f"normalise dropped {sum(part.dropped.values())} row(s): {reasons}"
        p.row["error"] = f"{p.row['error']}; {note}" if p.row["error"] else note
    return part


class CollectOptions(FetchOptions, total=False):
    """``afetch_pages``'s settings plus the cluster label every sample gets."""

    cluster: str | None


async def acollect_scrape(targets: Sequence[Target], **options: Unpack[CollectOptions]) -> ScrapeBatch:
    """``collect_scrape`` for callers already inside an event loop."""
    cluster = options.pop("cluster", None)
    return build_batch(await afetch_pages(targets, **options), cluster=cluster)


def collect_scrape(targets: Sequence[Target], **options: Unpack[CollectOptions]) -> ScrapeBatch:
    """Scrape every target once and return the normalised samples and one SCRAPES row per target."""
    return asyncio.run(acollect_scrape(targets, **options))


def run_rounds(
    targets: Sequence[Target] | Callable[[], Sequence[Target]],
    *,
    rounds: int | None,
    interval_s: float,
    clock: Clock,
    sleep: Callable[[float], None],
    on_round: Callable[[int, ScrapeBatch], None],
    **scrape_options: Unpack[CollectOptions],
) -> int:
    """Collect every ``interval_s`` (on ``clock``, waiting with ``sleep``) for ``rounds`` rounds (None: forever).

    ``targets`` may be a callable, re-read each round (pods come and go). Rounds keep a fixed
    cadence from the first one; a round that overran its slot starts the next one at once, without
    catching up on the slots it missed. Returns the number of rounds run.
    """
    if interval_s <= 0:
        raise ConfigError("interval_s", f"must be positive, got {interval_s}")
    due = clock()
    done = 0
    while rounds is None or done < rounds:
        wait = (due - clock()).total_seconds()
        if wait > 0:
            sleep(wait)
        current = targets() if callable(targets) else targets
        batch = collect_scrape(current, clock=clock, **scrape_options)
        on_round(done, batch)
        done += 1
        due += timedelta(seconds=interval_s)
        now = clock()
        # Overran: go again now, keep no backlog of missed slots.
        due = max(due, now)
    return done
