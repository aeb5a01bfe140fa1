"""Gateway access logs (JSON lines: Envoy, kgateway / Envoy AI Gateway, LiteLLM) into ``requests`` rows.

Every accepted field name is in ``ALIASES`` (documented in docs/request-logs.md). The fast path reads
the whole log with polars' NDJSON reader; only when that fails are lines screened and decoded in
chunks, and only the lines the chunks still reject are read one by one to name the bad ones.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
import polars as pl

from analytics.errors import CollectorError
from analytics.schema import RequestSource, RequestStatus
from collectors.kube_pods import PodIndex
from collectors.request_attribution import BadLine, RequestBatch, build_requests

Key = str | tuple[str, str]  # a top-level key, or (object, key) inside a nested object


class Kind(StrEnum):
    """How a field's text becomes a canonical value."""

    TEXT = "text"
    INT = "int"
    SECONDS = "seconds"  # a duration; the alias's divisor turns its unit into seconds
    TIME = "time"  # ISO 8601 text or epoch seconds / ms / us / ns
    TRACEPARENT = "traceparent"  # W3C "00-<trace id>-<span id>-<flags>"
    STATUS = "status"  # LiteLLM-style "success" / "failure", or an HTTP code


@dataclass(frozen=True, slots=True)
class Alias:
    """One accepted source key for a canonical field; the first present alias of a field wins."""

    field: str
    key: Key
    kind: Kind = Kind.TEXT
    divisor: float = 1.0  # seconds = value / divisor


def _ms(field: str, *keys: Key) -> list[Alias]:
    return [Alias(field, k, Kind.SECONDS, 1000.0) for k in keys]


def _s(field: str, *keys: Key) -> list[Alias]:
    return [Alias(field, k, Kind.SECONDS) for k in keys]


def _of(field: str, kind: Kind, *keys: Key) -> list[Alias]:
    return [Alias(field, k, kind) for k in keys]


# The one alias table (priority order within a field). Envoy: default JSON/json_format keys, Istio and
# Envoy Gateway spellings; kgateway / Envoy AI Gateway: gen_ai.* and llm_*_token; LiteLLM spend logs.
ALIASES: tuple[Alias, ...] = (
    *_of("ts", Kind.TIME, "start_time", "startTime", "@timestamp", "timestamp", "time", "ts"),
    *_of("end_time", Kind.TIME, "endTime", "end_time"),
    *_of("first_token_time", Kind.TIME, "completionStartTime", "completion_start_time"),
    *_of("request_id", Kind.TEXT, "x_request_id", "x-request-id", "request_id", "requestId",
         "gen_ai.request.id", ("req_headers", "x-request-id"), "id"),
    *_of("tenant", Kind.TEXT, "x_tenant", "x-tenant", "tenant", "namespace", "k8s.namespace.name",
         ("req_headers", "x-tenant"), ("metadata", "user_api_key_team_alias"), "team_alias"),
    *_of("model", Kind.TEXT, "gen_ai.request.model", "x-ai-eg-model", "x_ai_eg_model",
         ("req_headers", "x-ai-eg-model"), "model_group", "model", "model_name", "gen_ai.response.model"),
    *_of("pod", Kind.TEXT, "upstream_pod", "k8s.pod.name", "pod"),
    *_of("upstream_host", Kind.TEXT, "upstream_host", "api_base"),
    *_of("model_version", Kind.TEXT, "model_version"),
    *_of("variant", Kind.TEXT, "variant"),
    *_of("http_status", Kind.INT, "response_code", "status_code", "http.response.status_code"),
    Alias("outcome", "status", Kind.STATUS),
    *_of("flags", Kind.TEXT, "response_flags"),
    *_of("prompt_tokens", Kind.INT, "prompt_tokens", "input_tokens", "gen_ai.usage.input_tokens",
         "gen_ai.usage.prompt_tokens", "llm_input_token", ("usage", "prompt_tokens")),
    *_of("output_tokens", Kind.INT, "completion_tokens", "output_tokens", "gen_ai.usage.output_tokens",
         "gen_ai.usage.completion_tokens", "llm_output_token", ("usage", "completion_tokens")),
    *_ms("e2e_s", "duration", "duration_ms", "e2e_ms"),
    *_s("e2e_s", "e2e_s", "gen_ai.latency.e2e"),
    *_ms("ttft_s", "ttft_ms", "time_to_first_token_ms"),
    *_s("ttft_s", "ttft_s", "gen_ai.server.time_to_first_token", "gen_ai.latency.time_to_first_token"),
    *_ms("queue_s", "queue_ms"),
    *_s("queue_s", "queue_s", "gen_ai.latency.time_in_queue"),
    *_ms("itl_s", "itl_ms", "tpot_ms"),
    *_s("itl_s", "itl_s", "gen_ai.server.time_per_output_token"),
    *_of("trace_id", Kind.TEXT, "trace_id", "traceId", "x-b3-traceid", ("req_headers", "x-b3-traceid")),
    Alias("trace_id", "traceparent", Kind.TRACEPARENT),
)

