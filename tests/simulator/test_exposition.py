"""Every served page parses with prometheus_client's parser and follows its exporter's format."""

from __future__ import annotations

import csv
import re

from prometheus_client.parser import text_string_to_metric_families

from simulator import Simulation
from simulator.config import EngineKind
from simulator.stats import ITL_BUCKETS, REQUEST_LATENCY_BUCKETS, TTFT_BUCKETS
from tests.simulator.conftest import UPSTREAM

DCGM_LABEL_ORDER = [
    "gpu",
    "UUID",
    "pci_bus_id",
    "device",
    "modelName",
    "Hostname",
    "DCGM_FI_DRIVER_VERSION",
    "container",
    "namespace",
    "pod",
]
LINE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)\{(.*)\} (\S+)$")


def _labels(body: str) -> list[tuple[str, str]]:
    return re.findall(r'([A-Za-z_][A-Za-z0-9_]*)="([^"]*)"', body)


def _engine_targets(sim: Simulation, kind: EngineKind) -> list[str]:
    return [tid for tid in sim.target_ids() if sim.pods[tid].engine is kind]


def test_every_page_parses_with_the_upstream_parser(sim_40min: Simulation) -> None:
    for tid in sim_40min.target_ids():
        fams = list(text_string_to_metric_families(sim_40min.render(tid)))
        assert fams, tid
        assert all(f.samples for f in fams), tid


def test_dcgm_help_and_type_come_from_the_upstream_csv(sim_40min: Simulation) -> None:
    rows = {}
    with (UPSTREAM / "dcgm-exporter" / "dcp-metrics-included.csv").open() as f:
        for row in csv.reader(f):
            if row and not row[0].lstrip().startswith("#") and len(row) >= 3:
                rows[row[0].strip()] = (row[1].strip(), ",".join(row[2:]).strip())
    text = sim_40min.render("dcgm/gpu-h100-0")
    helps = dict(re.findall(r"^# HELP (\S+) (.*)$", text, re.MULTILINE))
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))
    for field, help_text in helps.items():
        if field == "DCGM_FI_PROF_SM_ACTIVE":  # commented out upstream; enabled here as an operator would
            continue
        assert types[field] == rows[field][0], field
        assert help_text == rows[field][1], field


def test_dcgm_label_order_is_the_go_templates(sim_40min: Simulation) -> None:
    golden = UPSTREAM / "dcgm-exporter" / "golden" / "server_test.expectedResponse.v4.5.3-4.8.2-691c927.txt"
    golden_keys = [k for k, _ in _labels(golden.read_text().splitlines()[-1])]
    for node in ("gpu-h100-0", "gpu-a100-0"):
        for line in sim_40min.render(f"dcgm/{node}").splitlines():
            if line.startswith("#"):
                continue
            m = LINE.match(line)
            assert m, line
            keys = [k for k, _ in _labels(m.group(2))]
            assert keys[:5] == golden_keys[:5]
            base = [k for k in keys if k not in ("GPU_I_PROFILE", "GPU_I_ID", "vgpu")]
            assert base == DCGM_LABEL_ORDER, line
            if "GPU_I_PROFILE" in keys:
                assert keys[5:7] == ["GPU_I_PROFILE", "GPU_I_ID"]


def test_mig_slices_have_no_gpu_util_but_have_engine_activity(sim_40min: Simulation) -> None:
    text = sim_40min.render("dcgm/gpu-a100-0")
    mig_lines = [line for line in text.splitlines() if "GPU_I_PROFILE=" in line]
    assert {m for m in re.findall(r'GPU_I_PROFILE="([^"]+)"', text)} == {"3g.40gb", "2g.20gb", "1g.10gb"}
    assert not any(line.startswith("DCGM_FI_DEV_GPU_UTIL") for line in mig_lines)
    assert any(line.startswith("DCGM_FI_PROF_GR_ENGINE_ACTIVE") for line in mig_lines)
    mig_uuid = re.search(r'UUID="([^"]+)"', mig_lines[0]).group(1)
    assert not any(line.startswith("DCGM_FI_DEV_GPU_UTIL") and mig_uuid in line for line in text.splitlines())


