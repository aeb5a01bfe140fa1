"""The dispatcher: one wide frame from a target, normalised by the module of its source format."""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from analytics.schema import ENGINE_HIST, ENGINE_SAMPLES, empty
from collectors.normalise import dcgm, sglang, tgi, triton, vllm
from collectors.normalise.frames import Normalised, concat
from collectors.samples import SourceFormat


def normalise(
    wide: pl.DataFrame, source_format: SourceFormat, *, triton_gpu: bool = False, target_labels: Iterable[str] = ()
) -> Normalised:
    """Normalise one wide frame from a target speaking ``source_format``.

    ``target_labels`` names the labels the scraper attached (honor_labels false): for dcgm it tells
    whether ``namespace``/``pod`` are the exporter's own (see ``collectors.normalise.dcgm``). ``triton_gpu``
    keeps Triton's nv_gpu_* series as gpu_samples (off: dcgm is the GPU source of record).
    """
    fmt = SourceFormat(source_format)
    if fmt is SourceFormat.DCGM:
        gpu, dropped = dcgm.parse_dcgm_counted(wide, target_labels=target_labels)
        return Normalised(gpu, empty(ENGINE_SAMPLES), empty(ENGINE_HIST), dropped)
    if fmt is SourceFormat.VLLM:
        return vllm.parse_vllm(wide)
    if fmt is SourceFormat.TRITON:
        # Triton's vLLM backend exposes vllm:* series on Triton's own /metrics page.
        return concat([triton.parse_triton(wide, include_gpu=triton_gpu), vllm.parse_vllm(wide)])
    if fmt is SourceFormat.SGLANG:
        return sglang.parse_sglang(wide)
    return tgi.parse_tgi(wide)

