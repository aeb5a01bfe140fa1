"""The gateway access-log field table: every accepted key per canonical field, and the raw columns it implies.

Documented in docs/request-logs.md; ``collectors.requests.gateway_logs`` re-exports ``ALIASES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import polars as pl

from analytics.schema import RequestStatus

Key = str | tuple[str, str]  # a top-level key, or (object, key) inside a nested object


class FieldKind(StrEnum):
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
    kind: FieldKind = FieldKind.TEXT
    divisor: float = 1.0  # seconds = value / divisor


def _ms(field: str, *keys: Key) -> list[Alias]:
    return [Alias(field, k, FieldKind.SECONDS, 1000.0) for k in keys]


def _s(field: str, *keys: Key) -> list[Alias]:
    return [Alias(field, k, FieldKind.SECONDS) for k in keys]


def _of(field: str, kind: FieldKind, *keys: Key) -> list[Alias]:
    return [Alias(field, k, kind) for k in keys]


# The one alias table (priority order within a field). Envoy: default JSON/json_format keys, Istio and
# Envoy Gateway spellings; kgateway / Envoy AI Gateway: gen_ai.* and llm_*_token; LiteLLM spend logs.
ALIASES: tuple[Alias, ...] = (
    *_of("ts", FieldKind.TIME, "start_time", "startTime", "@timestamp", "timestamp", "time", "ts"),
    *_of("end_time", FieldKind.TIME, "endTime", "end_time"),
    *_of("first_token_time", FieldKind.TIME, "completionStartTime", "completion_start_time"),
    *_of("request_id", FieldKind.TEXT, "x_request_id", "x-request-id", "request_id", "requestId",
         "gen_ai.request.id", ("req_headers", "x-request-id"), "id"),
    *_of("tenant", FieldKind.TEXT, "x_tenant", "x-tenant", "tenant", "namespace", "k8s.namespace.name",
         ("req_headers", "x-tenant"), ("metadata", "user_api_key_team_alias"), "team_alias"),
    *_of("model", FieldKind.TEXT, "gen_ai.request.model", "x-ai-eg-model", "x_ai_eg_model",
         ("req_headers", "x-ai-eg-model"), "model_group", "model", "model_name", "gen_ai.response.model"),
    *_of("pod", FieldKind.TEXT, "upstream_pod", "k8s.pod.name", "pod"),
    *_of("upstream_host", FieldKind.TEXT, "upstream_host", "api_base"),
    *_of("model_version", FieldKind.TEXT, "model_version"),
    *_of("variant", FieldKind.TEXT, "variant"),
    *_of("http_status", FieldKind.INT, "response_code", "status_code", "http.response.status_code"),
    Alias("outcome", "status", FieldKind.STATUS),
    *_of("flags", FieldKind.TEXT, "response_flags"),
    *_of("prompt_tokens", FieldKind.INT, "prompt_tokens", "input_tokens", "gen_ai.usage.input_tokens",
         "gen_ai.usage.prompt_tokens", "llm_input_token", ("usage", "prompt_tokens")),
    *_of("output_tokens", FieldKind.INT, "completion_tokens", "output_tokens", "gen_ai.usage.output_tokens",
         "gen_ai.usage.completion_tokens", "llm_output_token", ("usage", "completion_tokens")),
    *_ms("e2e_s", "duration", "duration_ms", "e2e_ms"),
    *_s("e2e_s", "e2e_s", "gen_ai.latency.e2e"),
    *_ms("ttft_s", "ttft_ms", "time_to_first_token_ms"),
    *_s("ttft_s", "ttft_s", "gen_ai.server.time_to_first_token", "gen_ai.latency.time_to_first_token"),
    *_ms("queue_s", "queue_ms"),
    *_s("queue_s", "queue_s", "gen_ai.latency.time_in_queue"),
    *_ms("itl_s", "itl_ms", "tpot_ms"),
    *_s("itl_s", "itl_s", "gen_ai.server.time_per_output_token"),
    *_of("trace_id", FieldKind.TEXT, "trace_id", "traceId", "x-b3-traceid", ("req_headers", "x-b3-traceid")),
    Alias("trace_id", "traceparent", FieldKind.TRACEPARENT),
)

# LiteLLM-style outcome words (lower-cased) -> request status.
OUTCOMES = {"success": RequestStatus.OK, "ok": RequestStatus.OK, "failure": RequestStatus.ERROR,
            "error": RequestStatus.ERROR, "timeout": RequestStatus.TIMEOUT,
            "cancelled": RequestStatus.CANCELLED, "canceled": RequestStatus.CANCELLED}
NULLS = ("", "-")  # Envoy prints "-" for an unset value in text-converted formats


def col(key: Key) -> str:
    """The column name of a key: the key itself, or ``object>key`` for a nested one."""
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
RAW_COLUMNS = tuple(dict.fromkeys(col(a.key) for a in ALIASES))
