"""Read raw samples and range-query results from a Prometheus-API backend (Prometheus, VictoriaMetrics, ...).

Raw samples come from range-vector selectors (``<selector>[<chunk>]``) evaluated with instant
queries at successive chunk ends, through prometheus-api-client's ``custom_query``. The library's own
``get_metric_range_data`` is not used: it rounds times to whole seconds and asks for ``[chunk]`` at
each chunk end, and since Prometheus 2.x closes both ends of a range while VictoriaMetrics (and
Prometheus 3) open the start, a sample on a chunk edge would come back twice from one backend and
once from another. Here each chunk asks for 1 ms more than its span and keeps ``(lo, hi]`` only (the
first chunk keeps ``[start, hi]``), so every backend yields each sample exactly once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

import polars as pl
import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from analytics.errors import CollectorError
from analytics.selectors import vector_selector_problem
from collectors.normalise.dispatch import normalise
from collectors.normalise.frames import Normalised, concat
from collectors.normalise.revision import REVISION_LABELS
from collectors.samples import FAMILY, META_SCHEMA, NAME, TS, TYPE, VALUE, SourceFormat

DEFAULT_SELECTORS: Mapping[SourceFormat, str] = MappingProxyType({
    SourceFormat.DCGM: '{__name__=~"DCGM_FI_.*"}',
    SourceFormat.VLLM: '{__name__=~"vllm:.*"}',
    SourceFormat.TRITON: '{__name__=~"nv_.*"}',
    SourceFormat.SGLANG: '{__name__=~"sglang:.*"}',
    SourceFormat.TGI: '{__name__=~"tgi_.*"}',
})
# Labels that Prometheus service discovery attaches to a scraped target (honor_labels: false), as
# the relabel rules of docs/prometheus-relabel.md name them; the last three carry the pod's revision,
# the model_version of engine rows (collectors.normalise.revision; the pod's name is the fallback).
DEFAULT_TARGET_LABELS = ("cluster", "namespace", "pod", "container", "node", "service", "instance", "job",
                         *REVISION_LABELS)
# Prometheus refuses query_range with more than 11,000 points per series; stay under it.
MAX_POINTS_PER_RANGE_QUERY = 10_000
_RETRY_STATUSES = (429, 502, 503, 504)


def fetch_wide(
    url: str,
    selector: str,
    *,
    start: datetime,
    end: datetime,
    chunk_s: float = 3600,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 30,
) -> pl.DataFrame:
    """Every raw sample of ``selector`` with ``start <= ts <= end`` as a wide sample frame."""
    lo, hi_end = _ms(start), _ms(end)
    if hi_end < lo:
        raise CollectorError(f"{url}: end {end} is before start {start}")
    if not math.isfinite(chunk_s) or chunk_s * 1000 < 1:
        raise CollectorError(f"{url}: chunk_s must be at least 1 ms, got {chunk_s!r}")
    selector = selector.strip()
    problem = vector_selector_problem(selector)
    if problem is not None:
        # A range, function or operator here would be spliced into a range query: refuse it.
        raise CollectorError(f"{url}: {selector!r} is not a plain series selector: {problem}")
    chunk_ms = round(chunk_s * 1000)
    client = _client(url, headers, timeout_s)
    series: list[tuple[dict[str, str], list[int], list[float]]] = []
    first = True
    while True:
        hi = min(lo + chunk_ms, hi_end)
        query = f"{selector}[{hi - lo + 1}ms]"
        keep_from = lo if first else lo + 1
        for metric, points in _query(client, url, query, {"time": _seconds(hi)}):
            kept = [(t, v) for t, v in points if keep_from <= t <= hi]
            if kept:
                series.append((metric, [t for t, _ in kept], [v for _, v in kept]))
        if hi >= hi_end:
            break
        lo, first = hi, False
    return _wide(series)


def fetch_range(
    url: str,
    query: str,
    *,
    start: datetime,
    end: datetime,
    step_s: float,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 30,
) -> pl.DataFrame:
    """``query_range`` results as a long frame: ``ts``, ``value`` and one Utf8 column per label."""
    lo, hi = _ms(start), _ms(end)
    step_ms = round(step_s * 1000) if math.isfinite(step_s) else 0
    if hi < lo or step_ms < 1:
        raise CollectorError(f"{url}: bad range start={start} end={end} step_s={step_s!r}")
    client = _client(url, headers, timeout_s)
    rows: list[tuple[dict[str, str], list[int], list[float]]] = []
    span = MAX_POINTS_PER_RANGE_QUERY * step_ms
    chunk_lo = lo
    while chunk_lo <= hi:
        # Chunks continue the same step grid, so no point is asked for twice.
        chunk_hi = min(hi, chunk_lo + span - step_ms)
        params = {"start": _seconds(chunk_lo), "end": _seconds(chunk_hi), "step": _seconds(step_ms)}
        rows.extend(_query(client, url, query, params, ranged=True))
        chunk_lo = chunk_hi + step_ms
    return _long(rows)


@dataclass(frozen=True, slots=True)
class PromApiSource:
    """A Prometheus-API backend read per job with one selector each, normalised into data sets."""

    url: str
    jobs: Mapping[SourceFormat, str] = field(default_factory=lambda: DEFAULT_SELECTORS)
    chunk_s: float = 3600
    headers: Mapping[str, str] | None = field(default=None, repr=False)  # may hold a bearer token
    timeout_s: float = 30
    target_labels: tuple[str, ...] = DEFAULT_TARGET_LABELS

    def fetch(self, start: datetime, end: datetime) -> dict[SourceFormat, pl.DataFrame]:
        """The raw wide frame of each job's selector over ``[start, end]``."""
        return {
            SourceFormat(job): fetch_wide(self.url, selector, start=start, end=end, chunk_s=self.chunk_s,
                                 headers=self.headers, timeout_s=self.timeout_s)
            for job, selector in self.jobs.items()
        }

    def collect(self, start: datetime, end: datetime) -> Normalised:
        """Every job's samples over ``[start, end]``, normalised and stacked."""
        wide = self.fetch(start, end)
        return concat(normalise(frame, job, target_labels=self.target_labels) for job, frame in wide.items())


