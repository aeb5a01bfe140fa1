"""Gateway access logs (JSON lines: Envoy, kgateway / Envoy AI Gateway, LiteLLM) into ``requests`` rows.

Every accepted field name is in ``ALIASES`` (``collectors.requests.gateway_fields``, documented in
docs/request-logs.md); ``collectors.requests.gateway_decode`` turns the bytes into one text column per alias key,
and this module maps those columns to canonical ``requests`` values.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import polars as pl

from analytics.errors import Problem
from analytics.schema import RequestSource
from collectors.kube.pod_model import PodIndex
from collectors.requests.attribution import RequestBatch, build_requests, read_log_bytes
from collectors.requests.gateway_decode import decode
from collectors.requests.gateway_fields import ALIASES, NULLS, OUTCOMES, Alias, FieldKind, Key, col


def _div(expr: pl.Expr, divisor: float) -> pl.Expr:
    """``expr / divisor`` rounded as IEEE division (polars turns a division by a scalar into a
    multiplication by its reciprocal, which is off by an ulp: 35.875 ms would not be 0.035875 s)."""
    if divisor == 1.0:
        return expr
    return expr.map_batches(lambda s: s / pl.Series(np.full(len(s), divisor)), return_dtype=pl.Float64)


def _clean(key: Key) -> pl.Expr:
    return pl.col(col(key)).replace(list(NULLS), None)


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
    if a.kind is FieldKind.TEXT:
        return v, present & v.str.contains(r"^[\[{]")
    if a.kind is FieldKind.INT:
        num = v.cast(pl.Float64, strict=False)
        ok = num.is_finite() & (num == num.round(0)) & (num.abs() < 2.0**53)
        return pl.when(ok).then(num).cast(pl.Int64), present & ~ok.fill_null(False)
    if a.kind is FieldKind.SECONDS:
        num = v.cast(pl.Float64, strict=False)
        return _div(num, a.divisor), present & ~num.is_finite().fill_null(False)
    if a.kind is FieldKind.TIME:
        t = pl.col(col(a.key) + _PARSED)
        return t, present & t.is_null()
    if a.kind is FieldKind.TRACEPARENT:
        tid = v.str.to_lowercase().str.extract(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$", 1)
        return tid, present & tid.is_null()
    # STATUS: an HTTP code goes to http_status (see to_canonical); text must be a known outcome.
    word = v.str.to_lowercase().replace_strict(
        {k: s.value for k, s in OUTCOMES.items()}, default=None, return_dtype=pl.Utf8)
    return word, present & word.is_null() & v.cast(pl.Int64, strict=False).is_null()


_PARSED = "#parsed"
_WHAT = {FieldKind.INT: "a whole number", FieldKind.SECONDS: "a finite number", FieldKind.TIME: "a timestamp",
         FieldKind.TRACEPARENT: "a W3C traceparent", FieldKind.STATUS: "success/failure or an HTTP code",
         FieldKind.TEXT: "a string"}
_CANONICAL_FIELDS = tuple(dict.fromkeys(a.field for a in ALIASES))


def _parse_times(raw: pl.DataFrame, cols: list[str]) -> pl.DataFrame:
    """Add a parsed ``<col>#parsed`` per time column; the general parser runs only if the common form fails."""
    common = "%Y-%m-%dT%H:%M:%S%.fZ"  # Envoy's %START_TIME% and most ISO loggers
    out = []
    for c in cols:
        text = raw.get_column(c).replace(list(NULLS), None)
        fast = text.str.to_datetime(common, strict=False, time_unit="us", time_zone="UTC")
        if fast.null_count() > text.null_count():
            fast = raw.select(_time(pl.col(c).replace(list(NULLS), None))).to_series()
        out.append(fast.alias(c + _PARSED))
    return raw.with_columns(out)


def _reasons(raw: pl.DataFrame, out: pl.DataFrame, aliases: list[Alias]) -> pl.Series:
    """The message for each row holding a bad value (built in Python: such rows are few)."""
    rows = out.get_column("_bad")
    reasons: list[str | None] = [None] * len(rows)
    for i in rows.is_not_null().arg_true().to_list():
        a = aliases[rows[i]]
        shown = str(raw.get_column(col(a.key))[i])[:60]
        reasons[i] = f"field {col(a.key)!r}: {shown!r} is not {_WHAT[a.kind]}"
    return pl.Series("reason", reasons, dtype=pl.Utf8)


def to_canonical(raw: pl.DataFrame) -> pl.DataFrame:
    """Alias columns -> the canonical request frame (with a reason on rows holding a bad value)."""
    # Only keys the log uses cost anything: a 1e6-line log names a dozen of the aliases.
    present = {c for c, n in zip(raw.columns, raw.null_count().row(0)) if c != "line" and n < raw.height}
    aliases = [a for a in ALIASES if col(a.key) in present]
    raw = _parse_times(raw, [col(a.key) for a in aliases if a.kind is FieldKind.TIME])
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
    raw, bad, total, blank = decode(data)
    frame = to_canonical(raw)
    rows, bad_rows = build_requests(
        frame, source=source, stream=RequestSource.GATEWAY, pods=pods, default_tenant=default_tenant,
        extra_bad=[Problem(source, reason, line=n) for n, reason in bad],
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
    data = read_log_bytes(path, "access log")
    return parse_gateway_log(data, source=source or str(path), pods=pods, default_tenant=default_tenant,
                             strict=strict)
