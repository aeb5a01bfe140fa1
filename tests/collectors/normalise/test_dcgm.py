"""Tests for collectors.normalise.dcgm: identity labels, units, MIG, workload labels, time-sliced GPUs."""

from __future__ import annotations

import polars as pl
import pytest

from analytics.schema import GPU_SAMPLES
from collectors.normalise.dcgm import parse_dcgm, parse_dcgm_counted, workload_labels
from tests.collectors.normalise.test_normalise import read_page, wide

MIB = 1024 * 1024
GOLDEN = "upstream/dcgm-exporter/golden"
GPU0 = "GPU-aaaaaaaa-0000-0000-0000-000000000000"
GPU1 = "GPU-bbbbbbbb-0000-0000-0000-000000000000"


def _as_field(frame: pl.DataFrame, field: str) -> pl.DataFrame:
    # The goldens render a placeholder TEST_METRIC; the label set is what is under test.
    return frame.with_columns(pl.lit(field).alias("__name__"))


@pytest.mark.parametrize(
    "golden",
    [
        pytest.param("server_test.expectedResponse.head-d5e5f51.txt", id="hostname spelled lowercase (HEAD)"),
        pytest.param("server_test.expectedResponse.v4.5.3-4.8.2-691c927.txt", id="Hostname capitalised (4.5.3-4.8.2)"),
    ],
)
def test_both_hostname_spellings_give_the_node(golden: str) -> None:
    frame = _as_field(read_page(f"{GOLDEN}/{golden}"), "DCGM_FI_DEV_GPU_TEMP")
    row = parse_dcgm(frame).row(0, named=True)
    assert row["node"] == "testhost"
    assert row["gpu_uuid"] == "GPU-00000000-0000-0000-0000-000000000000"
    assert row["gpu_model"] == "NVIDIA T400 4GB"
    assert row["gpu_index"] == 0
    assert row["temperature_c"] == 42.0
    assert row["tenant"] is None and row["pod_share"] is False


@pytest.mark.parametrize(
    "golden",
    [
        pytest.param("render_metrics_test.FE_LINK.head-d5e5f51.txt", id="an NVLink series (gpu_uuid, no UUID)"),
        pytest.param("render_metrics_test.FE_SWITCH.head-d5e5f51.txt", id="an NVSwitch series"),
        pytest.param("render_metrics_test.FE_CPU.head-d5e5f51.txt", id="a CPU series"),
        pytest.param("render_metrics_test.FE_CPU_CORE.head-d5e5f51.txt", id="a CPU core series"),
    ],
)
def test_entities_without_a_gpu_uuid_are_ignored(golden: str) -> None:
    frame = _as_field(read_page(f"{GOLDEN}/{golden}"), "DCGM_FI_DEV_POWER_USAGE")
    out, dropped = parse_dcgm_counted(frame)
    assert out.height == 0 and out.schema == GPU_SAMPLES.schema and dropped == {}


def test_readme_blank_sentinel_stays_null_and_empty_pod_means_no_tenant() -> None:
    frame = read_page("upstream/dcgm-exporter/README.md.k8s-curl-output.txt", labels={"node": "gpu-node-9"})
    frame = frame.with_columns(
        pl.when(pl.col("__name__") == "DCGM_FI_DEV_MEMORY_TEMP").then(pl.lit("DCGM_FI_DEV_GPU_TEMP"))
        .otherwise(pl.col("__name__")).alias("__name__")
    )
    row = parse_dcgm(frame).row(0, named=True)
    assert row["temperature_c"] is None  # the sentinel 9223372036854775794, not a temperature
    assert row["node"] == "gpu-node-9"  # no hostname label: the target's node
    assert (row["tenant"], row["pod"], row["container"]) == (None, None, None)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(9223372036854775794.0, id="int64 blank"),
        pytest.param(float(2**47), id="fp64 blank"),
        pytest.param(2147483632.0, id="int32 blank"),
    ],
)
def test_numeric_blank_sentinels_from_other_sources_become_null(value: float) -> None:
    out = parse_dcgm(wide([("DCGM_FI_DEV_POWER_USAGE", {"UUID": "GPU-1", "Hostname": "n"}, value),
                           ("DCGM_FI_DEV_GPU_TEMP", {"UUID": "GPU-1", "Hostname": "n"}, 50.0)]))
    assert out["power_w"].to_list() == [None]
    assert out["temperature_c"].to_list() == [50.0]


