"""vLLM /metrics (v0.6 to v0.33, and the vllm:* series of Triton's vLLM backend) into engine frames.

Renames across versions map to one column, the new name winning when a version exposes both
(deprecated names stay visible for a release): ``kv_cache_usage_perc`` / ``gpu_cache_usage_perc``,
``prefix_cache_*`` / ``gpu_prefix_cache_*``, ``inter_token_latency_seconds`` /
``time_per_output_token_seconds`` (-> ``itl_s``). ``request_time_per_output_token_seconds`` is the
per-request TPOT (-> ``tpot_s``), a different distribution under speculative decoding.

``request_success_total`` counts *finished* requests by ``finished_reason``. fleetlens splits it:
``abort`` and ``error`` go to ``requests_failure_total``, every other reason (``stop``, ``length``,
``repetition`` ...) to ``requests_success_total``, so success + failure is vLLM's total and the error
ratio means the same as for Triton (whose failures include cancellations). A page without
``finished_reason`` (old versions) counts everything as success and leaves failure null.
"""

from __future__ import annotations

import polars as pl

from analytics.schema import Engine, HistMetric
from collectors.normalise.frames import Normalised
from collectors.normalise.rules import EngineSpec, RuleKind, histogram, parse_engine, sample_key, scalar
from collectors.samples import NAME, label

FAILURE_REASONS = ("abort", "error")
_FAILURE = "vllm:request_failure_total"  # synthetic name the split success counter's failures take

RULES = (
    *scalar("vllm_num_requests_running", "requests_running"),
    *scalar("vllm_num_requests_waiting", "requests_waiting"),
    *scalar(["vllm_kv_cache_usage_perc", "vllm_gpu_cache_usage_perc"], "kv_cache_usage_ratio", kind=RuleKind.MAX),
    *scalar("vllm_prompt_tokens_total", "prompt_tokens_total"),
    *scalar("vllm_generation_tokens_total", "generation_tokens_total"),
    *scalar("vllm_request_success_total", "requests_success_total"),
    *scalar("vllm_request_failure_total", "requests_failure_total"),
    *scalar("vllm_num_preemptions_total", "preemptions_total"),
    *scalar(["vllm_prefix_cache_queries_total", "vllm_gpu_prefix_cache_queries_total"], "prefix_cache_queries_total"),
    *scalar(["vllm_prefix_cache_hits_total", "vllm_gpu_prefix_cache_hits_total"], "prefix_cache_hits_total"),
    *histogram("vllm_time_to_first_token_seconds", HistMetric.TTFT_S),
    *histogram(["vllm_inter_token_latency_seconds", "vllm_time_per_output_token_seconds"], HistMetric.ITL_S),
    *histogram("vllm_request_time_per_output_token_seconds", HistMetric.TPOT_S),
    *histogram("vllm_e2e_request_latency_seconds", HistMetric.E2E_S),
    *histogram("vllm_request_queue_time_seconds", HistMetric.QUEUE_S),
    *histogram("vllm_request_prefill_time_seconds", HistMetric.PREFILL_S),
    *histogram("vllm_request_decode_time_seconds", HistMetric.DECODE_S),
    *histogram("vllm_request_inference_time_seconds", HistMetric.INFERENCE_S),
    *histogram("vllm_request_prompt_tokens", HistMetric.PROMPT_TOKENS),
    *histogram("vllm_request_generation_tokens", HistMetric.GENERATION_TOKENS),
    # A histogram whose family name ends in _total: samples are vllm:iteration_tokens_total_bucket ...
    *histogram("vllm_iteration_tokens_total", HistMetric.ITERATION_TOKENS),
)

SPEC = EngineSpec(
    engine=Engine.VLLM,
    rules=RULES,
    # model_name from vLLM itself; model (+ version) when served through Triton's vLLM backend, whose
    # ``version`` is Triton's model-repository version: kept in the replica, as for Triton's own rows.
    model=("model_name", "model"),
    replica=("version", "engine"),
)


def split_finished_reason(wide: pl.DataFrame) -> pl.DataFrame:
    """Rename request_success samples whose ``finished_reason`` is abort/error to a failure counter."""
    if "finished_reason" not in wide.columns or NAME not in wide.columns:
        return wide
    key = sample_key()
    failed = key.is_in(["vllm_request_success", "vllm_request_success_total"]) & label(
        wide, "finished_reason"
    ).is_in(list(FAILURE_REASONS))
    return wide.with_columns(pl.when(failed).then(pl.lit(_FAILURE)).otherwise(pl.col(NAME)).alias(NAME))


def parse_vllm(wide: pl.DataFrame) -> Normalised:
    """Normalise a vLLM page (or a Prometheus-API frame of vllm:* series) into engine frames."""
    return parse_engine(split_finished_reason(wide), SPEC)
