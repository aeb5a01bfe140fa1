"""OTLP JSON traces (the Collector's file exporter) read through the GenAI semantic conventions into ``requests``.

The file exporter writes one ``ExportTraceServiceRequest`` JSON object per line; a single
pretty-printed document (the opentelemetry-proto examples) is read too. One request per GenAI span
(``gen_ai.operation.name`` or ``gen_ai.request.model`` set); other spans are counted as skipped. A
GenAI CLIENT span is skipped when its trace also holds a GenAI server span (the same request seen
from both ends).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from analytics.errors import ItemError, Problem
from analytics.schema import RequestSource, RequestStatus
from collectors.kube.pod_model import PodIndex
from collectors.requests.attribution import CANONICAL, RequestBatch, build_requests, read_log_bytes

SPAN_KIND_CLIENT = 3
_KIND_NAMES = {"SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2,
               "SPAN_KIND_CLIENT": 3, "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5}
STATUS_CODE_ERROR = 2
# Semconv first, then vLLM's own names (vllm/tracing: gen_ai.usage.prompt_tokens, gen_ai.latency.*).
MODEL = ("gen_ai.request.model", "gen_ai.response.model")
INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
OUTPUT_TOKENS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
TTFT = ("gen_ai.server.time_to_first_token", "gen_ai.latency.time_to_first_token",
        "gen_ai.response.time_to_first_chunk")
QUEUE = ("gen_ai.latency.time_in_queue",)
E2E = ("gen_ai.latency.e2e",)
REQUEST_ID = ("gen_ai.request.id", "http.request.header.x-request-id")
TENANT = ("k8s.namespace.name",)
POD = ("k8s.pod.name",)
# What the Collector's k8sattributes processor names extracted pod labels by default.
VERSION = ("k8s.pod.labels.rollouts-pod-template-hash", "k8s.pod.labels.pod-template-hash")


def any_value(value: object) -> object:
    """An OTLP JSON ``AnyValue`` -> a Python value (int64 may arrive as a string)."""
    if not isinstance(value, Mapping) or len(value) > 1:
        raise ItemError(f"attribute value {value!r:.60} is not an AnyValue")
    if not value:
        return None
    (kind, v), = value.items()
    if kind == "stringValue" and isinstance(v, str):
        return v
    if kind == "boolValue" and isinstance(v, bool):
        return v
    if kind == "intValue" and (isinstance(v, int) and not isinstance(v, bool) or isinstance(v, str)):
        try:
            return int(v)
        except ValueError:
            raise ItemError(f"intValue {v!r:.40} is not an integer") from None
    if kind == "doubleValue" and (isinstance(v, int | float) and not isinstance(v, bool) or isinstance(v, str)):
        try:
            return float(v)  # protojson writes NaN and Infinity as strings
        except ValueError:
            raise ItemError(f"doubleValue {v!r:.40} is not a number") from None
    if kind == "arrayValue" and isinstance(v, Mapping):
        return [any_value(x) for x in _list(v.get("values"), "arrayValue.values")]
    if kind == "kvlistValue" and isinstance(v, Mapping):
        return attributes(v.get("values"))
    if kind == "bytesValue" and isinstance(v, str):
        return base64.b64decode(v, validate=False).hex()
    raise ItemError(f"attribute value {value!r:.60} is not an AnyValue")


def _list(value: object, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ItemError(f"{what} must be a list")
    return value


def attributes(value: object) -> dict[str, object]:
    """An OTLP ``[{key, value}]`` list -> dict."""
    out: dict[str, object] = {}
    for kv in _list(value, "attributes"):
        if not isinstance(kv, Mapping) or not isinstance(kv.get("key"), str):
            raise ItemError(f"attribute {kv!r:.60} has no string key")
        out[kv["key"]] = any_value(kv.get("value", {}))
    return out


def _first(attrs: Mapping[str, object], keys: tuple[str, ...]) -> object:
    for k in keys:
        v = attrs.get(k)
        if isinstance(v, list):  # http.request.header.* are string[]
            v = v[0] if v else None
        if v is not None:
            return v
    return None


def _number(attrs: Mapping[str, object], keys: tuple[str, ...], *, whole: bool = False) -> float | int | None:
    v = _first(attrs, keys)
    if v is None:
        return None
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            raise ItemError(f"attribute {next(k for k in keys if k in attrs)!r}: {v!r:.40} is not a number") from None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ItemError(f"attribute {next(k for k in keys if k in attrs)!r}: {v!r:.40} is not a finite number")
    if whole:
        if v != int(v):
            raise ItemError(f"attribute {next(k for k in keys if k in attrs)!r}: {v!r} is not a whole number")
        return int(v)
    return float(v)


def _text(attrs: Mapping[str, object], keys: tuple[str, ...]) -> str | None:
    v = _first(attrs, keys)
    return None if v is None else str(v)


def _nanos(span: Mapping[str, Any], key: str) -> int:
    v = span.get(key)
    if isinstance(v, bool) or not isinstance(v, int | str):
        raise ItemError(f"{key} must be an integer (string) of nanoseconds")
    try:
        return int(v)
    except ValueError:
        raise ItemError(f"{key} {v!r:.30} is not an integer") from None


def _outcome(span: Mapping[str, Any], attrs: Mapping[str, object]) -> str:
    status = span.get("status") or {}
    code = status.get("code") if isinstance(status, Mapping) else None
    error_type = str(attrs.get("error.type") or "").lower()
    reasons = attrs.get("gen_ai.response.finish_reasons")
    aborted = isinstance(reasons, list) and "abort" in reasons
    if "cancel" in error_type or "abort" in error_type or aborted:
        return RequestStatus.CANCELLED.value
    if "timeout" in error_type:
        return RequestStatus.TIMEOUT.value
    if error_type or code in (STATUS_CODE_ERROR, "STATUS_CODE_ERROR"):
        return RequestStatus.ERROR.value
    return RequestStatus.OK.value


def _kind(span: Mapping[str, Any]) -> int:
    k = span.get("kind", 0)
    return _KIND_NAMES.get(k, 0) if isinstance(k, str) else k if isinstance(k, int) else 0


def _row(span: Mapping[str, Any], attrs: dict[str, object], res: dict[str, object]) -> dict[str, object]:
    """One GenAI span -> a canonical row (raises ItemError)."""
    start, end = _nanos(span, "startTimeUnixNano"), _nanos(span, "endTimeUnixNano")
    e2e = _number(attrs, E2E)
    span_id = span.get("spanId")
    trace_id = span.get("traceId")
    both = {**res, **attrs}  # span attributes win; tenant and pod normally sit on the resource
    tenant = _text(res, TENANT) or _text(attrs, TENANT)
    return {
        "ts": start // 1_000_000,
        "request_id": _text(attrs, REQUEST_ID) or (span_id.lower() if isinstance(span_id, str) and span_id else None),
        "tenant": tenant,
        "model": _text(attrs, MODEL),
        "pod": _text(res, POD) or _text(attrs, POD),
        "model_version": _text(both, VERSION),
        "http_status": _number(attrs, ("http.response.status_code",), whole=True),
        "outcome": _outcome(span, attrs),
        "prompt_tokens": _number(attrs, INPUT_TOKENS, whole=True),
        "output_tokens": _number(attrs, OUTPUT_TOKENS, whole=True),
        "queue_s": _number(attrs, QUEUE),
        "ttft_s": _number(attrs, TTFT),
        "e2e_s": e2e if e2e is not None else (end - start) / 1e9,
        "trace_id": trace_id.lower() if isinstance(trace_id, str) and trace_id else None,
    }


def _documents(data: str | bytes | Iterable[str]) -> list[tuple[int | None, str | None]]:
    """(line number, JSON text or None if not UTF-8): one pretty-printed document, or one per line."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raw = data.split(b"\n")
            if raw and raw[-1] == b"":
                raw.pop()
            return [(i, _utf8(line)) for i, line in enumerate(raw, 1)]
    if isinstance(data, str):
        stripped = data.strip()
        if stripped.startswith("{") and "\n" in stripped:
            try:
                json.loads(stripped)
                return [(None, stripped)]
            except ValueError:
                pass  # JSON lines
        lines = data.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return list(enumerate(lines, 1))
    return [(i, line.rstrip("\r\n")) for i, line in enumerate(data, 1)]