_OUTCOMES = {"success": RequestStatus.OK, "ok": RequestStatus.OK, "failure": RequestStatus.ERROR,
             "error": RequestStatus.ERROR, "timeout": RequestStatus.TIMEOUT,
             "cancelled": RequestStatus.CANCELLED, "canceled": RequestStatus.CANCELLED}
_NULLS = ("", "-")  # Envoy prints "-" for an unset value in text-converted formats
_CHUNK = 256  # below this many lines a rejected chunk is read line by line


def _col(key: Key) -> str:
    return key if isinstance(key, str) else f"{key[0]}>{key[1]}"


def _schema() -> pl.Schema:
    """The NDJSON schema: every aliased key as text (numbers arrive as their decimal text)."""
    top: dict[str, pl.DataType] = {}
    nested: dict[str, dict[str, pl.DataType]] = {}
    for a in ALIASES:
        if isinstance(a.key, str):
            top[a.key] = pl.Utf8()
        else:
            nested.setdefault(a.key[0], {})[a.key[1]] = pl.Utf8()
    return pl.Schema(top | {k: pl.Struct(v) for k, v in nested.items()})


SCHEMA = _schema()
RAW_COLUMNS = tuple(dict.fromkeys(_col(a.key) for a in ALIASES))


def _flatten(df: pl.DataFrame) -> pl.DataFrame:
    """Decoded NDJSON -> one text column per alias key."""
    exprs = [pl.col(c) for c in df.columns if c not in SCHEMA or not isinstance(SCHEMA[c], pl.Struct)]
    for parent, dtype in SCHEMA.items():
        if isinstance(dtype, pl.Struct) and parent in df.columns:
            exprs += [pl.col(parent).struct.field(f.name).alias(f"{parent}>{f.name}") for f in dtype.fields]
    # The reader returns one chunk per block; every later column operation is far cheaper on one.
    return df.select(exprs).select(RAW_COLUMNS).rechunk()


def _read_chunk(data: bytes) -> pl.DataFrame | None:
    try:
        return _flatten(pl.read_ndjson(data, schema=SCHEMA))
    except (pl.exceptions.PolarsError, ValueError):
        return None


