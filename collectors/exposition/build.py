"""Assemble the sample frame from fast and slow rows, resolve families, collect per-family facts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

from collectors.exposition.fast import FastPart
from collectors.exposition.labels import LABEL_LIST
from collectors.exposition.lines import Lines, pool
from collectors.exposition.slow import BLANK_SENTINEL
from collectors.exposition.suspects import HIST, find_suspects

# Which sample-name suffixes belong to a family of which declared type.
SUFFIXES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("_bucket", HIST),
    ("_count", ("histogram", "summary")),
    ("_sum", ("histogram", "summary")),
    ("_gcount", ("gaugehistogram",)),
    ("_gsum", ("gaugehistogram",)),
    ("_created", ("counter", "histogram", "summary")),
    ("_total", ("counter",)),
    ("_info", ("info",)),
)


def resolve(name: str, types_of: Mapping[str, str]) -> tuple[str, str]:
    """The family and type of a sample name: an exact TYPE first, else a suffix its type allows."""
    t = types_of.get(name)
    if t is not None:
        return name, t
    for suffix, allowed in SUFFIXES:
        if name.endswith(suffix):
            base = name[: -len(suffix)]
            bt = types_of.get(base)
            if bt in allowed:
                return base, bt
    return name, "untyped"


@dataclass(slots=True)
class Built:
    """The assembled page: sample frame, label table and per-family facts the caller reports on."""

    samples: pl.DataFrame
    lsid: pl.Series
    flat: pl.DataFrame
    family_types: dict[str, str]
    first_line: dict[str, int]
    warnings: list[tuple[int, str]]
    lines: Lines

    def text_of(self, line: int) -> str:
        """The text of a line (1-based), without its line ending."""
        return self.lines.text(line)


SlowRow = tuple[int, str, tuple[tuple[str, str], ...], float | None, int | None]


def build(lines: Lines, part: FastPart, slow: list[SlowRow], types_of: Mapping[str, str]) -> Built:
    """Join fast and slow rows into the sample frame; resolve families; find suspect lines."""
    rows, lists, flat, names = part.rows, part.lists, part.flat, list(part.names)
    if slow:
        rows, lists, flat = _add_slow(rows, lists, flat, names, slow)
    n_sets = len(lists)
    fam = [resolve(n, types_of) for n in names]
    line, nid_np, bid_np = (rows[c].to_numpy() for c in ("line", "nid", "bid"))
    # The suspect checks need only the keys: run them on another core while this one builds.
    big = len(line) > 1 << 12
    args = (line, nid_np, bid_np, flat, n_sets, names, fam)
    suspects = pool().submit(find_suspects, *args) if big else None
    blank = pl.col("__value__").is_finite() & (pl.col("__value__") >= BLANK_SENTINEL)
    sentinel = rows.filter(blank)["line"]
    nid = rows["nid"]
    rows = rows.with_columns(
        pl.when(blank).then(None).otherwise(pl.col("__value__")).alias("__value__"),
        pl.Series([f for f, _ in fam], dtype=pl.Utf8).gather(nid).alias("__family__"),
        pl.Series([t for _, t in fam], dtype=pl.Utf8).gather(nid).alias("__type__"),
        pl.col("ts").cast(pl.Datetime("ms", "UTC")).alias("__ts__"),
    )
    lsid = rows["bid"]
    samples = rows.select(
        pl.col("line").cast(pl.UInt32), "__name__", "__family__", "__type__", "__value__", "__ts__"
    ).with_columns(lists.gather(lsid).alias("__labels__"))
    warnings = [
        (n, f"value {lines.text(n).split()[-1]!r} is the DCGM blank sentinel: read as missing")
        for n in sentinel.to_list()
    ]
    first_line: dict[str, int] = {}
    firsts = np.full(len(names), np.iinfo(np.int64).max, dtype=np.int64)
    seen = rows.select(pl.col("nid").is_first_distinct()).to_series().to_numpy()
    firsts[nid_np[seen]] = line[seen]
    for (family, _), first in zip(fam, firsts.tolist(), strict=True):
        if first != np.iinfo(np.int64).max:
            first_line[family] = min(first_line.get(family, first), first)
    warnings += suspects.result() if suspects is not None else find_suspects(*args)
    return Built(
        samples=samples,
        lsid=lsid,
        flat=flat,
        family_types=dict(fam),
        first_line=first_line,
        warnings=warnings,
        lines=lines,
    )


def _add_slow(
    rows: pl.DataFrame, lists: pl.Series, flat: pl.DataFrame, names: list[str], slow: list[SlowRow]
) -> tuple[pl.DataFrame, pl.Series, pl.DataFrame]:
    """Append the careful reader's samples, each with a label set of its own (``names`` grows)."""
    base = len(lists)
    ids = {n: i for i, n in enumerate(names)}
    for s in slow:
        if s[1] not in ids:
            ids[s[1]] = len(names)
            names.append(s[1])
    srows = pl.DataFrame(
        {
            "line": [s[0] for s in slow],
            "__name__": [s[1] for s in slow],
            "bid": list(range(base, base + len(slow))),
            "nid": [ids[s[1]] for s in slow],
            "__value__": [s[3] for s in slow],
            "ts": [s[4] for s in slow],
        },
        schema=rows.schema,
    )
    slists = pl.Series(
        "__labels__", [[{"name": k, "value": v} for k, v in s[2]] for s in slow], dtype=LABEL_LIST
    )
    sflat = pl.DataFrame(
        [(base + i, k, v) for i, s in enumerate(slow) for k, v in s[2]],
        schema=flat.schema,
        orient="row",
    )
    return (
        pl.concat([rows, srows]).sort("line"),
        pl.concat([lists.cast(LABEL_LIST), slists]).rechunk(),
        pl.concat([flat, sflat]),
    )
