"""Finish the fast path's candidate rows: values, timestamps, interned names and label sets."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
import polars as pl

from collectors.exposition.labels import LABEL_LIST, LabelSets, label_sets
from collectors.exposition.lines import compact, intern_runs
from collectors.exposition.match import Matched
from collectors.exposition.slow import MAX_TS_MS

INT_RE = r"^-?[0-9]+$"


@dataclass(slots=True)
class FastPart:
    """What the fast path read: one row per sample line it finished, and the lines it gave back."""

    rows: pl.DataFrame  # line, __name__, bid, nid, __value__, ts
    lists: pl.Series  # List(Struct(name, value)) per bid
    flat: pl.DataFrame  # bid, name, value
    names: list[str]  # per nid
    rejected: list[tuple[int, str]]


def fast_stage(matched: Matched, om: bool, eof_line: int | None) -> FastPart:
    """Finish the candidate lines: values, timestamps, and interned names and label sets."""
    lines, cand, names = matched.lines, matched.cand, matched.names
    m = cand if eof_line is None else cand.filter(pl.col("line") < eof_line)
    if not m.height:
        rows = pl.DataFrame(
            schema={
                "line": pl.UInt32,
                "__name__": pl.Utf8,
                "bid": pl.UInt32,
                "nid": pl.UInt32,
                "__value__": pl.Float64,
                "ts": pl.Int64,
            }
        )
        flat = pl.DataFrame(schema={"bid": pl.UInt32, "name": pl.Utf8, "value": pl.Utf8})
        return FastPart(rows, pl.Series("__labels__", [], dtype=LABEL_LIST), flat, [], [])
    ts = pl.col("ts")
    if om:  # OpenMetrics timestamps are seconds, possibly fractional
        ts_ms = (ts.cast(pl.Float64, strict=False) * 1000.0).round().cast(pl.Int64, strict=False)
        ts_bad = ts.is_not_null() & (ts_ms.is_null() | (ts_ms.abs() > MAX_TS_MS))
    else:  # text 0.0.4 timestamps are integer milliseconds
        ts_ms = ts.cast(pl.Int64, strict=False)
        ts_bad = ts.is_not_null() & (ts_ms.is_null() | (ts_ms.abs() > MAX_TS_MS) | ~ts.str.contains(INT_RE))
    sets, bid = _bodies_of(matched, m)
    lists, flat, bad = sets.lists, sets.flat, sets.bad
    if names is None:
        names, nid = intern_runs(m["name"])
        m = m.with_columns(pl.Series("nid", nid))
    names = compact(names)
    m = m.with_columns(pl.Series("bid", bid))
    timestamps = m["ts"].null_count() < m.height
    if timestamps or bad:
        reject = ts_bad
        if bad:
            reject = reject | pl.col("bid").is_in(pl.Series(sorted(bad), dtype=pl.UInt32).implode())
        m = m.with_columns(reject.alias("reject"), ts_ms.alias("ts_ms"))
        back, m = m.filter(pl.col("reject")), m.filter(~pl.col("reject"))
    else:  # the common page: no timestamps and every label set well-formed
        back, m = m.head(0), m.with_columns(pl.lit(None, pl.Int64).alias("ts_ms"))
    rows = m.select(
        "line",
        "bid",
        "nid",
        pl.col("val").cast(pl.Float64).alias("__value__"),
        pl.col("ts_ms").alias("ts"),
    )
    # From the few distinct names, so the frame does not pin the whole page's bytes.
    rows = rows.insert_column(1, names.gather(rows["nid"]).alias("__name__"))
    rejected = [(n, lines.text(n)) for n in back["line"].to_list()]
    return FastPart(rows, lists, flat, names.to_list(), rejected)


def _bodies_of(matched: Matched, m: pl.DataFrame) -> tuple[LabelSets, np.ndarray]:
    """The parsed label sets and each candidate row's set (unlabelled rows: the empty set)."""
    sets = matched.sets.result() if isinstance(matched.sets, Future) else matched.sets
    if sets is None or not len(sets.bid):  # no labelled lines: only unlabelled ones remain
        return (found := label_sets(m["body"])), found.bid
    r = m["r"]
    if not r.null_count():
        return sets, sets.bid[r.to_numpy()]
    hits = (sets.bodies == "").arg_true()
    empty = int(hits[0]) if len(hits) else len(sets.lists)
    if not len(hits):  # no labelled line had '{}': add the empty label set
        sets.lists = pl.concat([sets.lists, pl.Series([[]], dtype=LABEL_LIST)]).rechunk()
    bid = np.where(r.is_null().to_numpy(), empty, sets.bid[r.fill_null(0).to_numpy()])
    return sets, bid.astype(np.uint32)
