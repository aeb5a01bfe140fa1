"""Scrape targets: what to scrape, which job format it speaks, and the target labels it gets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType


class Job(StrEnum):
    """The exposition format a target speaks (decides the normaliser)."""

    DCGM = "dcgm"
    VLLM = "vllm"
    TRITON = "triton"
    SGLANG = "sglang"
    TGI = "tgi"


@dataclass(frozen=True, slots=True)
class Target:
    """One /metrics endpoint and the target labels attached to its samples (Prometheus-style).

    Known target label keys: ``cluster``, ``namespace``, ``pod``, ``container``, ``node``,
    ``instance``, ``model_version`` (the pod's rollout revision / template hash) and, for TGI which
    exposes no model, ``model_name``.
    """

    job: Job
    url: str
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "job", Job(self.job))
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))