def test_time_sliced_gpu_has_device_and_per_pod_series(sim_40min: Simulation) -> None:
    text = sim_40min.render("dcgm/gpu-a100-0")
    util = [
        line for line in text.splitlines() if line.startswith("DCGM_FI_DEV_GPU_UTIL{") and 'gpu="1"' in line
    ]
    per_pod = [line for line in util if "vgpu=" in line]
    device = [line for line in util if "vgpu=" not in line]
    assert len(per_pod) == 2 and len(device) == 1
    assert 'pod=""' in device[0]
    assert len({re.search(r'pod="([^"]+)"', line).group(1) for line in per_pod}) == 2
    fb = [line for line in text.splitlines() if line.startswith("DCGM_FI_DEV_FB_USED{") and 'gpu="1"' in line]
    dev_fb = int(next(line for line in fb if "vgpu=" not in line).rsplit(" ", 1)[1])
    pod_fb = sum(int(line.rsplit(" ", 1)[1]) for line in fb if "vgpu=" in line)
    assert dev_fb == pod_fb, "the device series is the sum of the per-pod ones: never add both"


def test_dcgm_value_formats_follow_the_field_types(sim_40min: Simulation) -> None:
    text = sim_40min.render("dcgm/gpu-h100-0")
    for line in text.splitlines():
        if line.startswith(("DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_PROF_GR_ENGINE_ACTIVE")):
            assert re.search(r" \d+\.\d{6}$", line), line  # DCGM doubles: Go "%f"
        if line.startswith(("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "DCGM_FI_DEV_FB_USED")):
            assert re.search(r" \d+$", line), line  # DCGM int64: Go "%d"


def test_vllm_page_has_counters_with_total_and_created_and_default_buckets(sim_40min: Simulation) -> None:
    tid = _engine_targets(sim_40min, EngineKind.VLLM)[0]
    text = sim_40min.render(tid)
    assert re.search(r'^vllm:prompt_tokens_total\{engine="0",model_name="[^"]+"\} ', text, re.MULTILINE)
    assert re.search(r"^vllm:prompt_tokens_created\{", text, re.MULTILINE)
    assert "vllm:kv_cache_usage_perc{" in text and "vllm:gpu_cache_usage_perc" not in text
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    for name, buckets in (
        ("vllm:time_to_first_token_seconds", TTFT_BUCKETS),
        ("vllm:inter_token_latency_seconds", ITL_BUCKETS),
        ("vllm:e2e_request_latency_seconds", REQUEST_LATENCY_BUCKETS),
    ):
        les = [float(s.labels["le"]) for s in fams[name].samples if s.name.endswith("_bucket")]
        assert les == [*buckets, float("inf")], name
    reasons = {
        s.labels["finished_reason"] for s in fams["vllm:request_success"].samples if s.name.endswith("_total")
    }
    assert reasons == {"stop", "length", "abort", "error", "repetition"}


def test_old_vllm_deployment_uses_the_pre_rename_names(sim_40min: Simulation) -> None:
    tid = _engine_targets(sim_40min, EngineKind.VLLM_OLD)[0]
    text = sim_40min.render(tid)
    assert "vllm:gpu_cache_usage_perc{" in text and "vllm:time_per_output_token_seconds_bucket{" in text
    assert "vllm:kv_cache_usage_perc" not in text and "vllm:inter_token_latency_seconds" not in text


def test_triton_page_has_per_model_counters_pending_count_and_first_response_histogram(
    sim_40min: Simulation,
) -> None:
    tid = _engine_targets(sim_40min, EngineKind.TRITON)[0]
    text = sim_40min.render(tid)
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    ok = next(s for s in fams["nv_inference_request_success"].samples)
    assert set(ok.labels) == {"model", "version", "gpu_uuid"} and ok.labels["gpu_uuid"].startswith("GPU-")
    assert ok.value > 0
    assert fams["nv_inference_request_duration_us"].samples[0].value > ok.value * 1000, "microseconds"
    assert "nv_inference_pending_request_count" in fams
    hist = fams["nv_inference_first_response_histogram_ms"]
    les = [s.labels["le"] for s in hist.samples if s.name.endswith("_bucket")]
    assert les == ["100", "500", "2000", "5000", "+Inf"]
    assert {s.labels["reason"] for s in fams["nv_inference_request_failure"].samples} == {
        "REJECTED",
        "CANCELED",
        "BACKEND",
        "OTHER",
    }
    # The Triton GPU UUID is the one dcgm-exporter reports for the same pod.
    pod = sim_40min.pods[tid]
    dcgm = sim_40min.render(f"dcgm/{pod.node}")
    assert re.search(rf'UUID="{ok.labels["gpu_uuid"]}".*pod="{pod.name}"', dcgm)
