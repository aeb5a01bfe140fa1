"""vLLM's /metrics (0.33, or 0.8.5 names for renames), rendered by prometheus_client as vLLM does."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from simulator.config import EngineKind
from simulator.engine import EngineSim
from simulator.stats import VLLM_FINISH_REASONS, Hist

# HELP texts from vllm/v1/metrics/loggers.py.
_HIST_HELP = {
    "request_prompt_tokens": "Number of prefill tokens processed.",
    "request_generation_tokens": "Number of generation tokens processed.",
    "iteration_tokens_total": "Histogram of number of tokens per engine_step.",
    "request_max_num_generation_tokens": "Histogram of maximum number of requested generation tokens.",
    "request_params_n": "Histogram of the n request parameter.",
    "request_params_max_tokens": "Histogram of the max_tokens request parameter.",
    "time_to_first_token_seconds": "Histogram of time to first token in seconds.",
    "inter_token_latency_seconds": "Histogram of inter-token latency in seconds.",
    "request_time_per_output_token_seconds": "Histogram of time_per_output_token_seconds per request.",
    "e2e_request_latency_seconds": "Histogram of e2e request latency in seconds.",
    "request_queue_time_seconds": "Histogram of time spent in WAITING phase for request.",
    "request_inference_time_seconds": "Histogram of time spent in RUNNING phase for request.",
    "request_prefill_time_seconds": "Histogram of time spent in PREFILL phase for request.",
    "request_decode_time_seconds": "Histogram of time spent in DECODE phase for request.",
}
_OLD_ITL = ("time_per_output_token_seconds", "Histogram of time per output token in seconds.")


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def render_families(families: list[Metric]) -> str:
    """Text exposition of ``families`` exactly as prometheus_client's generate_latest writes it."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry).decode()


def _gauge(name: str, doc: str, labels: dict[str, str], value: float) -> Metric:
    m = Metric(name, doc, "gauge")
    m.add_sample(name, labels, value)
    return m


def _counter(name: str, doc: str, series: list[tuple[dict[str, str], float]], created: float) -> Metric:
    m = Metric(name, doc, "counter")
    for labels, value in series:
        m.add_sample(f"{name}_total", labels, float(value))
        m.add_sample(f"{name}_created", labels, created)
    return m


def _histogram(name: str, doc: str, labels: dict[str, str], h: Hist, created: float) -> Metric:
    m = Metric(name, doc, "histogram")
    for le, cum in h.cumulative():
        m.add_sample(f"{name}_bucket", {**labels, "le": floatToGoString(le)}, float(cum))
    m.add_sample(f"{name}_count", labels, float(h.count))
    m.add_sample(f"{name}_sum", labels, float(h.total))
    m.add_sample(f"{name}_created", labels, created)
    return m


def vllm_families(engine: EngineSim) -> list[Metric]:
    """The metric families of one vLLM engine, in vLLM's registration order."""
    st, m = engine.stats, engine.model
    old = m.engine is EngineKind.VLLM_OLD
    lab = {"model_name": m.name, "engine": "0"}
    c, created = st.counters, st.created
    fams = [
        _gauge(
            "vllm:num_requests_running", "Number of requests in model execution batches.", lab, st.running
        ),
        _gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", lab, st.waiting),
    ]
    if old:
        fams += [
            _gauge(
                "vllm:gpu_cache_usage_perc",
                "GPU KV-cache usage. 1 means 100 percent usage.",
                lab,
                st.kv_usage,
            ),
            _counter(
                "vllm:gpu_prefix_cache_queries",
                "GPU prefix cache queries, in terms of number of queried tokens.",
                [(lab, c["prefix_cache_queries"])],
                created,
            ),
            _counter(
                "vllm:gpu_prefix_cache_hits",
                "GPU prefix cache hits, in terms of number of cached tokens.",
                [(lab, c["prefix_cache_hits"])],
                created,
            ),
        ]
    else:
        fams += [
            _gauge(
                "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", lab, st.kv_usage
            ),
            _counter(
                "vllm:prefix_cache_queries",
                "Prefix cache queries, in terms of number of queried tokens.",
                [(lab, c["prefix_cache_queries"])],
                created,
            ),
            _counter(
                "vllm:prefix_cache_hits",
                "Prefix cache hits, in terms of number of cached tokens.",
                [(lab, c["prefix_cache_hits"])],
                created,
            ),
        ]
    fams += [
        _counter(
            "vllm:num_preemptions",
            "Cumulative number of preemption from the engine.",
            [(lab, c["num_preemptions"])],
            created,
        ),
        _counter(
            "vllm:prompt_tokens", "Number of prefill tokens processed.", [(lab, c["prompt_tokens"])], created
        ),
        _counter(
            "vllm:generation_tokens",
            "Number of generation tokens processed.",
            [(lab, c["generation_tokens"])],
            created,
        ),
    ]
    reasons = VLLM_FINISH_REASONS if not old else ("stop", "length", "abort")
    series = [({**lab, "finished_reason": r}, st.success[r]) for r in reasons]
    if old:  # 0.8.5 had no "error" reason: count engine errors as aborts there
        series[2] = (series[2][0], st.success["abort"] + st.success["error"])
    fams.append(
        _counter("vllm:request_success", "Count of successfully processed requests.", series, created)
    )
    for key, doc in _HIST_HELP.items():
        name = key
        if key == "inter_token_latency_seconds" and old:
            name, doc = _OLD_ITL
        elif key == "request_time_per_output_token_seconds" and old:
            continue
        fams.append(_histogram(f"vllm:{name}", doc, lab, st.hists[key], created))
    info = {
        "block_size": "16",
        "cache_dtype": "auto",
        "enable_prefix_caching": "True",
        "gpu_memory_utilization": "0.9",
        "num_gpu_blocks": str(m.kv_cache_tokens // 16),
        "engine": "0",
    }
    fams.append(_gauge("vllm:cache_config_info", "Information of the LLMEngine CacheConfig", info, 1.0))
    return fams


def render_vllm(engine: EngineSim) -> str:
    """One vLLM pod's /metrics page."""
    return render_families(vllm_families(engine))