def _text(value: object) -> str | None:
    """A JSON value as the NDJSON reader would give it for a text column."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("a number out of range")
    return json.dumps(value, separators=(",", ":"))


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _read_line(raw: bytes) -> dict[str, str | None] | str:
    """One line -> its alias columns, or the reason it is bad."""
    try:
        obj = json.loads(raw, parse_constant=_reject_constant)
    except UnicodeDecodeError:
        return "not UTF-8 text"
    except ValueError as exc:
        return f"not JSON: {exc}"
    if not isinstance(obj, dict):
        return f"not a JSON object (got {type(obj).__name__})"
    out: dict[str, str | None] = {}
    try:
        for a in ALIASES:
            if isinstance(a.key, str):
                value = obj.get(a.key)
            else:
                parent = obj.get(a.key[0])
                # A parent that is not an object is some other field of the same name: not ours.
                value = parent.get(a.key[1]) if isinstance(parent, dict) else None
            out[_col(a.key)] = _text(value)
    except ValueError as exc:
        return f"field {a.key!r}: {exc}"
    return out


def _split(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the newline that ends the last line does not start another
    return lines


def _decode_slow(data: bytes) -> tuple[pl.DataFrame, list[BadLine], int, int]:
    """Screen lines, decode them in chunks, read rejected chunks line by line."""
    lines = _split(data)
    frames: list[pl.DataFrame] = []
    bad: list[tuple[int, str]] = []
    candidates: list[tuple[int, bytes]] = []
    blank = 0
    for no, raw in enumerate(lines, 1):
        stripped = raw.strip()
        if not stripped:
            blank += 1
        elif stripped[:1] == b"{" and stripped[-1:] == b"}":
            candidates.append((no, stripped))
        else:
            reason = _read_line(stripped)
            bad.append((no, reason if isinstance(reason, str) else "not a JSON object"))

    def decode(chunk: list[tuple[int, bytes]]) -> None:
        if not chunk:
            return
        if len(chunk) > 1:
            df = _read_chunk(b"\n".join(raw for _, raw in chunk))
            if df is not None and df.height == len(chunk):
                frames.append(df.with_columns(line=pl.Series([no for no, _ in chunk], dtype=pl.Int64)))
                return
        if len(chunk) > _CHUNK:
            step = max(_CHUNK, len(chunk) // 16)
            for i in range(0, len(chunk), step):
                decode(chunk[i:i + step])
            return
        rows: dict[str, list[str | None]] = {c: [] for c in RAW_COLUMNS}
        nos: list[int] = []
        for no, raw in chunk:
            got = _read_line(raw)
            if isinstance(got, str):
                bad.append((no, got))
                continue
            nos.append(no)
            for c in RAW_COLUMNS:
                rows[c].append(got[c])
        if nos:
            frames.append(pl.DataFrame(rows, schema={c: pl.Utf8 for c in RAW_COLUMNS})
                          .with_columns(line=pl.Series(nos, dtype=pl.Int64)))

    for i in range(0, len(candidates), 1 << 16):
        decode(candidates[i:i + (1 << 16)])
    raw_frame = pl.concat(frames, how="vertical", rechunk=True) if frames else _empty_raw()
    return raw_frame.sort("line"), [BadLine("", n, r) for n, r in bad], len(lines), blank


def _empty_raw() -> pl.DataFrame:
    return pl.DataFrame(schema={**{c: pl.Utf8 for c in RAW_COLUMNS}, "line": pl.Int64})


def _decode(data: bytes) -> tuple[pl.DataFrame, list[BadLine], int, int]:
    """Bytes of a JSON-lines log -> (alias columns + line, bad lines, total lines, blank lines)."""
    total = data.count(b"\n") + (0 if not data or data.endswith(b"\n") else 1)
    df = _read_chunk(data) if data else _empty_raw().drop("line")
    # The reader skips blank lines; only when it skipped none do row numbers equal line numbers.
    if df is not None and df.height == total:
        return df.with_columns(line=pl.int_range(1, total + 1, dtype=pl.Int64)), [], total, 0
    return _decode_slow(data)


# ----------------------------------------------------------------------------- mapping to canonical


def _div(expr: pl.Expr, divisor: float) -> pl.Expr:
    """``expr / divisor`` rounded as IEEE division (polars turns a division by a scalar into a
    multiplication by its reciprocal, which is off by an ulp: 35.875 ms would not be 0.035875 s)."""
    if divisor == 1.0:
        return expr
    return expr.map_batches(lambda s: s / pl.Series(np.full(len(s), divisor)), return_dtype=pl.Float64)


def _clean(key: Key) -> pl.Expr:
    return pl.col(_col(key)).replace(list(_NULLS), None)


def _time(text: pl.Expr) -> pl.Expr:
    """ISO 8601 (any offset, 'Z' or none = UTC, 'T' or ' ') or epoch s/ms/us/ns -> Datetime(us, UTC)."""
    num = text.cast(pl.Float64, strict=False)
    epoch_us = (pl.when(num.abs() >= 1e17).then(num / 1e3)
                .when(num.abs() >= 1e14).then(num)
                .when(num.abs() >= 1e11).then(num * 1e3)
                .otherwise(num * 1e6))
    iso = (text.str.replace(r"^(\d{4}-\d{2}-\d{2}) ", "${1}T")
           .str.replace(r"[zZ]$", "+00:00")
           .str.replace(r"([+-]\d{2})(\d{2})$", "${1}:${2}"))
    iso = pl.when(iso.str.contains(r"[+-]\d{2}:\d{2}$")).then(iso).otherwise(pl.concat_str(iso, pl.lit("+00:00")))
    parsed = iso.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", strict=False, time_unit="us", time_zone="UTC")
    return pl.when(num.is_not_null()).then(epoch_us.cast(pl.Int64).cast(pl.Datetime("us", "UTC"))).otherwise(parsed)


def _value(a: Alias) -> tuple[pl.Expr, pl.Expr]:
    """(canonical value, condition: present but unusable) for one alias."""
    v = _clean(a.key)
    present = v.is_not_null()
    if a.kind is Kind.TEXT:
        return v, present & v.str.contains(r"^[\[{]")
    if a.kind is Kind.INT:
        num = v.cast(pl.Float64, strict=False)
        ok = num.is_finite() & (num == num.round(0)) & (num.abs() < 2.0**53)
        return pl.when(ok).then(num).cast(pl.Int64), present & ~ok.fill_null(False)
    if a.kind is Kind.SECONDS:
        num = v.cast(pl.Float64, strict=False)
        return _div(num, a.divisor), present & ~num.is_finite().fill_null(False)
    if a.kind is Kind.TIME:
        t = pl.col(_col(a.key) + _PARSED)
        return t, present & t.is_null()
    if a.kind is Kind.TRACEPARENT:
        tid = v.str.to_lowercase().str.extract(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$", 1)
        return tid, present & tid.is_null()
    # STATUS: an HTTP code goes to http_status (see to_canonical); text must be a known outcome.
    word = v.str.to_lowercase().replace_strict(
        {k: s.value for k, s in _OUTCOMES.items()}, default=None, return_dtype=pl.Utf8)
    return word, present & word.is_null() & v.cast(pl.Int64, strict=False).is_null()


_PARSED = "#parsed"
_WHAT = {Kind.INT: "a whole number", Kind.SECONDS: "a finite number", Kind.TIME: "a timestamp",
         Kind.TRACEPARENT: "a W3C traceparent", Kind.STATUS: "success/failure or an HTTP code",
         Kind.TEXT: "a string"}
_CANONICAL_FIELDS = tuple(dict.fromkeys(a.field for a in ALIASES))


def _parse_times(raw: pl.DataFrame, cols: list[str]) -> pl.DataFrame:
    """Add a parsed ``<col>#parsed`` per time column; the general parser runs only if the common form fails."""
    common = "%Y-%m-%dT%H:%M:%S%.fZ"  # Envoy's %START_TIME% and most ISO loggers
    out = []
    for c in cols:
        text = raw.get_column(c).replace(list(_NULLS), None)
        fast = text.str.to_datetime(common, strict=False, time_unit="us", time_zone="UTC")
        if fast.null_count() > text.null_count():
            fast = raw.select(_time(pl.col(c).replace(list(_NULLS), None))).to_series()
        out.append(fast.alias(c + _PARSED))
    return raw.with_columns(out)


