"""The engines' GenAI spans as OTLP JSON lines, the way the OpenTelemetry Collector's file exporter writes them.

One server span per request an engine served (access-log flags ``-`` or ``DC``; the gateway answered
the others itself). Every number is taken from the request's access-log line, so both streams give the
same row for the same request. Resource attributes are those the Collector's k8sattributes processor
adds (``k8s.namespace.name``, ``k8s.pod.name``, ``k8s.pod.labels.<label>``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from simulator.load import Request
from simulator.requests_log import COUNTED_FLAGS, log_line, select
from simulator.state import FleetState

BATCH = 64  # spans per exported line, like a batch processor's send size
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _str(v: str) -> dict[str, Any]:
    return {"stringValue": v}


def _int(v: int) -> dict[str, Any]:
    return {"intValue": str(int(v))}  # OTLP JSON writes int64 as a decimal string


def _attrs(pairs: Iterable[tuple[str, dict[str, Any] | None]]) -> list[dict[str, Any]]:
    return [{"key": k, "value": v} for k, v in pairs if v is not None]


def _nanos(iso: str) -> int:
    return (datetime.fromisoformat(iso) - _EPOCH) // timedelta(microseconds=1) * 1000


def span(state: FleetState, r: Request) -> dict[str, Any]:
    """The server span of one served request."""
    line = log_line(state, r, lambda _pod: None)
    start = _nanos(line["start_time"])
    end = start + int(line["duration"]) * 1_000_000
    code = int(line["response_code"])
    error_type = "cancelled" if line["response_flags"] == "DC" else (str(code) if code >= 400 else None)
    ms = {k: line[k] for k in ("ttft_ms", "queue_ms")}
    attrs = _attrs([
        ("gen_ai.operation.name", _str("chat")),
        ("gen_ai.request.model", _str(line["model"])),
        ("gen_ai.request.id", _str(line["request_id"])),
        ("gen_ai.usage.input_tokens", _int(line["prompt_tokens"])),
        ("gen_ai.usage.output_tokens", _int(line["completion_tokens"])),
        # Seconds from the log's milliseconds by one division, as the gateway parser does.
        ("gen_ai.server.time_to_first_token",
         {"doubleValue": ms["ttft_ms"] / 1000.0} if ms["ttft_ms"] is not None else None),
        ("gen_ai.latency.time_in_queue",
         {"doubleValue": ms["queue_ms"] / 1000.0} if ms["queue_ms"] is not None else None),
        ("gen_ai.response.finish_reasons",
         {"arrayValue": {"values": [_str(line["finish_reason"])]}} if line["finish_reason"] else None),
        ("http.response.status_code", _int(code)),
        ("error.type", _str(error_type) if error_type else None),
    ])
    return {
        "traceId": r.rid.replace("-", ""),
        "spanId": hashlib.blake2b(r.rid.encode(), digest_size=8).hexdigest(),
        "name": f"chat {line['model']}",
        "kind": 2,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(end),
        "attributes": attrs,
        "status": {"code": 2, "message": error_type} if error_type else {},
    }


def _resource(state: FleetState, r: Request) -> list[dict[str, Any]]:
    pod = next(p for p in state.fleet.engine_pods if p.name == r.pod)
    return _attrs([
        ("service.name", _str(pod.engine.value if pod.engine else "engine")),
        ("k8s.namespace.name", _str(r.tenant)),
        ("k8s.pod.name", _str(r.pod)),
        ("k8s.pod.labels.rollouts-pod-template-hash", _str(pod.template_hash)),
    ])


def export_lines(state: FleetState, start: float, end: float) -> tuple[list[str], int]:
    """The JSON lines for requests that ended in [start, end) and reached an engine, and the span count."""
    served = [r for r in select(state.records, start, end) if r.flags in COUNTED_FLAGS and r.pod]
    lines = []
    for i in range(0, len(served), BATCH):
        by_pod: dict[str, list[Request]] = {}
        for r in served[i:i + BATCH]:
            by_pod.setdefault(r.pod, []).append(r)
        doc = {"resourceSpans": [
            {"resource": {"attributes": _resource(state, rs[0])},
             "scopeSpans": [{"scope": {"name": "fleetlens.simulator"}, "spans": [span(state, r) for r in rs]}]}
            for rs in by_pod.values()
        ]}
        lines.append(json.dumps(doc, separators=(",", ":")))
    return lines, len(served)


def write_otlp(state: FleetState, path: str | Path, start: float, end: float) -> int:
    """Write the spans of [start, end) to ``path`` (one export request per line); return the span count."""
    lines, n = export_lines(state, start, end)
    Path(path).write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    return n
