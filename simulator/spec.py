"""The simulated fleet's specification: a frozen dataclass tree, its GPU products and the demo fleet."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum


class EngineKind(StrEnum):
    """Which inference server (and exposition format) a deployment runs."""

    VLLM = "vllm"  # vLLM 0.33: kv_cache_usage_perc, inter_token_latency_seconds
    VLLM_OLD = (
        "vllm-0.8"  # vLLM 0.8.5: gpu_cache_usage_perc, gpu_prefix_cache_*, time_per_output_token_seconds
    )
    TRITON = "triton"


class CanaryOutcome(StrEnum):
    """What the rollout does after its last weight step."""

    PROMOTE = "promote"
    ABORT = "abort"
    HOLD = "hold"


@dataclass(frozen=True, slots=True)
class GpuProduct:
    """A GPU model: what dcgm-exporter reports and what the power/thermal model needs."""

    model_name: str  # dcgm modelName, e.g. "NVIDIA H100 80GB HBM3"
    label: str  # node label nvidia.com/gpu.product
    memory_mib: int
    tdp_w: float
    idle_w: float


H100 = GpuProduct("NVIDIA H100 80GB HBM3", "NVIDIA-H100-80GB-HBM3", 81559, 700.0, 72.0)
A100 = GpuProduct("NVIDIA A100-SXM4-80GB", "NVIDIA-A100-SXM4-80GB", 81920, 400.0, 55.0)
PRODUCTS = {"H100": H100, "A100": A100}
# Framebuffer per MIG profile on an 80 GB part (MiB), as nvidia-smi reports them.
MIG_MEMORY_MIB = {"1g.10gb": 9984, "2g.20gb": 19968, "3g.40gb": 40192, "4g.40gb": 40192, "7g.80gb": 80896}


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One Kubernetes node; ``mig`` maps a GPU index to its MIG instance profiles (in GPU_I_ID order)."""

    name: str
    gpu: str = "H100"  # key of PRODUCTS
    gpu_count: int = 8
    cpu: int = 192
    memory_gib: int = 2048
    mig: Mapping[int, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PlacementSpec:
    """Where one replica runs: whole GPUs, one MIG instance, or a fraction of one GPU (time-sliced)."""

    node: str
    gpus: tuple[int, ...]
    mig_instance: int | None = None  # index into the node's MIG layout for gpus[0]
    fraction: float | None = None  # Run:ai-style gpu-fraction on a shared GPU


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One served model of one tenant and its engine's capacity parameters."""

    name: str
    tenant: str
    engine: EngineKind = EngineKind.VLLM
    size_class: str = "7B"
    rate_rps: float = 4.0
    prompt_tokens_mean: float = 600.0
    output_tokens_mean: float = 200.0
    max_num_seqs: int = 128
    kv_cache_tokens: int = 200_000
    base_itl_s: float = 0.012
    prefill_tokens_per_s: float = 12_000.0
    weights_gib: float = 16.0
    max_model_len: int = 8192
    base_error_rate: float = 0.001
    replicas: tuple[PlacementSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class RegressionSpec:
    """How much worse the canary's pods are than the baseline's."""

    ttft_regression_pct: float = 25.0
    itl_regression_pct: float = 10.0
    error_rate_add: float = 0.02


@dataclass(frozen=True, slots=True)
class CanarySpec:
    """An Argo Rollouts canary of one model: new revision, its pods and its weight steps."""

    model: str
    revision: int = 2
    replicas: tuple[PlacementSpec, ...] = ()
    start_s: float = 300.0  # seconds after the simulation start
    weight_steps: tuple[int, ...] = (10, 25, 50)
    step_duration_s: float = 600.0
    warmup_s: float = 120.0
    outcome: CanaryOutcome = CanaryOutcome.ABORT


@dataclass(frozen=True, slots=True)
class RestartSpec:
    """Restart one pod's container at a sim offset: its counters start again from zero."""

    pod: str
    at_s: float


@dataclass(frozen=True, slots=True)
class FleetSpec:
    """The whole simulated world."""

    seed: int = 7
    start: datetime = datetime(2025, 6, 2, 8, 0, tzinfo=UTC)
    speed: float = 60.0  # sim seconds per wall second (ignored by a manual clock)
    step_s: float = 1.0
    cluster: str = "sim-gpu-cluster"
    base_port: int = 0  # 0: free ports chosen at start(); else base_port + i, in target order
    load_factor: float = 1.0
    max_queue_per_seq: float = 2.0  # gateway sheds (503 UO) when waiting > this x max_num_seqs
    client_timeout_s: float = 60.0  # a request still waiting this long is aborted by its client
    restart_downtime_s: float = 20.0
    log_retention_s: float = 6 * 3600.0
    nodes: tuple[NodeSpec, ...] = ()
    models: tuple[ModelSpec, ...] = ()
    canary: CanarySpec | None = None
    regression: RegressionSpec = RegressionSpec()
    restarts: tuple[RestartSpec, ...] = ()

    @property
    def tenants(self) -> tuple[str, ...]:
        """The tenants (namespaces), in first-seen order."""
        return tuple(dict.fromkeys(m.tenant for m in self.models))


def _p(node: str, *gpus: int, mig: int | None = None, fraction: float | None = None) -> PlacementSpec:
    return PlacementSpec(node, tuple(gpus), mig, fraction)


def default_fleet_spec(seed: int = 7) -> FleetSpec:
    """The demo fleet: 3 tenants, 7 models on H100/A100 with MIG, a time-sliced GPU and a canary."""
    h, a = "gpu-h100-0", "gpu-a100-0"
    nodes = (
        NodeSpec(h, "H100", 8, 192, 2048),
        NodeSpec(a, "A100", 4, 128, 1024, {0: ("3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb")}),
        NodeSpec("cpu-0", "H100", 0, 64, 256),
    )
    chat = "llama-3.1-8b-instruct"
    models = (
        ModelSpec(
            chat,
            "team-chat",
            EngineKind.VLLM,
            "7B",
            10.0,
            700,
            220,
            96,
            160_000,
            0.011,
            14_000,
            16.1,
            8192,
            replicas=(_p(h, 0), _p(h, 1)),
        ),
        ModelSpec(
            "llama-3.1-70b-instruct",
            "team-search",
            EngineKind.VLLM_OLD,
            "70B",
            2.5,
            1500,
            300,
            64,
            300_000,
            0.032,
            6_000,
            141.0,
            16384,
            replicas=(_p(h, 4, 5, 6, 7),),
        ),
        ModelSpec(
            "qwen2.5-14b-instruct",
            "team-code",
            EngineKind.TRITON,
            "14B",
            4.0,
            900,
            250,
            64,
            150_000,
            0.022,
            7_000,
            29.6,
            8192,
            replicas=(_p(a, 2), _p(a, 3)),
        ),
        ModelSpec(
            "qwen2.5-coder-7b-instruct",
            "team-code",
            EngineKind.VLLM,
            "7B",
            2.5,
            800,
            180,
            32,
            60_000,
            0.028,
            4_000,
            15.2,
            8192,
            replicas=(_p(a, 0, mig=0),),
        ),
        ModelSpec(
            "qwen2.5-0.5b-instruct",
            "team-search",
            EngineKind.VLLM,
            "0.5B",
            3.0,
            300,
            60,
            16,
            20_000,
            0.012,
            6_000,
            1.0,
            4096,
            replicas=(_p(a, 0, mig=2),),
        ),
        ModelSpec(
            "llama-3.2-3b-instruct",
            "team-chat",
            EngineKind.VLLM,
            "3B",
            1.5,
            500,
            150,
            32,
            40_000,
            0.018,
            6_000,
            6.4,
            8192,
            replicas=(_p(a, 1, fraction=0.5),),
        ),
        ModelSpec(
            "qwen2.5-1.5b-instruct",
            "team-search",
            EngineKind.VLLM,
            "1.5B",
            1.5,
            400,
            120,
            32,
            40_000,
            0.015,
            7_000,
            3.1,
            8192,
            replicas=(_p(a, 1, fraction=0.5),),
        ),
    )
    canary = CanarySpec(chat, 2, (_p(h, 2),))
    return FleetSpec(
        seed=seed,
        nodes=nodes,
        models=models,
        canary=canary,
        restarts=(RestartSpec("qwen2.5-0.5b-instruct", 2400.0),),
    )