def test_units_are_converted() -> None:
    g = {"UUID": "GPU-1", "Hostname": "n", "gpu": "3"}
    out = parse_dcgm(wide([
        ("DCGM_FI_DEV_GPU_UTIL", g, 87.0), ("DCGM_FI_DEV_FB_USED", g, 1024.0), ("DCGM_FI_DEV_FB_FREE", g, 512.0),
        ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", g, 2500.0), ("DCGM_FI_PROF_DRAM_ACTIVE", g, 0.25),
        ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", g, 0.5), ("DCGM_FI_PROF_SM_ACTIVE", g, 0.75),
        ("DCGM_FI_DEV_XID_ERRORS", g, 79.0), ("DCGM_FI_DEV_SM_CLOCK", g, 1980.0),
    ])).row(0, named=True)
    assert out["gpu_util_ratio"] == pytest.approx(0.87)
    assert out["fb_used_bytes"] == 1024 * MIB and out["fb_free_bytes"] == 512 * MIB
    assert out["energy_j_total"] == pytest.approx(2.5)
    assert (out["dram_active_ratio"], out["tensor_active_ratio"], out["sm_active_ratio"]) == (0.25, 0.5, 0.75)
    assert out["xid_last"] == 79 and out["gpu_index"] == 3
    assert out["power_w"] is None  # not reported: null, never 0


def test_mig_slices_are_keyed_by_instance_and_have_no_gpu_util() -> None:
    frame = read_page("pages/dcgm/mig.txt")
    # Even if a source reports GPU_UTIL on a slice, it is not the slice's: it must stay null.
    extra = frame.filter(pl.col("__name__") == "DCGM_FI_DEV_FB_USED").with_columns(
        pl.lit("DCGM_FI_DEV_GPU_UTIL").alias("__name__"))
    out = parse_dcgm(pl.concat([frame, extra])).sort("mig_instance")
    assert out["mig_instance"].to_list() == [1, 2]
    assert out["mig_profile"].to_list() == ["3g.40gb", "1g.10gb"]
    assert out["gpu_uuid"].unique().to_list() == ["GPU-cccccccc-0000-0000-0000-000000000000"]
    assert out["gpu_util_ratio"].to_list() == [None, None]
    assert out["gr_engine_active_ratio"].to_list() == [0.61, 0.0]
    assert out["tenant"].to_list() == ["team-a", None]
    assert out["energy_j_total"].to_list() == [pytest.approx(123456.789), None]


def test_lowercased_labels_from_a_managed_backend_are_read() -> None:
    labels = {"uuid": "GPU-9", "hostname": "n2", "modelname": "A100", "gpu_i_profile": "2g.20gb", "gpu_i_id": "5"}
    row = parse_dcgm(wide([("DCGM_FI_PROF_GR_ENGINE_ACTIVE", labels, 0.3)])).row(0, named=True)
    assert (row["gpu_uuid"], row["node"], row["gpu_model"]) == ("GPU-9", "n2", "A100")
    assert (row["mig_profile"], row["mig_instance"]) == ("2g.20gb", 5)


def test_old_namespace_labels_are_the_workload_beside_a_target_namespace() -> None:
    labels = {"uuid": "GPU-9", "Hostname": "n", "pod_name": "p", "pod_namespace": "team-a",
              "container_name": "c", "namespace": "gpu-operator", "pod": "dcgm-exporter-x"}
    row = parse_dcgm(wide([("dcgm_gpu_utilization", labels, 40.0)])).row(0, named=True)
    assert (row["tenant"], row["pod"], row["container"]) == ("team-a", "p", "c")
    assert row["gpu_util_ratio"] == pytest.approx(0.4)


EXPORTER = {"namespace": "gpu-operator", "pod": "nvidia-dcgm-exporter-7x2kq", "container": "exporter"}


def test_exported_labels_are_the_workload_and_idle_gpus_get_no_tenant() -> None:
    frame = read_page("pages/dcgm/mig.txt", labels=EXPORTER)
    assert "exported_namespace" in frame.columns
    out = parse_dcgm(frame).sort("mig_instance")
    assert out["tenant"].to_list() == ["team-a", None]
    assert out["pod"].to_list() == ["chat-7d9f-abcde", None]
    assert out["container"].to_list() == ["server", None]


def test_an_all_idle_frame_is_not_the_exporters_when_the_caller_names_its_target_labels() -> None:
    idle = {"UUID": "GPU-1", "Hostname": "n", **EXPORTER}
    frame = wide([("DCGM_FI_DEV_GPU_UTIL", idle, 0.0)])
    out = parse_dcgm(frame, target_labels=("namespace", "pod", "container", "instance", "job"))
    assert out["tenant"].to_list() == [None] and out["pod"].to_list() == [None]
    assert workload_labels(frame, ("namespace",)) == ("exported_namespace", "exported_pod", "exported_container")


def test_plain_labels_are_the_workload_when_nothing_was_renamed() -> None:
    frame = wide([("DCGM_FI_DEV_GPU_UTIL", {"UUID": "GPU-1", "Hostname": "n", "namespace": "team-z",
                                            "pod": "p", "container": "c"}, 10.0)])
    assert parse_dcgm(frame)["tenant"].to_list() == ["team-z"]


