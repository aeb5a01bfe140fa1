"""Hugging Face TGI /metrics into engine frames.

TGI's exposition has no model label: the model comes from the scrape target's ``model_name``
label (which the collector takes from TGI's ``/info`` ``model_id`` or the pod's labels). Counter
names are registered without ``_total`` by metrics-exporter-prometheus; both spellings are read.
``tgi_request_failure`` is summed over ``err``. ``tgi_request_mean_time_per_token_duration`` is a
per-request mean time per output token (-> ``tpot_s``). Histograms use TGI's 35 geometric buckets.
"""

from __future__ import annotations

import polars as pl

from analytics.schema import Engine, HistMetric
from collectors.normalise.frames import Normalised
from collectors.normalise.rules import EngineSpec, histogram, parse_engine, scalar

RULES = (
    *scalar("tgi_request_success", "requests_success_total"),
    *scalar("tgi_request_failure", "requests_failure_total"),
    *scalar("tgi_queue_size", "requests_waiting"),
    *scalar("tgi_batch_current_size", "requests_running"),
    *histogram("tgi_request_duration", HistMetric.E2E_S),
    *histogram("tgi_request_queue_duration", HistMetric.QUEUE_S),
    *histogram("tgi_request_inference_duration", HistMetric.INFERENCE_S),
    *histogram("tgi_request_mean_time_per_token_duration", HistMetric.TPOT_S),
    *histogram("tgi_request_input_length", HistMetric.PROMPT_TOKENS),
    *histogram("tgi_request_generated_tokens", HistMetric.GENERATION_TOKENS),
)

SPEC = EngineSpec(
    engine=Engine.TGI,
    rules=RULES,
    model=("model_name",),  # a target label: TGI exposes none
)


def parse_tgi(wide: pl.DataFrame) -> Normalised:
    """Normalise a TGI page into engine frames (model from the target's ``model_name`` label)."""
    return parse_engine(wide, SPEC)
