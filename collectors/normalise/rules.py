"""The inference servers' shared normalising pipeline, driven by a table of rules per source.

Every source normaliser reads a wide sample frame (``collectors/samples.py``). The inference servers
share one pipeline, driven by a table of :class:`Rule` rows per source: a sample is matched by its
name (``:`` rewritten to ``_``, so ``vllm:x`` and ``vllm_x`` are one name), scaled to the data set's
unit and either pivoted into an engine_samples column or turned into engine_hist rows. Rows that
cannot be attributed are dropped and counted (``collectors.normalise.frames``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import polars as pl

from analytics.schema import (
    ENGINE_HIST,
    ENGINE_SAMPLES,
    GPU_SAMPLES,
    Engine,
    HistMetric,
    conform,
    empty,
)
from collectors.normalise.frames import Normalised, drop_unattributed, empty_normalised
from collectors.normalise.revision import REVISION_LABELS, model_version, own_label
from collectors.samples import NAME, TS, VALUE, label, label_columns

INF = float("inf")
# engine_samples / engine_hist identity columns, in the order the pipeline builds them.
IDENT = ("ts", "cluster", "tenant", "pod", "instance", "engine", "model", "model_version", "replica")


class RuleKind(StrEnum):
    """What a matched sample becomes."""

    SUM = "sum"  # engine_samples column; several series (reasons, streaming flags) add up
    MAX = "max"  # engine_samples column; a ratio, several series never add up
    BUCKET = "bucket"  # engine_hist row (cumulative count at ``le``)
    HSUM = "hsum"  # the _sum of a histogram or summary
    HCOUNT = "hcount"  # the _count of a histogram or summary
    QUANTILE = "quantile"  # engine_hist summary row (value at ``quantile``)


@dataclass(frozen=True, slots=True)
class Rule:
    """Sample ``name`` (``:`` as ``_``) becomes ``target`` (a column or HistMetric), times ``scale``.

    ``le_scale`` converts a bucket bound to the metric's unit; ``priority`` 0 beats 1 when a server
    exposes an old and a new name for the same thing (vLLM 0.9-0.11 expose both during deprecation).
    """

    name: str
    kind: RuleKind
    target: str
    scale: float = 1.0
    le_scale: float = 1.0
    priority: int = 0


def scalar(names: str | Sequence[str], target: str, *, kind: RuleKind = RuleKind.SUM, scale: float = 1.0) -> list[Rule]:
    """Rules for a gauge or counter, under each name with and without ``_total`` (first name wins)."""
    out: list[Rule] = []
    for prio, name in enumerate([names] if isinstance(names, str) else names):
        base = name.removesuffix("_total")
        out += [Rule(base, kind, target, scale, priority=prio), Rule(f"{base}_total", kind, target, scale, priority=prio)]
    return out


def histogram(families: str | Sequence[str], metric: HistMetric, *, scale: float = 1.0) -> list[Rule]:
    """Rules for a histogram's _bucket/_sum/_count (``scale`` converts ``le`` and ``_sum``; first name wins)."""
    out: list[Rule] = []
    for prio, fam in enumerate([families] if isinstance(families, str) else families):
        out += [
            Rule(f"{fam}_bucket", RuleKind.BUCKET, metric, 1.0, scale, prio),
            Rule(f"{fam}_sum", RuleKind.HSUM, metric, scale, priority=prio),
            Rule(f"{fam}_count", RuleKind.HCOUNT, metric, priority=prio),
        ]
    return out


def summary(family: str, metric: HistMetric, *, scale: float = 1.0) -> list[Rule]:
    """Rules for a summary's quantile samples and its _sum/_count (``scale`` converts values and _sum)."""
    return [
        Rule(family, RuleKind.QUANTILE, metric, scale),
        Rule(f"{family}_sum", RuleKind.HSUM, metric, scale),
        Rule(f"{family}_count", RuleKind.HCOUNT, metric),
    ]


def _replica(df: pl.DataFrame, names: tuple[str, ...]) -> pl.Expr:
    """The replica key: the present labels of ``names`` joined with "/" (null when none is present).

    These are the page's own labels: where a target label took a name, its ``exported_`` copy is read.
    """
    parts = [own_label(df, n) for n in names]
    if not parts:
        return pl.lit(None, dtype=pl.Utf8)
    return pl.concat_str(parts, separator="/", ignore_nulls=True).replace("", None)


