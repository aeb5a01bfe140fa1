"""SGLang /metrics (``--enable-metrics``) into engine frames.

Scheduler gauges are reported once per ``tp_rank`` (and ``pp_rank``, ``moe_ep_rank``): every rank
holds a copy of the same scheduler state, so fleetlens takes rank 0 (the max when rank 0 is
missing) and never sums ranks. ``dp_rank`` is a real data-parallel replica and becomes ``replica``.
``token_usage`` is the KV-pool usage (-> ``kv_cache_usage_ratio``). The ITL histogram was renamed
(``time_per_output_token_seconds`` -> ``inter_token_latency_seconds``): both map to ``itl_s``.

Counters: ``num_requests_total`` counts requests processed (-> ``requests_success_total``) and
``num_aborted_requests_total`` aborted ones (-> ``requests_failure_total``); upstream does not say
whether the first includes the second, so an error ratio from them is an upper bound's complement.
``cached_tokens_total`` (prompt tokens served from the radix cache) -> ``prefix_cache_hits_total``.
"""

from __future__ import annotations

import polars as pl

from analytics.schema import Engine, HistMetric
from collectors.normalise.frames import Normalised
from collectors.normalise.rules import EngineSpec, RuleKind, histogram, parse_engine, scalar

RULES = (
    *scalar("sglang_num_running_reqs", "requests_running"),
    *scalar("sglang_num_queue_reqs", "requests_waiting"),
    *scalar("sglang_token_usage", "kv_cache_usage_ratio", kind=RuleKind.MAX),
    *scalar("sglang_prompt_tokens_total", "prompt_tokens_total"),  # summed over is_streaming
    *scalar("sglang_generation_tokens_total", "generation_tokens_total"),
    *scalar("sglang_num_requests_total", "requests_success_total"),
    *scalar("sglang_num_aborted_requests_total", "requests_failure_total"),
    *scalar("sglang_cached_tokens_total", "prefix_cache_hits_total"),  # summed over cache_source
    *histogram("sglang_time_to_first_token_seconds", HistMetric.TTFT_S),
    *histogram(["sglang_inter_token_latency_seconds", "sglang_time_per_output_token_seconds"], HistMetric.ITL_S),
    *histogram("sglang_request_time_per_output_token_seconds", HistMetric.TPOT_S),
    *histogram("sglang_e2e_request_latency_seconds", HistMetric.E2E_S),
    *histogram("sglang_queue_time_seconds", HistMetric.QUEUE_S),
)

SPEC = EngineSpec(
    engine=Engine.SGLANG,
    rules=RULES,
    model=("model_name",),
    replica=("dp_rank",),
    ranks=("tp_rank", "pp_rank", "moe_ep_rank"),
)


def parse_sglang(wide: pl.DataFrame) -> Normalised:
    """Normalise an SGLang page (or a Prometheus-API frame of sglang:* series) into engine frames."""
    return parse_engine(wide, SPEC)
