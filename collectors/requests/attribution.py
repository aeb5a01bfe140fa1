"""Turning one stream's request fields into ``requests`` rows: tenant, pod and version, status, checks.

Both request parsers (gateway access logs, OTLP traces) first read their source into the *canonical*
frame below, one row per request with a ``line`` number and a ``reason`` (null while the row is fine);
``build_requests`` then attributes each row to a pod of the pod list (by name, else by the upstream
``IP:port``), fills tenant and model version from it, derives the status, checks required fields and
names, and splits good rows (conformed to ``REQUESTS``) from bad ones (each a ``Problem`` naming its line).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import polars as pl

from analytics.errors import CollectorError, Problem
from analytics.schema import REQUESTS, UTC_MS, RequestSource, RequestStatus, Variant, conform
from collectors.kube.pod_model import Pod, PodIndex
from collectors.targets import ip_of

# The canonical frame each parser produces before attribution (dtypes are exact).
CANONICAL = pl.Schema({
    "line": pl.Int64,  # 1-based line of the source (null when the source is one JSON document)
    "reason": pl.Utf8,  # why the row is bad, null while it is fine
    "ts": UTC_MS,
    "request_id": pl.Utf8,
    "tenant": pl.Utf8,  # explicit tenant field, if the source has one
    "model": pl.Utf8,
    "pod": pl.Utf8,  # explicit upstream pod name, if any
    "upstream_host": pl.Utf8,  # "IP:port", "[v6]:port" or a URL, resolved through the pod list
    "model_version": pl.Utf8,  # explicit version, if any (else the pod's template hash)
    "variant": pl.Utf8,
    "http_status": pl.Int32,
    "flags": pl.Utf8,  # Envoy response flags ("-", "DC", "UT,URX", ...)
    "outcome": pl.Utf8,  # a status the source states itself (RequestStatus value), else null
    "prompt_tokens": pl.Int64,
    "output_tokens": pl.Int64,
    "queue_s": pl.Float64,
    "ttft_s": pl.Float64,
    "itl_s": pl.Float64,
    "e2e_s": pl.Float64,
    "trace_id": pl.Utf8,
})

_RFC1123 = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
# analytics.names' model rule, as a regex polars can apply to a column ('..' is checked separately).
_MODEL = r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,252}$"
_FLAG = r"(^|,)({})(,|$)"


@dataclass(frozen=True, slots=True)
class RequestBatch:
    """Requests read from one source, the lines (or spans) that could not become requests, and how many lines were read.

    For a gateway log ``total_lines == len(requests) + len(bad_lines) + blank_lines``. An OTLP line
    carries many spans: there ``skipped_spans`` counts the spans that are not GenAI requests.
    """

    requests: pl.DataFrame
    bad_lines: tuple[Problem, ...]
    total_lines: int
    blank_lines: int = 0
    skipped_spans: int = 0

    @property
    def ok(self) -> bool:
        """Whether every line was read."""
        return not self.bad_lines

    def raise_first(self) -> None:
        """Raise the first bad line as an InputError (strict mode); do nothing when there is none."""
        if self.bad_lines:
            raise self.bad_lines[0].error()


def host_key(value: str) -> tuple[str, int | None] | None:
    """The canonical IP and port of ``IP:port``, ``[v6]:port``, a bare IP or an http(s) URL; None otherwise."""
    text = value.strip()
    if "://" in text:
        try:
            parts = urlsplit(text)
            port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
        except ValueError:
            return None
        ip = ip_of(parts.hostname or "")
        return (ip, port) if ip else None
    bare = ip_of(text.strip("[]"))
    if bare is not None:
        return bare, None
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        return None
    ip = ip_of(host.strip("[]"))
    return (ip, int(port_text)) if ip else None


class PodLookup:
    """Pods of a pod list by name and by IP, to attribute requests to the pod that served them."""

    def __init__(self, pods: PodIndex | Iterable[Pod] | None) -> None:
        pod_list = tuple(pods.pods if isinstance(pods, PodIndex) else pods or ())
        self.by_name: dict[str, list[Pod]] = {}
        self.by_ip: dict[str, list[Pod]] = {}
        for pod in pod_list:
            self.by_name.setdefault(pod.name, []).append(pod)
            if pod.phase in ("Succeeded", "Failed"):
                continue  # its IP may already belong to a new pod
            for ip in pod.pod_ips:
                self.by_ip.setdefault(ip, []).append(pod)

    def named(self, name: str, namespace: str | None) -> Pod | None:
        """The pod called ``name`` (in ``namespace`` when given), if exactly one matches."""
        found = [p for p in self.by_name.get(name, ()) if namespace is None or p.namespace == namespace]
        return found[0] if len(found) == 1 else None

    def at(self, host: str) -> Pod | None:
        """The pod behind an upstream host: the one declaring that IP and port, else the only one with that IP."""
        key = host_key(host)
        if key is None:
            return None
        ip, port = key
        candidates = self.by_ip.get(ip, [])
        exact = {(p.namespace, p.name): p for p in candidates
                 if port is not None and any(port in (c.port, c.host_port) for c in p.ports)}
        if len(exact) == 1:
            return next(iter(exact.values()))
        # Serving ports are often left undeclared; an IP held by one pod still names it.
        return candidates[0] if not exact and len(candidates) == 1 else None


def _attribution(frame: pl.DataFrame, lookup: PodLookup, default_tenant: str | None) -> pl.DataFrame:
    """Per distinct (tenant, pod, upstream_host): the tenant, pod and version to use."""
    keys = frame.select("tenant", "pod", "upstream_host").unique()
    rows: dict[str, list[str | None]] = {"_tenant": [], "_pod": [], "_version": []}
    for tenant, pod_name, host in keys.iter_rows():
        pod = lookup.named(pod_name, tenant) if pod_name else None
        if pod is None and pod_name is None and host:
            pod = lookup.at(host)
        rows["_tenant"].append(tenant or (pod.namespace if pod else None) or default_tenant)
        rows["_pod"].append(pod_name or (pod.name if pod else None))
        rows["_version"].append(pod.model_version if pod else None)
    return keys.with_columns(pl.Series(k, v, dtype=pl.Utf8) for k, v in rows.items())


def _flag(*names: str) -> pl.Expr:
    return pl.col("flags").fill_null("").str.contains(_FLAG.format("|".join(names)))


def _status() -> pl.Expr:
    """ok for 2xx; cancelled for client aborts (DC, 499); timeout for 504 / UT; else error; null if unsaid."""
    code, outcome = pl.col("http_status"), pl.col("outcome")
    return (
        pl.when(_flag("DC") | (code == 499) | (outcome == RequestStatus.CANCELLED.value))
        .then(pl.lit(RequestStatus.CANCELLED.value))
        .when(_flag("UT", "SI") | (code == 504) | (outcome == RequestStatus.TIMEOUT.value))
        .then(pl.lit(RequestStatus.TIMEOUT.value))
        .when(outcome == RequestStatus.ERROR.value)
        .then(pl.lit(RequestStatus.ERROR.value))
        .when(code.is_between(200, 299) | (code.is_null() & (outcome == RequestStatus.OK.value)))
        .then(pl.lit(RequestStatus.OK.value))
        .when(code.is_not_null())
        .then(pl.lit(RequestStatus.ERROR.value))
        .otherwise(pl.lit(None, dtype=pl.Utf8))
    )


def _checks() -> list[tuple[pl.Expr, pl.Expr]]:
    """(condition that makes a row bad, reason) in the order they are reported."""
    t, m, v = pl.col("tenant"), pl.col("model"), pl.col("variant")
    q = "'"
    checks: list[tuple[pl.Expr, pl.Expr]] = [
        (pl.col("ts").is_null(), pl.lit("no request time")),
        (pl.col("request_id").is_null(), pl.lit("no request id")),
        (m.is_null(), pl.lit("no model")),
        (~m.str.contains(_MODEL) | m.str.contains("..", literal=True),
         pl.concat_str(pl.lit("model "), pl.lit(q), m, pl.lit(f"{q} is not a valid model name"))),
        (t.is_null(), pl.lit("no tenant: no tenant field, the upstream pod is not in the pod list, no default")),
        (~t.str.contains(_RFC1123),
         pl.concat_str(pl.lit("tenant "), pl.lit(q), t, pl.lit(f"{q} is not an RFC 1123 label"))),
        (~v.is_in([x.value for x in Variant]),
         pl.concat_str(pl.lit("variant "), pl.lit(q), v, pl.lit(f"{q} is not baseline, canary or none"))),
    ]
    for col in ("prompt_tokens", "output_tokens", "queue_s", "ttft_s", "itl_s", "e2e_s"):
        checks.append(((pl.col(col) < 0) | pl.col(col).is_nan() if col.endswith("_s") else pl.col(col) < 0,
                       pl.lit(f"{col} is negative or not a number")))
    return checks


def build_requests(
    frame: pl.DataFrame, *, source: str, stream: RequestSource,
    pods: PodIndex | Iterable[Pod] | None = None, default_tenant: str | None = None,
    extra_bad: Iterable[Problem] = (),
) -> tuple[pl.DataFrame, tuple[Problem, ...]]:
    """Canonical frame -> (conformed ``requests`` rows, bad lines in line order)."""
    frame = frame.select(pl.col(c).cast(d) for c, d in CANONICAL.items())
    attributed = _attribution(frame, PodLookup(pods), default_tenant)
    frame = frame.join(attributed, on=["tenant", "pod", "upstream_host"], how="left", nulls_equal=True,
                       maintain_order="left")
    # A fractional mean ITL needs two tokens; derive it only when the source gave none.
    derived_itl = pl.when((pl.col("output_tokens") >= 2) & (pl.col("e2e_s") >= pl.col("ttft_s"))).then(
        (pl.col("e2e_s") - pl.col("ttft_s")) / (pl.col("output_tokens") - 1))
    frame = frame.with_columns(
        tenant=pl.col("_tenant"), pod=pl.col("_pod"),
        model_version=pl.coalesce("model_version", "_version"),
        variant=pl.col("variant").str.to_lowercase().replace("", None).fill_null(Variant.NONE.value),
        itl_s=pl.coalesce("itl_s", derived_itl),
    )
    checks = _checks()
    chain = pl.when(checks[0][0].fill_null(False)).then(checks[0][1])
    for bad, why in checks[1:]:
        chain = chain.when(bad.fill_null(False)).then(why)
    frame = frame.with_columns(reason=pl.coalesce("reason", chain.otherwise(pl.lit(None, dtype=pl.Utf8))))
    bad_rows = frame.filter(pl.col("reason").is_not_null()).select("line", "reason")
    bad = [Problem(source, why, line=line) for line, why in bad_rows.iter_rows()]
    bad.extend(extra_bad)
    bad.sort(key=lambda b: (b.line is None, b.line or 0))
    good = frame.filter(pl.col("reason").is_null()).with_columns(
        status=_status(), source=pl.lit(stream.value),
        http_status=pl.col("http_status").replace(0, None),  # Envoy logs 0 when no response was sent
    )
    cols = [c for c in REQUESTS.columns if c in good.columns]
    return conform(good.select(cols), REQUESTS, fill_missing=True), tuple(bad)


def canonical_frame(columns: Mapping[str, object]) -> pl.DataFrame:
    """A canonical frame from column lists (missing columns become nulls)."""
    n = max((len(v) for v in columns.values() if isinstance(v, list)), default=0)  # type: ignore[arg-type]
    return pl.DataFrame(
        {c: columns.get(c, [None] * n) for c in CANONICAL}, schema=CANONICAL, strict=False
    )


def read_log_bytes(path: str | Path, what: str) -> bytes:
    """A log file's bytes, gunzipped when it is gzip; ``what`` names it in the error."""
    p = Path(path)
    try:
        data = p.read_bytes()
        return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise CollectorError(f"{p}: cannot read the {what}: {exc}") from exc
