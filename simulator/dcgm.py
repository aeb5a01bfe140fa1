"""dcgm-exporter's /metrics for one node, rendered like its Go template (release 4.5.3-4.8.2, ``Hostname``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from simulator.config import MIG_MEMORY_MIB
from simulator.fleet import DRIVER_VERSION, Gpu, Pod, mig_instance_id
from simulator.state import FleetState, GpuState

# Field, Prometheus type, help: etc/dcp-metrics-included.csv (HEAD d5e5f51) in file order, with the
# commented-out DCGM_FI_PROF_SM_ACTIVE line enabled as an operator would. ``int`` fields are DCGM int64
# (rendered "%d"), the others DCGM doubles (rendered "%f"), as dcgm-exporter's ToString does.
FIELDS: tuple[tuple[str, str, str, bool], ...] = (
    ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).", True),
    ("DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz).", True),
    ("DCGM_FI_DEV_MEMORY_TEMP", "gauge", "Memory temperature (in C).", True),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", True),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", False),
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter", "Total energy consumption since boot (in mJ).", True),
    ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter", "Total number of PCIe retries.", True),
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", True),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %).", True),
    ("DCGM_FI_DEV_ENC_UTIL", "gauge", "Encoder utilization (in %).", True),
    ("DCGM_FI_DEV_DEC_UTIL", "gauge", "Decoder utilization (in %).", True),
    ("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered.", True),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).", True),
    ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).", True),
    ("DCGM_FI_DEV_FB_RESERVED", "gauge", "Framebuffer memory reserved (in MiB).", True),
    (
        "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL",
        "counter",
        "Total number of NVLink bandwidth counters for all lanes.",
        True,
    ),
    ("DCGM_FI_DEV_VGPU_LICENSE_STATUS", "gauge", "vGPU License status", True),
    (
        "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
        "counter",
        "Number of remapped rows for uncorrectable errors",
        True,
    ),
    (
        "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
        "counter",
        "Number of remapped rows for correctable errors",
        True,
    ),
    ("DCGM_FI_DEV_ROW_REMAP_FAILURE", "gauge", "Whether remapping of rows has failed", True),
    ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "gauge", "Ratio of time the graphics engine is active.", False),
    ("DCGM_FI_PROF_SM_ACTIVE", "gauge", "The ratio of cycles an SM has at least 1 warp assigned.", False),
    ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "gauge", "Ratio of cycles the tensor (HMMA) pipe is active.", False),
    (
        "DCGM_FI_PROF_DRAM_ACTIVE",
        "gauge",
        "Ratio of cycles the device memory interface is active sending or receiving data.",
        False,
    ),
    (
        "DCGM_FI_PROF_PCIE_TX_BYTES",
        "gauge",
        (
            "The rate of data transmitted over the PCIe bus - including both "
            "protocol headers and data payloads - in bytes per second."
        ),
        True,
    ),
    (
        "DCGM_FI_PROF_PCIE_RX_BYTES",
        "gauge",
        (
            "The rate of data received over the PCIe bus - including both "
            "protocol headers and data payloads - in bytes per second."
        ),
        True,
    ),
)
# Fields DCGM reports per MIG GPU instance; the rest stay on the parent device. *_UTIL fields do not
# exist on MIG (NVIDIA/dcgm-exporter#216, #430): they are left out for MIG-enabled GPUs.
INSTANCE_FIELDS = frozenset(
    {
        "DCGM_FI_DEV_FB_FREE",
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_FB_RESERVED",
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
        "DCGM_FI_PROF_SM_ACTIVE",
        "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
        "DCGM_FI_PROF_DRAM_ACTIVE",
    }
)
NOT_ON_MIG = frozenset(
    {"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_MEM_COPY_UTIL", "DCGM_FI_DEV_ENC_UTIL", "DCGM_FI_DEV_DEC_UTIL"}
)
# With --kubernetes-virtual-gpus these are split per process and emitted per pod as well.
PER_POD_FIELDS = frozenset({"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED"})
_FB_RESERVED_MIB = {"NVIDIA H100 80GB HBM3": 511, "NVIDIA A100-SXM4-80GB": 449}
_CLOCKS = {"NVIDIA H100 80GB HBM3": (1980, 2619), "NVIDIA A100-SXM4-80GB": (1410, 1593)}


@dataclass(frozen=True, slots=True)
class Entity:
    """One rendered series' identity: a GPU, a MIG instance, or a pod's share of a time-sliced GPU."""

    gpu: Gpu
    mig_pos: int | None
    pod: Pod | None
    vgpu: str | None
    activity: float
    fb_used: int
    fb_total: int


def _pod_fb(pod: Pod, grant_mib: int, act: float) -> int:
    """vLLM pre-allocates gpu_memory_utilization x its share; Triton/TRT-LLM weights + 85% of the rest."""
    m = pod.model
    assert m is not None
    if pod.container == "triton":
        weights = m.weights_gib * 1024 / max(1, len(pod.grants))
        base = weights + 0.85 * max(0.0, grant_mib - weights)
    else:
        base = 0.9 * grant_mib
    return int(min(grant_mib - 64, base + 256 * act + 180))


def entities(state: FleetState, g: Gpu) -> list[Entity]:
    """The entities dcgm-exporter reports for one GPU, in its order (device, then instances or pods)."""
    s: GpuState = state.gpus[g.key]
    users = state.gpu_users(g)
    total = g.product.memory_mib
    if g.mig_profiles:
        out = [Entity(g, None, None, None, s.gr, 0, total)]
        for pos, prof in enumerate(g.mig_profiles):
            pod = next((u[0] for u in users if u[1] == pos), None)
            act = s.per_grant.get((pod.name, pos), 0.0) if pod else 0.0
            mib = MIG_MEMORY_MIB[prof]
            out.append(Entity(g, pos, pod, None, act, _pod_fb(pod, mib, act) if pod else 0, mib))
        return out
    shared = [u for u in users if u[2] is not None]
    if shared:
        per = []
        for i, (pod, _, frac) in enumerate(shared):
            act = s.per_grant.get((pod.name, None), 0.0) * (frac or 1.0)
            per.append(
                Entity(g, None, pod, str(i), act, _pod_fb(pod, int(total * (frac or 1.0)), act), total)
            )
        device = Entity(g, None, None, None, s.gr, sum(e.fb_used for e in per), total)
        return [device, *per]
    owner = users[0][0] if users else None
    fb = _pod_fb(owner, total, s.gr) if owner else 0
    return [Entity(g, None, owner, None, s.gr, fb, total)]


def _value(field: str, e: Entity, s: GpuState) -> float | int:
    g, a = e.gpu, e.activity
    sm_clock, mem_clock = _CLOCKS.get(g.product.model_name, (1410, 1593))
    reserved = 0 if e.mig_pos is not None else _FB_RESERVED_MIB.get(g.product.model_name, 400)
    values: dict[str, Callable[[], float | int]] = {
        "DCGM_FI_DEV_SM_CLOCK": lambda: sm_clock if s.gr > 0 else 345,
        "DCGM_FI_DEV_MEM_CLOCK": lambda: mem_clock,
        "DCGM_FI_DEV_MEMORY_TEMP": lambda: int(s.temp_c + 4),
        "DCGM_FI_DEV_GPU_TEMP": lambda: int(s.temp_c),
        "DCGM_FI_DEV_POWER_USAGE": lambda: round(s.power_w, 3),
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": lambda: int(s.energy_mj),
        "DCGM_FI_DEV_GPU_UTIL": lambda: round(min(100.0, a * 101)),
        "DCGM_FI_DEV_MEM_COPY_UTIL": lambda: round(a * (45 + 30 * (1 - a))),
        "DCGM_FI_DEV_FB_USED": lambda: e.fb_used,
        "DCGM_FI_DEV_FB_RESERVED": lambda: reserved,
        "DCGM_FI_DEV_FB_FREE": lambda: max(0, e.fb_total - e.fb_used - reserved),
        "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL": lambda: int(s.nvlink_total),
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE": lambda: round(a, 6),
        "DCGM_FI_PROF_SM_ACTIVE": lambda: round(a * 0.92, 6),
        "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE": lambda: round(a * (0.2 + 0.35 * a), 6),
        "DCGM_FI_PROF_DRAM_ACTIVE": lambda: round(a * (0.75 - 0.25 * a), 6),
        "DCGM_FI_PROF_PCIE_TX_BYTES": lambda: int(1_500_000 + 60_000_000 * s.gr),
        "DCGM_FI_PROF_PCIE_RX_BYTES": lambda: int(2_000_000 + 90_000_000 * s.gr),
    }
    fn = values.get(field)
    return fn() if fn else 0


def _labels(e: Entity, hostname: str) -> str:
    g = e.gpu
    out = (
        f'gpu="{g.index}",UUID="{g.uuid}",pci_bus_id="{g.pci_bus_id}",device="nvidia{g.index}",'
        f'modelName="{g.product.model_name}"'
    )
    if e.mig_pos is not None:
        out += f',GPU_I_PROFILE="{g.mig_profiles[e.mig_pos]}",GPU_I_ID="{mig_instance_id(g, e.mig_pos)}"'
    out += f',Hostname="{hostname}",DCGM_FI_DRIVER_VERSION="{DRIVER_VERSION}"'
    p = e.pod
    out += (
        f',container="{p.container}",namespace="{p.namespace}",pod="{p.name}"'
        if p
        else ',container="",namespace="",pod=""'
    )
    if e.vgpu is not None:
        out += f',vgpu="{e.vgpu}"'
    return out


def render_dcgm(state: FleetState, node: str) -> str:
    """The node's dcgm-exporter page at the state's current time."""
    gpus = [g for g in state.fleet.gpus if g.node == node]
    ents = [(e, state.gpus[g.key]) for g in gpus for e in entities(state, g)]
    parts: list[str] = []
    for field, typ, help_text, is_int in FIELDS:
        lines = []
        for e, s in ents:
            mig_gpu = bool(e.gpu.mig_profiles)
            if mig_gpu and field in NOT_ON_MIG:
                continue
            if mig_gpu and (e.mig_pos is None) == (field in INSTANCE_FIELDS):
                continue
            if e.vgpu is not None and field not in PER_POD_FIELDS:
                continue
            v = _value(field, e, s)
            text = str(int(v)) if is_int else f"{float(v):f}"
            lines.append(f"{field}{{{_labels(e, node)}}} {text}")
        if lines:
            parts.append(f"# HELP {field} {help_text}\n# TYPE {field} {typ}\n" + "\n".join(lines) + "\n")
    return "".join(parts)
