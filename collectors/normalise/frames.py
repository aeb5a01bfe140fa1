"""A normalised batch (gpu_samples, engine_samples, engine_hist frames and drop counts) and its helpers.

Rows that cannot be attributed (no tenant, a tenant that is not an RFC 1123 label, no model) are
dropped and counted in :attr:`Normalised.dropped`, never raised on: one bad target must not lose the batch.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import polars as pl

from analytics.errors import NameValidationError
from analytics.names import validate_tenant
from analytics.schema import ENGINE_HIST, ENGINE_SAMPLES, GPU_SAMPLES, Dataset, empty

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Normalised:
    """One batch normalised: each frame conformed to its data set, and what was dropped.

    ``dropped`` counts input samples by reason (``missing_tenant``, ``invalid_tenant``,
    ``missing_model``, ``missing_node``, ``hist_le_conflict``) for the caller to report.
    """

    gpu: pl.DataFrame
    engine: pl.DataFrame
    hist: pl.DataFrame
    dropped: Mapping[str, int] = field(default_factory=dict)


def drop_unattributed(
    frame: pl.DataFrame, *, tenant: str = "tenant", required: Sequence[str] = (), tenant_required: bool = True
) -> tuple[pl.DataFrame, Counter[str]]:
    """Drop rows with a tenant that is not an RFC 1123 label, no tenant, or a null ``required`` column.

    ``tenant_required=False`` keeps rows without a tenant (an idle GPU belongs to nobody).
    Validation runs once per distinct tenant, not per row. Returns the kept rows and the counts.
    """
    dropped: Counter[str] = Counter()
    if frame.height == 0:
        return frame, dropped
    bad = []
    for name in frame.get_column(tenant).drop_nulls().unique().to_list():
        try:
            validate_tenant(name)
        except NameValidationError:
            bad.append(name)
    reason = (
        pl.when(pl.col(tenant).is_null() & pl.lit(tenant_required)).then(pl.lit("missing_tenant"))
        .when(pl.col(tenant).is_in(pl.Series(bad, dtype=pl.Utf8).implode())).then(pl.lit("invalid_tenant"))
    )
    for col in required:
        reason = reason.when(pl.col(col).is_null()).then(pl.lit(f"missing_{col}"))
    frame = frame.with_columns(reason.otherwise(None).alias("__drop__"))
    for why, n in frame.get_column("__drop__").drop_nulls().value_counts().iter_rows():
        dropped[why] += n
    if bad:
        log.warning("dropped rows of tenants that are not RFC 1123 labels: %s", sorted(bad)[:10])
    return frame.filter(pl.col("__drop__").is_null()).drop("__drop__"), dropped


def empty_normalised() -> Normalised:
    """A Normalised with no rows."""
    return Normalised(empty(GPU_SAMPLES), empty(ENGINE_SAMPLES), empty(ENGINE_HIST))


def concat(parts: Iterable[Normalised]) -> Normalised:
    """Stack several Normalised batches (frames vertically, dropped counts added)."""
    parts = list(parts)
    dropped: Counter[str] = Counter()
    for p in parts:
        dropped.update(p.dropped)

    def stack(frames: list[pl.DataFrame], ds: Dataset) -> pl.DataFrame:
        frames = [f for f in frames if f.height]
        return pl.concat(frames, how="vertical") if frames else empty(ds)

    return Normalised(
        stack([p.gpu for p in parts], GPU_SAMPLES),
        stack([p.engine for p in parts], ENGINE_SAMPLES),
        stack([p.hist for p in parts], ENGINE_HIST),
        dict(dropped),
    )