def _client(url: str, headers: Mapping[str, str] | None, timeout_s: float) -> PrometheusConnect:
    """A PrometheusConnect with few, short retries on overload statuses only."""
    retry = Retry(total=2, backoff_factor=0.2, status_forcelist=_RETRY_STATUSES, allowed_methods=None)
    try:
        return PrometheusConnect(url=url.rstrip("/"), headers=dict(headers) if headers else None,
                                 retry=retry, timeout=timeout_s)
    except (TypeError, ValueError) as exc:
        raise CollectorError(f"{url}: {exc}") from exc


def _query(
    client: PrometheusConnect, url: str, query: str, params: Mapping[str, str], *, ranged: bool = False
) -> Iterable[tuple[dict[str, str], list[tuple[int, float]]]]:
    """Run one query; yield (labels, [(ts ms, value)]) per series; errors become CollectorError."""
    where = f"{url}: query {query!r} {dict(params)}"
    try:
        if ranged:
            # custom_query_range rounds start/end to whole seconds; explicit params take precedence.
            result = client.custom_query_range(query, start_time=datetime.fromtimestamp(0),
                                               end_time=datetime.fromtimestamp(0), step=params["step"],
                                               params=dict(params))
        else:
            result = client.custom_query(query, params=dict(params))
    except PrometheusApiClientException as exc:
        raise CollectorError(f"{where}: {exc}") from exc
    except requests.RequestException as exc:
        raise CollectorError(f"{where}: {type(exc).__name__}: {exc}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        # A 200 whose body is not JSON, or JSON without data.result (e.g. status "error").
        raise CollectorError(f"{where}: unexpected response: {type(exc).__name__}: {exc}") from exc
    if not isinstance(result, list):
        raise CollectorError(f"{where}: data.result is {type(result).__name__}, not a list")
    out = []
    try:
        for item in result:
            metric = {str(k): str(v) for k, v in item["metric"].items()}
            raw = item["values"] if "values" in item else [item["value"]]
            out.append((metric, [(round(float(t) * 1000), float(v)) for t, v in raw]))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CollectorError(f"{where}: malformed series in result: {type(exc).__name__}: {exc}") from exc
    return out


def _label_names(series: list[tuple[dict[str, str], list[int], list[float]]]) -> list[str]:
    """Every label name seen, sorted, ``__name__`` excluded."""
    return sorted({k for metric, _, _ in series for k in metric if k != NAME})


def _wide(series: list[tuple[dict[str, str], list[int], list[float]]]) -> pl.DataFrame:
    """Per-series points as the wide sample frame of ``collectors/samples.py``."""
    labels = _label_names(series)
    cols: dict[str, list[Any]] = {NAME: [], VALUE: [], TS: [], **{k: [] for k in labels}}
    for metric, ts, vs in series:
        n = len(ts)
        cols[NAME].extend([metric.get(NAME)] * n)
        cols[VALUE].extend(vs)
        cols[TS].extend(ts)
        for k in labels:
            cols[k].extend([metric.get(k)] * n)
    frame = pl.DataFrame(cols, schema={NAME: pl.Utf8, VALUE: pl.Float64, TS: pl.Int64, **{k: pl.Utf8 for k in labels}})
    frame = frame.with_columns(
        pl.lit(None, pl.Utf8).alias(FAMILY),
        pl.lit(None, pl.Utf8).alias(TYPE),
        pl.col(TS).cast(META_SCHEMA[TS]),
    )
    return frame.select(*META_SCHEMA.names(), *labels).sort([NAME, *labels, TS], nulls_last=True)


def _long(series: list[tuple[dict[str, str], list[tuple[int, float]]]]) -> pl.DataFrame:
    """Range-query series as a long frame (label columns sorted, ``__name__`` first when present)."""
    names = sorted({k for metric, _ in series for k in metric}, key=lambda k: (k != NAME, k))
    cols: dict[str, list[Any]] = {"ts": [], "value": [], **{k: [] for k in names}}
    for metric, points in series:
        cols["ts"].extend(t for t, _ in points)
        cols["value"].extend(v for _, v in points)
        for k in names:
            cols[k].extend([metric.get(k)] * len(points))
    frame = pl.DataFrame(cols, schema={"ts": pl.Int64, "value": pl.Float64, **{k: pl.Utf8 for k in names}})
    frame = frame.with_columns(pl.col("ts").cast(pl.Datetime("ms")).dt.replace_time_zone("UTC"))
    return frame.select(*names, "ts", "value").sort([*names, "ts"], nulls_last=True)


def _ms(t: datetime) -> int:
    """Epoch milliseconds of an aware datetime (naive ones are refused: they are ambiguous)."""
    if t.tzinfo is None:
        raise CollectorError(f"naive datetime {t!r}: give a timezone (UTC)")
    return round(t.timestamp() * 1000)


def _seconds(ms: int) -> str:
    """Epoch milliseconds as the API's decimal seconds, exactly."""
    sign, ms = ("-", -ms) if ms < 0 else ("", ms)
    return f"{sign}{ms // 1000}.{ms % 1000:03d}"