@dataclass(frozen=True, slots=True)
class EngineSpec:
    """How one inference server's samples map: rules and which labels give model, version, replica.

    ``version`` names the target labels that carry the serving pod's revision, first wins, with the
    hash in the pod's name after them (``collectors.normalise.revision``): never an engine's own label.
    """

    engine: Engine
    rules: tuple[Rule, ...]
    model: tuple[str, ...]
    version: tuple[str, ...] = REVISION_LABELS
    replica: tuple[str, ...] = ()  # the present ones joined with "/": they together tell copies apart
    # Labels whose every value is a copy of the same state (SGLang TP/PP/EP ranks): take rank 0.
    ranks: tuple[str, ...] = ()

    def table(self) -> pl.DataFrame:
        """The rules as a frame to join samples against."""
        return pl.DataFrame(
            {
                "__key__": [r.name for r in self.rules],
                "__kind__": [str(r.kind) for r in self.rules],
                "__target__": [str(r.target) for r in self.rules],
                "__scale__": [r.scale for r in self.rules],
                "__le_scale__": [r.le_scale for r in self.rules],
                "__prio__": [r.priority for r in self.rules],
            },
            schema={"__key__": pl.Utf8, "__kind__": pl.Utf8, "__target__": pl.Utf8, "__scale__": pl.Float64,
                    "__le_scale__": pl.Float64, "__prio__": pl.Int32},
        )


def sample_key() -> pl.Expr:
    """The sample name with ``:`` rewritten to ``_`` (some pipelines rewrite it; match both)."""
    return pl.col(NAME).str.replace_all(":", "_", literal=True)


def parse_le(frame: pl.DataFrame, col: str) -> pl.Expr:
    """A bucket bound or quantile label as a float (``+Inf`` -> inf; absent or garbage -> null)."""
    raw = label(frame, col).str.strip_chars()
    return (
        pl.when(raw.str.to_lowercase().is_in(["+inf", "inf"]))
        .then(pl.lit(INF))
        .otherwise(raw.cast(pl.Float64, strict=False))
    )


def parse_engine(wide: pl.DataFrame, spec: EngineSpec, *, tenant: pl.Expr | None = None) -> Normalised:
    """Normalise one inference server's samples per ``spec`` into engine_samples and engine_hist."""
    if wide.height == 0 or NAME not in wide.columns:
        return empty_normalised()
    df = wide.with_columns(sample_key().alias("__key__")).join(spec.table(), on="__key__", how="inner")
    if df.height == 0:
        return empty_normalised()
    ranks = [label(df, r) for r in spec.ranks]
    series_labels = [c for c in label_columns(df) if c not in ("le", "quantile")]
    df = df.select(
        pl.col(TS).alias("ts"),
        label(df, "cluster").alias("cluster"),
        (tenant if tenant is not None else label(df, "namespace")).alias("tenant"),
        label(df, "pod").alias("pod"),
        label(df, "instance").alias("instance"),
        pl.lit(str(spec.engine)).alias("engine"),
        label(df, *spec.model).alias("model"),
        model_version(df, spec.version).alias("model_version"),
        _replica(df, spec.replica).alias("replica"),
        pl.col("__kind__"), pl.col("__target__"), pl.col("__prio__"),
        (pl.col(VALUE) * pl.col("__scale__")).alias("value"),
        (parse_le(df, "le") * pl.col("__le_scale__")).alias("le"),
        parse_le(df, "quantile").alias("quantile"),
        # Rank 0 of every rank label (or no rank label at all) is the copy to keep.
        pl.all_horizontal([r.is_null() | (r == "0") for r in ranks] or [pl.lit(True)]).alias("__rank0__"),
        pl.concat_str([r.fill_null("") for r in ranks] or [pl.lit("")], separator="|").alias("__rank__"),
        pl.concat_str([pl.col(c).fill_null("\x00") for c in series_labels] or [pl.lit("")], separator="\x1f")
        .alias("__series__"),
    )
    df, dropped = drop_unattributed(df, required=("model",))
    # An old and a new name for the same target: keep the new one only (never add them up).
    df = df.filter(pl.col("__prio__") == pl.col("__prio__").min().over([*IDENT, "__target__", "__kind__"]))
    engine_rows = _scalars(df.filter(pl.col("__kind__").is_in([RuleKind.SUM.value, RuleKind.MAX.value])))
    hist_rows, conflicts = _histograms(df)
    if conflicts:
        dropped["hist_le_conflict"] += conflicts
    return Normalised(
        empty(GPU_SAMPLES),
        conform(engine_rows, ENGINE_SAMPLES, fill_missing=True).sort(IDENT, nulls_last=False),
        conform(hist_rows, ENGINE_HIST, fill_missing=True).sort([*IDENT, "metric", "quantile", "le"], nulls_last=False),
        dict(dropped),
    )