def test_time_sliced_gpu_splits_into_a_device_row_and_pod_share_rows() -> None:
    out = parse_dcgm(read_page("pages/dcgm/virtual-gpus.txt"))
    device = out.filter(~pl.col("pod_share"))
    shares = out.filter(pl.col("pod_share"))
    assert device.height == 2 and shares.height == 2
    assert sorted(device["gpu_uuid"].to_list()) == [GPU0, GPU1]
    assert device["tenant"].to_list() == [None, None]
    # Device totals sum over device rows only, and equal what the device series say.
    assert device["fb_used_bytes"].sum() == 30000 * MIB
    assert device["power_w"].sum() == pytest.approx(412.5 + 71.25)  # not 2 x 412.5: pod copies
    assert device.filter(pl.col("gpu_uuid") == GPU0)["gpu_util_ratio"].item() == pytest.approx(0.8)
    assert device.filter(pl.col("gpu_uuid") == GPU0)["sm_active_ratio"].item() == pytest.approx(0.72)
    # Shares carry each pod's split fields and nothing that would double count.
    by_tenant = {r["tenant"]: r for r in shares.iter_rows(named=True)}
    assert by_tenant["team-a"]["fb_used_bytes"] == 20000 * MIB
    assert by_tenant["team-b"]["gpu_util_ratio"] == pytest.approx(0.3)
    assert shares["fb_used_bytes"].sum() == device.filter(pl.col("gpu_uuid") == GPU0)["fb_used_bytes"].item()
    assert shares["power_w"].to_list() == [None, None]
    assert shares["sm_active_ratio"].to_list() == [None, None]


def test_a_pod_per_whole_gpu_is_one_row_not_a_share() -> None:
    g = {"UUID": "GPU-1", "Hostname": "n", "namespace": "team-a", "pod": "p", "container": "c"}
    out = parse_dcgm(wide([("DCGM_FI_DEV_GPU_UTIL", g, 50.0), ("DCGM_FI_DEV_POWER_USAGE", g, 300.0)]))
    assert out.height == 1
    assert out.row(0, named=True)["pod_share"] is False and out["tenant"].to_list() == ["team-a"]


def test_rows_without_any_host_are_dropped_and_counted() -> None:
    out, dropped = parse_dcgm_counted(wide([("DCGM_FI_DEV_GPU_UTIL", {"UUID": "GPU-1"}, 5.0),
                                            ("DCGM_FI_DEV_GPU_UTIL", {"UUID": "GPU-2", "instance": "10.0.0.1:9400"}, 7.0)]))
    assert out["node"].to_list() == ["10.0.0.1:9400"]
    assert dropped == {"missing_node": 1}


def test_a_thousand_gpu_page_normalises_to_one_row_per_gpu() -> None:
    fields = ["DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_POWER_USAGE",
              "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_PROF_SM_ACTIVE"]
    samples = [(f, {"UUID": f"GPU-{i}", "gpu": str(i % 8), "Hostname": f"node-{i // 8}", "modelName": "H100",
                    "namespace": f"team-{i % 7}", "pod": f"pod-{i}", "container": "c"}, float(i))
               for i in range(1000) for f in fields]
    out = parse_dcgm(wide(samples))
    assert out.height == 1000
    assert out["power_w"].sum() == sum(range(1000))


def test_one_pod_with_a_device_and_a_per_process_series_is_split() -> None:
    # cgroup-direct mode upstream: no vgpu label, but FB_USED comes as device and per-pod series.
    g = {"UUID": "GPU-1", "Hostname": "n"}
    pod = {**g, "namespace": "team-a", "pod": "p", "container": "c"}
    out = parse_dcgm(wide([("DCGM_FI_DEV_FB_USED", g, 1000.0), ("DCGM_FI_DEV_FB_USED", pod, 600.0),
                           ("DCGM_FI_DEV_POWER_USAGE", pod, 250.0)]))
    device = out.filter(~pl.col("pod_share")).row(0, named=True)
    share = out.filter(pl.col("pod_share")).row(0, named=True)
    assert (device["fb_used_bytes"], device["power_w"], device["tenant"]) == (1000 * MIB, 250.0, None)
    assert (share["fb_used_bytes"], share["power_w"], share["tenant"]) == (600 * MIB, None, "team-a")


def test_older_exporters_copying_every_field_per_pod_never_double_count() -> None:
    # Before the per-process split, every series of a shared GPU was copied once per holding pod.
    g = {"UUID": "GPU-1", "Hostname": "n"}
    samples = [(f, {**g, "namespace": ns, "pod": p, "vgpu": v}, val)
               for ns, p, v in (("team-a", "pa", "0"), ("team-b", "pb", "1"))
               for f, val in (("DCGM_FI_DEV_GPU_UTIL", 70.0), ("DCGM_FI_DEV_POWER_USAGE", 300.0))]
    out = parse_dcgm(wide(samples))
    device = out.filter(~pl.col("pod_share"))
    assert device.height == 1
    assert (device["gpu_util_ratio"].item(), device["power_w"].item()) == (pytest.approx(0.7), 300.0)
    shares = out.filter(pl.col("pod_share")).sort("tenant")
    assert shares["tenant"].to_list() == ["team-a", "team-b"]
    assert shares["gpu_util_ratio"].to_list() == [None, None]  # copies are not shares
