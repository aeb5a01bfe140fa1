"""Split the page into lines and cut well-formed sample lines into name, label-set body, value, timestamp.

Every line is cut at byte offsets found by one compiled pass (no regex over the whole page). Each
distinct label-set body is then parsed once (``_exposition_labels``). Lines or bodies that do not
fit the strict shapes here are handed back to the careful per-line reader in ``_exposition_slow``,
which either accepts them (exemplars, odd spacing) or says precisely what is wrong.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
import polars as pl

from collectors.exposition.labels import LabelSets, label_sets
from collectors.exposition.lines import Lines, intern_runs, pool
from collectors.exposition.slow import METRIC_NAME_RE

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_NUM = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_VALUE = rf"[+-]?(?:{_NUM}|(?i:inf(?:inity)?|nan))"
# An unlabelled sample line, and the part of a labelled one after its last '}'.
PLAIN_RE = rf"^[ \t]*({_NAME})[ \t]+({_VALUE})(?:[ \t]+(-?{_NUM}))?[ \t]*\r?\n?$"
SUFFIX_RE = rf"^[ \t]+{_VALUE}(?:[ \t]+-?{_NUM})?[ \t]*$"
VALUE_ONLY_RE = rf"^{_VALUE}$"


EMPTY_CAND = pl.DataFrame(
    schema={
        "line": pl.UInt32,
        "name": pl.Utf8,
        "body": pl.Utf8,
        "val": pl.Utf8,
        "ts": pl.Utf8,
        "r": pl.UInt32,
    }
)


@dataclass(slots=True)
class Matched:
    """What splitting found: candidate sample rows, the other lines, and work still running.

    ``cand`` has ``line``, ``name``, ``body``, ``val``, ``ts`` (text), ``r`` (the row among the
    labelled lines, null for unlabelled ones) and ``nid`` when ``names`` is given. ``sets`` parses
    the labelled lines' bodies in a worker thread while the caller reads the comments.
    """

    lines: Lines
    cand: pl.DataFrame
    others: list[tuple[int, str]]
    names: pl.Series | None = None
    sets: Future[LabelSets] | LabelSets | None = None


def split_only(data: bytes) -> Matched:
    """Split the page but match nothing: every line goes to the careful reader (small pages)."""
    lines = Lines(data)
    return Matched(lines, EMPTY_CAND, [(k, lines.text(k)) for k in range(1, len(lines) + 1)])


def split_and_match(data: bytes) -> Matched:
    """Split the page and cut well-formed sample lines into name / body / value / timestamp.

    Every line that is not a candidate (comments, blanks, anything odd) goes, in order, to the
    careful reader.
    A labelled line is cut at its first ``{`` and last ``}`` (``_exposition_kernel`` finds them):
    the name before must be a valid metric name and the text after exactly ``value [timestamp]``,
    so the body between is the whole label set (its syntax is checked per distinct body later).
    """
    lines = Lines(data)
    arr, starts, ends = lines.arr, lines.starts, lines.ends
    n = len(lines)
    if not n:
        return Matched(lines, EMPTY_CAND, [])
    b, e = lines.lb, lines.rb  # per line: its first '{' and the last '}' after it, -1 for none
    first = np.where(ends > starts, arr[np.minimum(starts, len(arr) - 1)], 0)
    comment = first == 35  # '#'
    labelled = (e >= 0) & ~comment
    number = np.arange(1, n + 1, dtype=np.uint32)
    idx = np.flatnonzero(labelled)
    body = lines.views(b[idx] + 1, e[idx] - b[idx] - 1)
    # Label sets are the costliest part: parse them on another core while this one goes on.
    sets = pool().submit(label_sets, body) if len(idx) > 1 << 12 else label_sets(body)
    # The common suffix is one space and the value: read those bytes as the value directly.
    one = arr[np.minimum(e[idx] + 1, len(arr) - 1)] == 32
    lab = pl.DataFrame(
        {
            "line": number[idx],
            "name": lines.views(starts[idx], b[idx] - starts[idx]),
            "body": body,
            "val": lines.views(e[idx] + 1 + one, ends[idx] - e[idx] - 1 - one),
        }
    ).with_row_index("r")
    simple = pl.Series(one) & lab["val"].str.contains(VALUE_ONLY_RE)
    if simple.all():
        lab = lab.with_columns(pl.lit(None, pl.Utf8).alias("ts"))
    else:  # timestamps, tabs or odd spacing: take the whole suffix apart with the full pattern
        # ``simple`` rides along as a column: the filter drops rows, so the Series would no
        # longer line up with the frame (found by the Hypothesis test on '{}\n{}').
        lab = lab.with_columns(
            pl.when(simple)
            .then(pl.col("val"))
            .otherwise(lines.views(e[idx] + 1, ends[idx] - e[idx] - 1))
            .alias("val"),
            simple.alias("simple"),
        ).filter(pl.col("simple") | pl.col("val").str.contains(SUFFIX_RE))
        v = pl.col("val").str.strip_chars(" \t")
        kept = pl.col("simple")
        lab = lab.with_columns(
            pl.when(kept).then(pl.col("val")).otherwise(v.str.extract(r"^([^ \t]+)", 1)).alias("val"),
            pl.when(kept).then(None).otherwise(v.str.extract(r"[ \t]([^ \t]+)$", 1)).alias("ts"),
        ).drop("simple")
    names, nid = intern_runs(lab["name"])
    valid = np.array([METRIC_NAME_RE.fullmatch(x) is not None for x in names.to_list()], dtype=bool)
    lab = lab.with_columns(pl.Series("nid", nid))
    if not valid.all():
        lab = lab.filter(pl.Series(valid[nid]))
    pidx = np.flatnonzero(~labelled & ~comment & (ends > starts))
    groups = pl.col("t").str.extract_groups(PLAIN_RE)
    plain = (
        pl.DataFrame({"line": number[pidx], "t": lines.views(starts[pidx], ends[pidx] - starts[pidx])})
        .select(
            "line",
            groups.struct.field("1").alias("name"),
            pl.lit("").alias("body"),
            groups.struct.field("2").alias("val"),
            groups.struct.field("3").alias("ts"),
            pl.lit(None, pl.UInt32).alias("r"),
        )
        .drop_nulls("name")
    )
    cand = lab.select("line", "name", "body", "val", "ts", "r")
    interned: pl.Series | None = None
    if plain.height:
        cand = pl.concat([cand, plain])
        if lab.height:
            cand = cand.sort("line")
    elif valid.all():  # the name interning still lines up with the rows: keep it for later
        cand, interned = cand.with_columns(pl.Series("nid", nid)), names
    taken = np.zeros(n, dtype=bool)
    taken[cand["line"].to_numpy().astype(np.int64) - 1] = True
    others = [(int(k) + 1, lines.text(int(k) + 1)) for k in np.flatnonzero(~taken)]
    return Matched(lines, cand, others, interned, sets)


def after_eof(lines: Lines, cand: pl.DataFrame, eof_line: int) -> list[tuple[int, str, str]]:
    """Well-formed sample lines after ``# EOF``: dropped, since an OpenMetrics page ends there."""
    late = cand.filter(pl.col("line") > eof_line)["line"].to_list()
    return [(n, lines.text(n), "text after '# EOF'") for n in late]
