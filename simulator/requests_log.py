"""The LLM gateway's access log: one Envoy-style JSON line per request, written when the request ends.

A line's request reached an engine and was counted there (vLLM ``request_success``, Triton success or
failure) exactly when ``response_flags`` is ``"-"`` (served, incl. engine errors 500) or ``"DC"`` (the
client gave up while it waited: vLLM counts ``finished_reason="abort"``). ``UO`` (gateway overflow,
503), ``UH`` (no healthy upstream, 503) and ``UC`` (pod restarted under the request, 503) never
reached an engine's counters.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from simulator.engine import itl_of
from simulator.load import Request
from simulator.state import FleetState

COUNTED_FLAGS = frozenset({"-", "DC"})


def _iso_ms(state: FleetState, t: float) -> str:
    return (state.spec.start + timedelta(seconds=t)).strftime(
        "%Y-%m-%dT%H:%M:%S."
    ) + f"{int(t * 1000) % 1000:03d}Z"


def _ms(x: float) -> float | None:
    return None if math.isnan(x) else round(x * 1000.0, 3)


def log_line(state: FleetState, r: Request, host_of: Callable[[str], str | None]) -> dict[str, Any]:
    """One access-log object for a finished request."""
    reached = r.flags in COUNTED_FLAGS or r.flags == "UC"
    duration_ms = round((r.finish - r.arrival) * 1000)
    completion = int(r.generated) if r.counted else 0
    return {
        "start_time": _iso_ms(state, r.arrival),
        "method": "POST",
        "path": "/v1/chat/completions",
        "protocol": "HTTP/1.1",
        "response_code": r.status,
        "response_flags": r.flags,
        "bytes_received": 200 + 4 * r.prompt,
        "bytes_sent": 180 + 4 * completion if r.status == 200 else 90,
        "duration": duration_ms,
        "upstream_service_time": duration_ms if reached else None,
        "x_request_id": r.rid,
        "request_id": r.rid,
        "upstream_host": host_of(r.pod) if r.pod else None,
        "upstream_cluster": r.upstream,
        "upstream_pod": r.pod or None,
        "route_name": r.model,
        "x_tenant": r.tenant,
        "namespace": r.tenant,
        "model": r.model,
        "model_version": r.model_version or None,
        "variant": r.variant,
        "prompt_tokens": r.prompt,
        "completion_tokens": completion,
        "ttft_ms": _ms(r.ttft_s) if r.counted and r.status == 200 else None,
        "itl_ms": _ms(itl_of(r)) if r.counted and r.status == 200 else None,
        "queue_ms": _ms(r.queue_s) if r.counted else None,
        "finish_reason": r.finish_reason or None,
    }


def select(records: Iterable[Request], start: float, end: float) -> list[Request]:
    """Requests that ended (the gateway wrote their line) in [start, end), in the order written."""
    return [r for r in records if start <= r.finish < end]


def write_jsonl(
    state: FleetState, path: str | Path, start: float, end: float, host_of: Callable[[str], str | None]
) -> int:
    """Write the lines of [start, end) to ``path``; return how many were written."""
    rows = select(state.records, start, end)
    with Path(path).open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(log_line(state, r, host_of), separators=(",", ":")) + "\n" for r in rows)
    return len(rows)
