"""MIG profiles per GPU model (compute and memory slices, instances per GPU), as NVIDIA documents them.

Sources: NVIDIA MIG User Guide, "Supported MIG Profiles" (fraction of SMs and of memory per profile;
https://docs.nvidia.com/datacenter/tesla/mig-user-guide/supported-mig-profiles.html) and "Supported
GPUs" (7 instances on A100/H100/H200, 4 on A30); the per-model profile names and maximum instance
counts are the ``all-<profile>`` layouts of NVIDIA/mig-parted ``deployments/systemd/config-default.yaml``.
A profile ``<C>g.<M>gb`` takes C of the GPU's compute slices; its memory slices are in the table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class MigProfile:
    """One MIG profile on one GPU model."""

    name: str  # e.g. "1g.10gb" or "1g.10gb+me"
    compute_slices: int
    memory_slices: int
    max_instances: int


@dataclass(frozen=True, slots=True)
class MigGpu:
    """A MIG-capable GPU model: its slice counts and its profiles."""

    key: str
    compute_slices: int  # 7 on A100/H100/H200, 4 on A30
    memory_slices: int  # 8 on A100/H100/H200, 4 on A30
    profiles: Mapping[str, MigProfile]

    def profile(self, name: str) -> MigProfile | None:
        """The profile called ``name`` on this GPU, if it has one."""
        return self.profiles.get(name)

    def compute_fraction(self, name: str) -> Fraction | None:
        """The share of the GPU's compute one instance of ``name`` takes (1g.10gb on A100-80GB: 1/7)."""
        p = self.profiles.get(name)
        return None if p is None else Fraction(p.compute_slices, self.compute_slices)


_A100_80GB = (
    ("1g.10gb", 1, 1, 7),
    ("1g.10gb+me", 1, 1, 1),
    ("1g.20gb", 1, 2, 4),
    ("2g.20gb", 2, 2, 3),
    ("3g.40gb", 3, 4, 2),
    ("4g.40gb", 4, 4, 1),
    ("7g.80gb", 7, 8, 1),
)


def _gpu(key: str, compute: int, memory: int, rows: tuple[tuple[str, int, int, int], ...]) -> MigGpu:
    profiles = {name: MigProfile(name, c, m, n) for name, c, m, n in rows}
    return MigGpu(key, compute, memory, MappingProxyType(profiles))


# (profile, compute slices, memory slices, max instances per GPU)
MIG_GPUS: Mapping[str, MigGpu] = MappingProxyType(
    {
        g.key: g
        for g in (
            _gpu(
                "A100-40GB",
                7,
                8,
                (
                    ("1g.5gb", 1, 1, 7),
                    ("1g.5gb+me", 1, 1, 1),
                    ("1g.10gb", 1, 2, 4),
                    ("2g.10gb", 2, 2, 3),
                    ("3g.20gb", 3, 4, 2),
                    ("4g.20gb", 4, 4, 1),
                    ("7g.40gb", 7, 8, 1),
                ),
            ),
            _gpu("A100-80GB", 7, 8, _A100_80GB),
            # H100 80GB has the same profile table as A100 80GB.
            _gpu("H100-80GB", 7, 8, _A100_80GB),
            _gpu(
                "H100-94GB",
                7,
                8,
                (  # H100 NVL
                    ("1g.12gb", 1, 1, 7),
                    ("1g.12gb+me", 1, 1, 1),
                    ("1g.24gb", 1, 2, 4),
                    ("2g.24gb", 2, 2, 3),
                    ("3g.47gb", 3, 4, 2),
                    ("4g.47gb", 4, 4, 1),
                    ("7g.94gb", 7, 8, 1),
                ),
            ),
            _gpu(
                "H200-141GB",
                7,
                8,
                (
                    ("1g.18gb", 1, 1, 7),
                    ("1g.18gb+me", 1, 1, 1),
                    ("1g.35gb", 1, 2, 4),
                    ("2g.35gb", 2, 2, 3),
                    ("3g.71gb", 3, 4, 2),
                    ("4g.71gb", 4, 4, 1),
                    ("7g.141gb", 7, 8, 1),
                ),
            ),
            _gpu(
                "A30-24GB",
                4,
                4,
                (
                    ("1g.6gb", 1, 1, 4),
                    ("1g.6gb+me", 1, 1, 1),
                    ("2g.12gb", 2, 2, 2),
                    ("2g.12gb+me", 2, 2, 1),
                    ("4g.24gb", 4, 4, 1),
                ),
            ),
        )
    }
)

_PROFILE = re.compile(r"^(?P<c>\d+)g\.(?P<m>\d+)gb(?:\+me)?$")


def mig_gpu_for(product: str | None, memory_mib: float | None = None) -> MigGpu | None:
    """The MIG table of a GPU by its ``nvidia.com/gpu.product`` label (and memory when that is ambiguous)."""
    if not product:
        return None
    p = product.upper()
    if "A30" in p:
        return MIG_GPUS["A30-24GB"]
    if "H200" in p:
        return MIG_GPUS["H200-141GB"]
    if "H100" in p:
        big = "NVL" in p or "94GB" in p or (memory_mib is not None and memory_mib > 90_000)
        return MIG_GPUS["H100-94GB" if big else "H100-80GB"]
    if "A100" in p:
        if "80GB" in p:
            return MIG_GPUS["A100-80GB"]
        if "40GB" in p:
            return MIG_GPUS["A100-40GB"]
        if memory_mib is not None:
            return MIG_GPUS["A100-80GB" if memory_mib > 50_000 else "A100-40GB"]
    return None


def profile_compute_slices(name: str) -> int | None:
    """C of a ``<C>g.<M>gb[+me]`` profile name, or None if the name is not a MIG profile."""
    m = _PROFILE.match(name)
    return int(m["c"]) if m else None


def mig_fraction(profile: str, gpu: MigGpu | None) -> Fraction | None:
    """Compute share of one instance of ``profile``; without a known GPU, C/7 (every 7-slice part) unless
    the name exists only on the A30, whose GPUs have 4 slices."""
    if gpu is not None and profile in gpu.profiles:
        return gpu.compute_fraction(profile)
    c = profile_compute_slices(profile)
    if c is None:
        return None
    owners = [g for g in MIG_GPUS.values() if profile in g.profiles]
    slices = {g.compute_slices for g in owners}
    if len(slices) == 1:
        return Fraction(c, slices.pop())
    # Unknown to the table (a newer part): every MIG GPU but the A30 has 7 compute slices.
    return Fraction(c, 7) if c <= 7 else None
