"""The MIG profile table: consistent with itself, with profile names, and with NVIDIA's product labels."""

from __future__ import annotations

from fractions import Fraction

import pytest

from collectors.kube.mig_profiles import MIG_GPUS, mig_fraction, mig_gpu_for, profile_compute_slices


@pytest.mark.parametrize("key", sorted(MIG_GPUS))
def test_every_profile_fits_its_gpu_and_its_name_states_its_compute_slices(key: str) -> None:
    gpu = MIG_GPUS[key]
    full = [p for p in gpu.profiles.values() if p.compute_slices == gpu.compute_slices]
    assert len(full) == 1 and full[0].memory_slices == gpu.memory_slices and full[0].max_instances == 1
    for p in gpu.profiles.values():
        assert profile_compute_slices(p.name) == p.compute_slices
        # max instances of a profile never need more slices than the GPU has
        assert p.max_instances * p.compute_slices <= gpu.compute_slices
        assert p.max_instances * p.memory_slices <= gpu.memory_slices
        if p.name.endswith("+me"):
            assert p.max_instances == 1  # a single instance may carry the media extensions


@pytest.mark.parametrize(
    ("product", "memory", "key"),
    [
        pytest.param("NVIDIA-A100-SXM4-80GB", None, "A100-80GB", id="A100 SXM4 80GB"),
        pytest.param("NVIDIA-A100-SXM4-40GB", None, "A100-40GB", id="A100 SXM4 40GB"),
        pytest.param("NVIDIA-A100-PCIE", 40960, "A100-40GB", id="A100 PCIe told apart by memory"),
        pytest.param("NVIDIA-H100-80GB-HBM3", None, "H100-80GB", id="H100 80GB"),
        pytest.param("NVIDIA-H100-NVL", None, "H100-94GB", id="H100 NVL"),
        pytest.param("NVIDIA-H200", None, "H200-141GB", id="H200"),
        pytest.param("NVIDIA-A30", None, "A30-24GB", id="A30"),
        pytest.param("NVIDIA-H100-80GB-HBM3-SHARED", None, "H100-80GB", id="a shared product label"),
    ],
)
def test_product_labels_select_their_mig_table(product: str, memory: int | None, key: str) -> None:
    gpu = mig_gpu_for(product, memory)
    assert gpu is not None and gpu.key == key


@pytest.mark.parametrize("product", ["Tesla-T4", "NVIDIA-L40S", "", None])
def test_gpus_without_mig_have_no_table(product: str | None) -> None:
    assert mig_gpu_for(product) is None


@pytest.mark.parametrize(
    ("profile", "product", "share"),
    [
        pytest.param("1g.10gb", "NVIDIA-A100-SXM4-80GB", Fraction(1, 7), id="1g.10gb on A100 80GB is 1/7"),
        pytest.param(
            "1g.10gb", "NVIDIA-A100-SXM4-40GB", Fraction(1, 7), id="1g.10gb on A100 40GB is also 1/7"
        ),
        pytest.param("3g.71gb", "NVIDIA-H200", Fraction(3, 7), id="3g.71gb on H200 is 3/7"),
        pytest.param("2g.12gb", "NVIDIA-A30", Fraction(1, 2), id="2g.12gb on A30 is 2 of 4 slices"),
        pytest.param("2g.12gb", None, Fraction(1, 2), id="an A30-only name without a known GPU"),
        pytest.param("4g.40gb", None, Fraction(4, 7), id="a 7-slice name without a known GPU"),
        pytest.param("3g.90gb", None, Fraction(3, 7), id="a newer part's name not in the table"),
    ],
)
def test_mig_fraction_is_compute_slices_over_the_gpus_slices(
    profile: str, product: str | None, share: Fraction
) -> None:
    assert mig_fraction(profile, mig_gpu_for(product)) == share


def test_a_name_that_is_not_a_profile_has_no_fraction() -> None:
    assert mig_fraction("gpu", None) is None