def _utf8(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def parse_otlp_traces(
    data: str | bytes | Iterable[str], *, source: str, pods: PodIndex | None = None,
    default_tenant: str | None = None, strict: bool = False,
) -> RequestBatch:
    """OTLP JSON trace export(s) -> one request per GenAI span; a bad line or span is reported, not fatal."""
    rows: list[dict[str, object]] = []
    meta: list[tuple[int | None, str | None, int]] = []  # (line, trace id, span kind) per row
    bad: list[Problem] = []
    docs = _documents(data)
    skipped = blank = 0
    for line, text in docs:
        if text is None:
            bad.append(Problem(source, "not UTF-8 text", line=line))
            continue
        if not text.strip():
            blank += 1
            continue
        try:
            doc = json.loads(text)
        except ValueError as exc:
            bad.append(Problem(source, f"not JSON: {exc}", line=line))
            continue
        try:
            if not isinstance(doc, dict) or "resourceSpans" not in doc:
                raise ItemError("not an ExportTraceServiceRequest (no resourceSpans)")
            spans = _spans(doc)
        except ItemError as exc:
            bad.append(Problem(source, str(exc), line=line))
            continue
        for where, span, res in spans:
            try:
                attrs = attributes(span.get("attributes"))
                if not any(k in attrs for k in ("gen_ai.operation.name", *MODEL)):
                    skipped += 1
                    continue
                row = _row(span, attrs, res)
            except ItemError as exc:
                bad.append(Problem(source, f"{where}: {exc}", line=line))
                continue
            rows.append(row)
            meta.append((line, row["trace_id"], _kind(span)))  # type: ignore[arg-type]
    served = {t for _, t, k in meta if k != SPAN_KIND_CLIENT and t}
    keep = [not (k == SPAN_KIND_CLIENT and t in served) for _, t, k in meta]
    skipped += keep.count(False)
    frame = _frame([r for r, k in zip(rows, keep) if k], [m[0] for m, k in zip(meta, keep) if k])
    requests, bad_rows = build_requests(frame, source=source, stream=RequestSource.OTLP, pods=pods,
                                        default_tenant=default_tenant, extra_bad=bad)
    batch = RequestBatch(requests, bad_rows, len(docs), blank_lines=blank, skipped_spans=skipped)
    if strict:
        batch.raise_first()
    return batch


def _spans(doc: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any], dict[str, object]]]:
    """(path, span, resource attributes) of every span of one export request."""
    out = []
    for i, rs in enumerate(_list(doc.get("resourceSpans"), "resourceSpans")):
        if not isinstance(rs, Mapping):
            raise ItemError(f"resourceSpans[{i}] is not an object")
        resource = rs.get("resource") or {}
        try:
            res = attributes(resource.get("attributes") if isinstance(resource, Mapping) else None)
        except ItemError as exc:
            raise ItemError(f"resourceSpans[{i}].resource: {exc}") from None
        for j, ss in enumerate(_list(rs.get("scopeSpans"), f"resourceSpans[{i}].scopeSpans")):
            if not isinstance(ss, Mapping):
                raise ItemError(f"resourceSpans[{i}].scopeSpans[{j}] is not an object")
            for k, span in enumerate(_list(ss.get("spans"), f"resourceSpans[{i}].scopeSpans[{j}].spans")):
                where = f"resourceSpans[{i}].scopeSpans[{j}].spans[{k}]"
                if not isinstance(span, Mapping):
                    raise ItemError(f"{where} is not an object")
                out.append((where, span, res))
    return out


def _frame(rows: list[dict[str, object]], lines: list[int | None]) -> pl.DataFrame:
    cols = {c: [r.get(c) for r in rows] for c in CANONICAL if c not in ("line", "reason")}
    schema = {c: (pl.Int64 if c == "ts" else d) for c, d in CANONICAL.items() if c not in ("line", "reason")}
    df = pl.DataFrame(cols, schema=schema, strict=False)
    return df.with_columns(
        line=pl.Series(lines, dtype=pl.Int64), reason=pl.lit(None, dtype=pl.Utf8),
        ts=pl.col("ts").cast(pl.Datetime("ms", "UTC")),
    )


def fetch_otlp_traces(
    path: str | Path, *, pods: PodIndex | None = None, default_tenant: str | None = None,
    strict: bool = False, source: str | None = None,
) -> RequestBatch:
    """Read an OTLP JSON trace file (plain or gzip) and parse it."""
    data = read_log_bytes(path, "trace file")
    return parse_otlp_traces(data, source=source or str(path), pods=pods, default_tenant=default_tenant,
                             strict=strict)