def _reasons(raw: pl.DataFrame, out: pl.DataFrame, aliases: list[Alias]) -> pl.Series:
    """The message for each row holding a bad value (built in Python: such rows are few)."""
    rows = out.get_column("_bad")
    reasons: list[str | None] = [None] * len(rows)
    for i in rows.is_not_null().arg_true().to_list():
        a = aliases[rows[i]]
        shown = str(raw.get_column(_col(a.key))[i])[:60]
        reasons[i] = f"field {_col(a.key)!r}: {shown!r} is not {_WHAT[a.kind]}"
    return pl.Series("reason", reasons, dtype=pl.Utf8)


def to_canonical(raw: pl.DataFrame) -> pl.DataFrame:
    """Alias columns -> the canonical request frame (with a reason on rows holding a bad value)."""
    # Only keys the log uses cost anything: a 1e6-line log names a dozen of the aliases.
    present = {c for c, n in zip(raw.columns, raw.null_count().row(0)) if c != "line" and n < raw.height}
    aliases = [a for a in ALIASES if _col(a.key) in present]
    raw = _parse_times(raw, [_col(a.key) for a in aliases if a.kind is Kind.TIME])
    by_field: dict[str, list[pl.Expr]] = {}
    first_bad: pl.Expr = pl.lit(None, dtype=pl.Int32)
    for i, a in reversed(list(enumerate(aliases))):  # backwards: the first alias's problem is reported
        value, bad = _value(a)
        by_field.setdefault(a.field, []).insert(0, value)
        first_bad = pl.when(bad.fill_null(False)).then(pl.lit(i, dtype=pl.Int32)).otherwise(first_bad)
    cols = {f: (pl.coalesce(v) if len(v) > 1 else v[0]) if (v := by_field.get(f)) else pl.lit(None)
            for f in _CANONICAL_FIELDS}
    if "status" in present:
        cols["http_status"] = pl.coalesce(cols["http_status"], _clean("status").cast(pl.Int64, strict=False))
    out = raw.select(pl.col("line"), first_bad.alias("_bad"), **cols).with_columns(
        pl.col("ts", "end_time", "first_token_time").cast(pl.Datetime("us", "UTC")))
    out = out.with_columns(reason=_reasons(raw, out, aliases)).drop("_bad")
    # LiteLLM gives times, not durations: derive what the log did not state.
    span = _div((pl.col("end_time") - pl.col("ts")).dt.total_microseconds().cast(pl.Float64), 1e6)
    first = _div((pl.col("first_token_time") - pl.col("ts")).dt.total_microseconds().cast(pl.Float64), 1e6)
    return out.with_columns(
        e2e_s=pl.coalesce(pl.col("e2e_s").cast(pl.Float64), span),
        ttft_s=pl.coalesce(pl.col("ttft_s").cast(pl.Float64), first),
        ts=pl.col("ts").dt.cast_time_unit("ms"),
    ).drop("end_time", "first_token_time")


