"""Per-engine counters and histograms, kept the way the real servers keep them (reset on restart)."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

# vLLM 0.33 vllm/v1/metrics/buckets.py defaults (research/telemetry.md §2).
TTFT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
    160.0,
    640.0,
    2560.0,
)
ITL_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
)
REQUEST_LATENCY_BUCKETS = (
    0.3,
    0.5,
    0.8,
    1.0,
    1.5,
    2.0,
    2.5,
    5.0,
    10.0,
    15.0,
    20.0,
    30.0,
    40.0,
    50.0,
    60.0,
    120.0,
    240.0,
    480.0,
    960.0,
    1920.0,
    7680.0,
)
ITERATION_TOKEN_BUCKETS = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
N_BUCKETS = (1, 2, 5, 10, 20)
TRITON_FIRST_RESPONSE_MS_BUCKETS = (100, 500, 2000, 5000)


def buckets_1_2_5(max_value: int) -> tuple[int, ...]:
    """vLLM's build_1_2_5_buckets: 1, 2, 5, 10, 20, 50, ... up to max_value."""
    out, exp = [], 0
    while True:
        for m in (1, 2, 5):
            v = m * 10**exp
            if v > max_value:
                return tuple(out)
            out.append(v)
        exp += 1


@dataclass(slots=True)
class Hist:
    """A cumulative-on-render histogram: per-bucket counts (last slot is +Inf), sum and count."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float, n: int = 1) -> None:
        """Record ``n`` observations of ``value`` (le is inclusive, as in Prometheus)."""
        if n <= 0:
            return
        self.counts[bisect_left(self.bounds, value)] += n
        self.total += value * n
        self.count += n

    def cumulative(self) -> list[tuple[float, int]]:
        """(le, cumulative count) pairs ending with +Inf."""
        out, acc = [], 0
        for b, c in zip((*self.bounds, float("inf")), self.counts, strict=True):
            acc += c
            out.append((b, acc))
        return out


VLLM_FINISH_REASONS = ("stop", "length", "abort", "error", "repetition")
TRITON_FAILURE_REASONS = ("REJECTED", "CANCELED", "BACKEND", "OTHER")


@dataclass(slots=True)
class EngineStats:
    """Everything an engine's /metrics shows; one instance per process lifetime (a restart makes a new one)."""

    created: float  # epoch seconds of the process start (prometheus_client *_created)
    max_model_len: int
    counters: dict[str, float] = field(default_factory=dict)
    success: dict[str, int] = field(default_factory=dict)  # by vLLM finished_reason / Triton outcome
    failure: dict[str, int] = field(default_factory=dict)  # Triton failure reasons
    hists: dict[str, Hist] = field(default_factory=dict)
    running: int = 0
    waiting: int = 0
    kv_usage: float = 0.0

    def __post_init__(self) -> None:
        tok = buckets_1_2_5(self.max_model_len)
        self.success = dict.fromkeys(VLLM_FINISH_REASONS, 0)
        self.failure = dict.fromkeys(TRITON_FAILURE_REASONS, 0)
        for name in (
            "prompt_tokens",
            "generation_tokens",
            "num_preemptions",
            "prefix_cache_queries",
            "prefix_cache_hits",
            "inference_count",
            "exec_count",
            "request_duration_us",
            "queue_duration_us",
            "compute_input_duration_us",
            "compute_infer_duration_us",
            "compute_output_duration_us",
        ):
            self.counters[name] = 0.0
        spec = {
            "time_to_first_token_seconds": TTFT_BUCKETS,
            "inter_token_latency_seconds": ITL_BUCKETS,
            "request_time_per_output_token_seconds": ITL_BUCKETS,
            "e2e_request_latency_seconds": REQUEST_LATENCY_BUCKETS,
            "request_queue_time_seconds": REQUEST_LATENCY_BUCKETS,
            "request_inference_time_seconds": REQUEST_LATENCY_BUCKETS,
            "request_prefill_time_seconds": REQUEST_LATENCY_BUCKETS,
            "request_decode_time_seconds": REQUEST_LATENCY_BUCKETS,
            "request_prompt_tokens": tok,
            "request_generation_tokens": tok,
            "request_params_max_tokens": tok,
            "request_max_num_generation_tokens": tok,
            "request_params_n": N_BUCKETS,
            "iteration_tokens_total": ITERATION_TOKEN_BUCKETS,
            "first_response_histogram_ms": TRITON_FIRST_RESPONSE_MS_BUCKETS,
        }
        self.hists = {k: Hist(tuple(float(b) for b in v)) for k, v in spec.items()}

    def add(self, name: str, value: float) -> None:
        """Increase counter ``name``."""
        self.counters[name] += value
