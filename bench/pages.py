"""Generate realistic, deterministic exposition pages for the parser benchmark (dcgm-exporter + vLLM).

The dcgm page follows dcgm-exporter's renderer: the field set and types of its
``etc/default-counters.csv`` (upstream copy in ``tests/fixtures/upstream``), one ``# HELP``/``# TYPE``
block per field, and the GPU label template ``gpu, UUID, pci_bus_id, device, modelName,
[GPU_I_PROFILE, GPU_I_ID], Hostname, DCGM_FI_DRIVER_VERSION, container, namespace, pod``.
The vLLM page follows prometheus_client's text output of the vLLM 0.33 metric set: counters with
``_total`` and their ``_created`` gauges, histograms with the default buckets of
``vllm/v1/metrics/buckets.py`` (research/telemetry.md), labels ``model_name, engine``.
"""

from __future__ import annotations

import random
from pathlib import Path

from simulator.stats import ITL_BUCKETS, REQUEST_LATENCY_BUCKETS, TTFT_BUCKETS

CSV = Path(__file__).resolve().parents[1] / "tests/fixtures/upstream/dcgm-exporter/default-counters.csv"
MODELS = (
    "meta-llama/Llama-3.1-8B-Instruct",
    "meta-llama/Llama-3.1-70B-Instruct",
    "Qwen/Qwen2.5-32B-Instruct",
    "mistralai/Mistral-7B-Instruct-v0.3",
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B",
)
TENANTS = ("search", "ads-ranking", "chat-prod", "chat-canary", "batch-eval", "research")
MIG_UNSUPPORTED = ("_UTIL",)  # *_UTIL fields do not exist on MIG slices

# vLLM 0.33's default buckets, as the simulator serves them (vllm/v1/metrics/buckets.py).
TTFT, ITL, LATENCY = TTFT_BUCKETS, ITL_BUCKETS, REQUEST_LATENCY_BUCKETS
TOKENS = tuple(m * 10**e for e in range(5) for m in (1, 2, 5) if m * 10**e <= 32768)  # 1-2-5 to max_model_len
ITER = tuple(2**i for i in range(15))  # 1..16384

VLLM_HIST = {
    "time_to_first_token_seconds": ("Histogram of time to first token in seconds.", TTFT),
    "inter_token_latency_seconds": ("Histogram of inter-token latency in seconds.", ITL),
    "request_time_per_output_token_seconds": ("Histogram of time_per_output_token_seconds per request.", ITL),
    "e2e_request_latency_seconds": ("Histogram of e2e request latency in seconds.", LATENCY),
    "request_queue_time_seconds": ("Histogram of time spent in WAITING phase for request.", LATENCY),
    "request_inference_time_seconds": ("Histogram of time spent in RUNNING phase for request.", LATENCY),
    "request_prefill_time_seconds": ("Histogram of time spent in PREFILL phase for request.", LATENCY),
    "request_decode_time_seconds": ("Histogram of time spent in DECODE phase for request.", LATENCY),
    "request_prompt_tokens": ("Number of prefill tokens processed.", TOKENS),
    "request_generation_tokens": ("Number of generation tokens processed.", TOKENS),
    "request_max_num_generation_tokens": (
        "Histogram of maximum number of requested generation tokens.",
        TOKENS,
    ),
    "request_params_n": ("Histogram of the n request parameter.", (1, 2, 5, 10, 20)),
    "request_params_max_tokens": ("Histogram of the max_tokens request parameter.", TOKENS),
    "iteration_tokens_total": ("Histogram of number of tokens per engine_step.", ITER),
    "request_num_preemptions": ("Number of preemptions per request.", (0, 1, 2, 5, 10)),
    "request_prefill_kv_computed_tokens": ("Prefill tokens computed per request, excluding cached.", TOKENS),
}
VLLM_COUNTERS = {
    "prompt_tokens": "Number of prefill tokens processed.",
    "generation_tokens": "Number of generation tokens processed.",
    "num_preemptions": "Cumulative number of preemption from the engine.",
    "prefix_cache_queries": "Prefix cache queries, in terms of number of queried tokens.",
    "prefix_cache_hits": "Prefix cache hits, in terms of number of cached tokens.",
    "external_prefix_cache_queries": "External prefix cache queries from KV connector cross-instance cache sharing.",
    "external_prefix_cache_hits": "External prefix cache hits from KV connector cross-instance cache sharing.",
    "mm_cache_queries": "Multi-modal cache queries, in terms of number of queried items.",
    "mm_cache_hits": "Multi-modal cache hits, in terms of number of cached items.",
    "corrupted_requests": "Corrupted requests, in terms of total number of requests with NaNs in logits.",
}
VLLM_GAUGES = {
    "num_requests_running": "Number of requests in model execution batches.",
    "num_requests_waiting": "Number of requests waiting to be processed.",
    "kv_cache_usage_perc": "KV-cache usage. 1 means 100 percent usage.",
    "engine_sleep_state": "Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is awake.",
}


def _fields() -> list[tuple[str, str, str]]:
    """(field, prometheus type, help) rows of default-counters.csv; the 'label' row is returned too."""
    rows = []
    for raw in CSV.read_text().splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        field, ptype, help_text = (p.strip() for p in raw.split(",", 2))
        rows.append((field, ptype, help_text))
    return rows