def _nullsafe_sum(col: str) -> pl.Expr:
    """Sum that stays null when every input is null (polars' sum would give 0: missing is not 0)."""
    return pl.when(pl.col(col).is_not_null().any()).then(pl.col(col).sum()).otherwise(None)


def _pick_rank(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Keep the rows of one rank per ``keys``: rank 0 if reported, else the lowest rank reported."""
    pref = pl.when(pl.col("__rank0__")).then(pl.lit("")).otherwise(pl.col("__rank__"))
    return frame.filter(pref == pref.min().over(keys))


def _scalars(df: pl.DataFrame) -> pl.DataFrame:
    """Gauge and counter samples pivoted to one engine_samples row per identity."""
    if df.height == 0:
        return empty(ENGINE_SAMPLES)
    keys = [*IDENT, "__target__", "__kind__"]
    per_rank = df.group_by([*keys, "__rank__", "__rank0__"]).agg(
        pl.when(pl.col("__kind__").first() == RuleKind.MAX.value).then(pl.col("value").max())
        .otherwise(_nullsafe_sum("value")).alias("value")
    )
    # Ranks are copies of one scheduler's state: rank 0, or the max when rank 0 is absent; never a sum.
    per_target = per_rank.group_by(keys).agg(
        pl.coalesce(pl.col("value").filter(pl.col("__rank0__")).first(), pl.col("value").max()).alias("value")
    )
    return per_target.pivot(on="__target__", index=list(IDENT), values="value")


def _histograms(df: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Bucket and quantile samples as engine_hist rows, with each series' sum and count attached."""
    keys = [*IDENT, "__target__"]
    hist = _pick_rank(df.filter(pl.col("__kind__").is_in([k.value for k in (RuleKind.BUCKET, RuleKind.HSUM, RuleKind.HCOUNT, RuleKind.QUANTILE)])), keys)
    buckets = hist.filter((pl.col("__kind__") == RuleKind.BUCKET.value) & pl.col("le").is_not_null())
    # Series with the same identity (is_streaming, reason ...) add up only if their bounds agree.
    sigs = buckets.group_by([*keys, "__series__"]).agg(
        pl.col("le").sort().cast(pl.Utf8).str.join(",").alias("__sig__")
    ).group_by(keys).agg(pl.col("__sig__").n_unique().alias("__nsig__"))
    buckets = buckets.join(sigs, on=keys, how="left", nulls_equal=True)
    conflicts = buckets.filter(pl.col("__nsig__") > 1).height
    buckets = buckets.filter(pl.col("__nsig__") == 1).group_by([*keys, "le"]).agg(_nullsafe_sum("value").alias("value"))
    quant = hist.filter((pl.col("__kind__") == RuleKind.QUANTILE.value) & pl.col("quantile").is_not_null())
    # Quantiles of different series never combine: a key reported twice is a conflict, dropped.
    quant = quant.with_columns(pl.len().over([*keys, "quantile"]).alias("__n__"))
    conflicts += quant.filter(pl.col("__n__") > 1).height
    quant = quant.filter(pl.col("__n__") == 1).select([*keys, "quantile", "value"])
    totals = hist.filter(pl.col("__kind__").is_in([RuleKind.HSUM.value, RuleKind.HCOUNT.value])).group_by(keys).agg(
        _nullsafe_sum_where("value", RuleKind.HSUM).alias("sum"),
        _nullsafe_sum_where("value", RuleKind.HCOUNT).alias("count"),
    )
    rows = pl.concat([buckets.with_columns(pl.lit(None, pl.Float64).alias("quantile")),
                      quant.with_columns(pl.lit(None, pl.Float64).alias("le"))], how="diagonal_relaxed")
    rows = rows.join(totals, on=keys, how="left", nulls_equal=True).rename({"__target__": "metric"})
    return rows, conflicts


def _nullsafe_sum_where(col: str, kind: RuleKind) -> pl.Expr:
    """Null-safe sum of ``col`` over the rows of one ``kind``."""
    v = pl.col(col).filter(pl.col("__kind__") == kind.value)
    return pl.when(v.is_not_null().any()).then(v.sum()).otherwise(None)