def parse_gateway_log(
    lines: Iterable[str] | str | bytes, *, source: str, pods: PodIndex | None = None,
    default_tenant: str | None = None, strict: bool = False,
) -> RequestBatch:
    """Gateway access-log lines -> requests; bad lines reported with their number (``strict`` raises)."""
    if isinstance(lines, bytes):
        data = lines
    elif isinstance(lines, str):
        data = lines.encode("utf-8", "surrogateescape")
    else:
        data = b"".join(_with_newlines(lines))
    raw, bad, total, blank = _decode(data)
    frame = to_canonical(raw)
    rows, bad_rows = build_requests(
        frame, source=source, stream=RequestSource.GATEWAY, pods=pods, default_tenant=default_tenant,
        extra_bad=[BadLine(source, b.line, b.reason) for b in bad],
    )
    batch = RequestBatch(rows, bad_rows, total, blank_lines=blank)
    if strict:
        batch.raise_first()
    return batch


def _with_newlines(lines: Iterable[str]) -> Iterator[bytes]:
    for line in lines:
        yield line.rstrip("\r\n").encode("utf-8", "surrogateescape") + b"\n"


def fetch_gateway_log(
    path: str | Path, *, pods: PodIndex | None = None, default_tenant: str | None = None,
    strict: bool = False, source: str | None = None,
) -> RequestBatch:
    """Read a JSON-lines access log (plain or gzip) and parse it."""
    p = Path(path)
    try:
        data = p.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
    except (OSError, EOFError) as exc:
        raise CollectorError(f"{p}: cannot read the access log: {exc}") from exc
    return parse_gateway_log(data, source=source or str(p), pods=pods, default_tenant=default_tenant,
                             strict=strict)