def dcgm_page(n_gpus: int = 1000, *, seed: int = 0, mig_every: int = 10) -> str:
    """One dcgm-exporter scrape of ``n_gpus`` GPUs (8 per host; every ``mig_every``-th host MIG)."""
    rng = random.Random(seed)
    fields = _fields()
    driver = "550.90.07"
    entities: list[str] = []
    for g in range(n_gpus):
        host, idx = divmod(g, 8)
        uuid = (
            f"GPU-{rng.getrandbits(32):08x}-{rng.getrandbits(16):04x}-{rng.getrandbits(16):04x}-"
            f"{rng.getrandbits(16):04x}-{rng.getrandbits(48):012x}"
        )
        head = (
            f'gpu="{idx}",UUID="{uuid}",pci_bus_id="00000000:{idx * 16 + 0x18:02X}:00.0",'
            f'device="nvidia{idx}",modelName="NVIDIA H100 80GB HBM3"'
        )
        tail = f'Hostname="gpu-node-{host:04d}",DCGM_FI_DRIVER_VERSION="{driver}"'
        if host % mig_every == mig_every - 1:
            for gi, profile in ((1, "3g.40gb"), (2, "3g.40gb")):
                pod = f"llm-{rng.randrange(10**6):06d}-{rng.getrandbits(20):05x}"
                ns = rng.choice(TENANTS)
                entities.append(
                    f'{head},GPU_I_PROFILE="{profile}",GPU_I_ID="{gi}",{tail},'
                    f'container="vllm",namespace="{ns}",pod="{pod}"|mig'
                )
        elif rng.random() < 0.15:
            entities.append(f'{head},{tail},container="",namespace="",pod=""')
        else:
            pod = f"llm-{rng.randrange(10**6):06d}-{rng.getrandbits(20):05x}"
            entities.append(f'{head},{tail},container="vllm",namespace="{rng.choice(TENANTS)}",pod="{pod}"')
    out: list[str] = []
    for field, ptype, help_text in fields:
        if ptype == "label":
            continue
        out.append(f"# HELP {field} {help_text}")
        out.append(f"# TYPE {field} {ptype}")
        for ent in entities:
            labels, _, kind = ent.partition("|")
            if kind == "mig" and field.endswith(MIG_UNSUPPORTED):
                continue
            value = rng.randrange(0, 1_000_000) if ptype == "counter" else round(rng.uniform(0, 100), 3)
            out.append(f"{field}{{{labels}}} {value}")
    return "\n".join(out) + "\n"


def _num(v: float) -> str:
    """A float the way prometheus_client writes it (repr; +Inf)."""
    return "+Inf" if v == float("inf") else repr(float(v))


def vllm_page(n_engines: int = 100, *, seed: int = 1) -> str:
    """One page with ``n_engines`` vLLM 0.33 engines (4 per model), as prometheus_client writes it."""
    rng = random.Random(seed)
    engines = []
    for i in range(n_engines):
        m, engine = divmod(i, 4)
        model = MODELS[m % len(MODELS)] + (f"-ft{m // len(MODELS)}" if m >= len(MODELS) else "")
        engines.append(f'model_name="{model}",engine="{engine}"')
    created = {lbl: 1.7e9 + rng.random() * 1e6 for lbl in engines}
    out: list[str] = []
    for name, help_text in VLLM_GAUGES.items():
        out += [f"# HELP vllm:{name} {help_text}", f"# TYPE vllm:{name} gauge"]
        out += [f"vllm:{name}{{{lbl}}} {_num(round(rng.uniform(0, 50), 4))}" for lbl in engines]
    for name, help_text in VLLM_COUNTERS.items():
        out += [f"# HELP vllm:{name}_total {help_text}", f"# TYPE vllm:{name}_total counter"]
        out += [f"vllm:{name}_total{{{lbl}}} {_num(rng.randrange(10**8))}" for lbl in engines]
        out += [f"# HELP vllm:{name}_created {help_text}", f"# TYPE vllm:{name}_created gauge"]
        out += [f"vllm:{name}_created{{{lbl}}} {_num(created[lbl])}" for lbl in engines]
    out += [
        "# HELP vllm:request_success_total Count of successfully processed requests.",
        "# TYPE vllm:request_success_total counter",
    ]
    for lbl in engines:
        for reason in ("stop", "length", "abort", "error", "repetition"):
            out.append(
                f'vllm:request_success_total{{{lbl},finished_reason="{reason}"}} {_num(rng.randrange(10**6))}'
            )
    out += [
        "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig",
        "# TYPE vllm:cache_config_info gauge",
    ]
    for lbl in engines:
        out.append(
            f'vllm:cache_config_info{{block_size="16",cache_dtype="auto",{lbl},'
            f'gpu_memory_utilization="0.9",num_gpu_blocks="27000"}} 1.0'
        )
    for name, (help_text, buckets) in VLLM_HIST.items():
        out += [f"# HELP vllm:{name} {help_text}", f"# TYPE vllm:{name} histogram"]
        for lbl in engines:
            count = rng.randrange(1, 10**6)
            cum = 0
            for b in buckets:
                cum = min(count, cum + rng.randrange(0, count // len(buckets) + 2))
                out.append(f'vllm:{name}_bucket{{{lbl},le="{_num(b)}"}} {_num(cum)}')
            out.append(f'vllm:{name}_bucket{{{lbl},le="+Inf"}} {_num(count)}')
            out.append(f"vllm:{name}_count{{{lbl}}} {_num(count)}")
            out.append(f"vllm:{name}_sum{{{lbl}}} {_num(round(count * rng.uniform(0.01, 3), 6))}")
        out += [f"# HELP vllm:{name}_created {help_text}", f"# TYPE vllm:{name}_created gauge"]
        out += [f"vllm:{name}_created{{{lbl}}} {_num(created[lbl])}" for lbl in engines]
    return "\n".join(out) + "\n"


def fleet_page(n_gpus: int = 1000, n_engines: int = 100) -> str:
    """The benchmark page: a 1,000-GPU dcgm-exporter scrape followed by 100 vLLM engines."""
    return dcgm_page(n_gpus) + vllm_page(n_engines)
