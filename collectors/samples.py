"""The wide sample frame: the one shape every source's samples take before normalising.

A wide frame has one row per sample and these columns:

- ``__name__`` (Utf8): the sample name as exposed (``foo_bucket``, ``vllm:prompt_tokens_total``).
- ``__family__`` (Utf8, nullable): the metric family from ``# TYPE`` (null when unknown, e.g. from
  the Prometheus API).
- ``__type__`` (Utf8, nullable): the family's type (``counter``, ``gauge``, ``histogram``, ...).
- ``__value__`` (Float64, nullable): the value; NaN and +/-Inf are kept, null means missing (the
  DCGM blank sentinel).
- ``__ts__`` (Datetime ms UTC, nullable): the sample's timestamp; null when the page gave none (the
  scraper then stamps the scrape time).
- one Utf8 column per label name seen; null where a sample lacks that label. An empty label value
  ``""`` is the same as an absent label in Prometheus: normalisers treat both as missing.

Target labels added by a scraper follow Prometheus's ``honor_labels: false`` rule: an exposed label
that collides with a target label is renamed ``exported_<name>``. So a frame scraped by fleetlens and
a frame read back from a Prometheus-API backend look the same to the normalisers.
"""

from __future__ import annotations

from enum import StrEnum

import polars as pl

NAME = "__name__"
FAMILY = "__family__"
TYPE = "__type__"
VALUE = "__value__"
TS = "__ts__"
META_COLUMNS = (NAME, FAMILY, TYPE, VALUE, TS)
META_SCHEMA = pl.Schema(
    {NAME: pl.Utf8, FAMILY: pl.Utf8, TYPE: pl.Utf8, VALUE: pl.Float64, TS: pl.Datetime("ms", "UTC")}
)


def label(frame: pl.DataFrame | pl.LazyFrame, *names: str) -> pl.Expr:
    """The first non-empty value among label columns ``names`` (absent columns count as missing)."""
    cols = frame.collect_schema().names() if isinstance(frame, pl.LazyFrame) else frame.columns
    present = [pl.col(n).replace("", None) for n in names if n in cols]
    if not present:
        return pl.lit(None, dtype=pl.Utf8)
    return pl.coalesce(present) if len(present) > 1 else present[0]


def empty_wide() -> pl.DataFrame:
    """A wide frame with no rows and no label columns."""
    return pl.DataFrame(schema=META_SCHEMA)


def label_columns(frame: pl.DataFrame) -> list[str]:
    """The label columns of a wide frame (everything but the ``__*__`` meta columns)."""
    return [c for c in frame.columns if c not in META_COLUMNS]


class SourceFormat(StrEnum):
    """The exposition format a target speaks (decides the normaliser)."""

    DCGM = "dcgm"
    VLLM = "vllm"
    TRITON = "triton"
    SGLANG = "sglang"
    TGI = "tgi"
