"""The vectorised path of the exposition reader: split well-formed sample lines and label sets in polars.

Every line is matched once by one Rust regex (name, label-set body, value, timestamp). Each distinct
label-set body is then parsed once (interned), also in polars. Lines or bodies that do not fit the
strict shapes here are handed back to the careful per-line reader in ``_exposition_slow``, which
either accepts them (exemplars, odd spacing) or says precisely what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from collectors._exposition_slow import BLANK_SENTINEL, MAX_TS_MS, METRIC_NAME_RE, RESERVED, parse_label_body

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LNAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_NUM = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_VALUE = rf"[+-]?(?:{_NUM}|(?i:inf(?:inity)?|nan))"
# An unlabelled sample line, and the part of a labelled one after its last '}'.
PLAIN_RE = rf"^[ \t]*({_NAME})[ \t]+({_VALUE})(?:[ \t]+(-?{_NUM}))?[ \t]*\r?\n?$"
SUFFIX_RE = rf"^[ \t]+{_VALUE}(?:[ \t]+-?{_NUM})?[ \t]*\r?\n?$"
_PAIR = rf"{_LNAME}[ \t]*=[ \t]*{_QUOTED}"
PAIR_RE = rf"({_LNAME})[ \t]*=[ \t]*\"((?:[^\"\\]|\\.)*)\""
BODY_RE = rf"^[ \t]*(?:{_PAIR}[ \t]*,[ \t]*)*(?:{_PAIR}[ \t]*,?[ \t]*)?$"
INT_RE = r"^-?[0-9]+$"
LABEL_LIST = pl.List(pl.Struct({"name": pl.Utf8, "value": pl.Utf8}))


def split_lines(text: str) -> pl.DataFrame:
    """One row per line: ``line`` (1-based UInt32) and ``t``, the line *with* its ``\\n`` (and any ``\\r``).

    Lines are cut at newline byte offsets straight into an Arrow buffer: no Python string per line.
    Keeping the line ending costs nothing here; every reader below strips or tolerates it.
    """
    data = text.encode("utf-8", "surrogatepass")
    if not data:
        return pl.DataFrame(schema={"line": pl.UInt32, "t": pl.Utf8})
    cuts = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10) + 1
    if not len(cuts) or cuts[-1] != len(data):
        cuts = np.append(cuts, len(data))  # a last line with no newline
    offsets = np.concatenate(([0], cuts)).astype(np.int64)
    arr = pa.LargeStringArray.from_buffers(len(cuts), pa.py_buffer(offsets), pa.py_buffer(data))
    return pl.DataFrame({"t": pl.from_arrow(arr)}).with_row_index("line", offset=1)


def strip_eol(line: str) -> str:
    """A line without its ``\\n`` and ``\\r``."""
    if line.endswith("\n"):
        line = line[:-1]
    return line[:-1] if line.endswith("\r") else line


def split_and_match(text: str) -> tuple[pl.Series, pl.DataFrame, list[tuple[int, str]]]:
    """Split the page and cut well-formed sample lines into name / body / value / timestamp.

    Returns every line's text, the candidate samples (``line``, ``t``, ``name``, ``body``, ``val``, ``ts`` as text)
    and every other line (comments, blanks, anything odd), in order, for the careful reader.
    A labelled line is cut at its first ``{`` and last ``}``: the name before must be a valid
    metric name and the text after must be exactly ``value [timestamp]``, so the body between is
    the whole label set (its own syntax is checked per distinct body in ``parse_bodies``).
    """
    frame = split_lines(text)
    c = pl.col("t")
    b, e, n = pl.col("b"), pl.col("e"), pl.col("n")
    frame = frame.with_columns(
        c.str.find("{", literal=True).alias("b"),
        c.str.find(r"\}[^}]*$").alias("e"),
        c.str.len_bytes().alias("n"),
        c.str.starts_with("#").alias("com"),
    )
    labelled = ~pl.col("com") & b.is_not_null() & e.is_not_null() & (e > b)
    # b and the text after e are ASCII in any line that passes the checks, so byte offsets
    # double as character offsets there; lines where they would not are rejected by those checks.
    lab = frame.filter(labelled).select(
        "line",
        "t",
        c.str.head(b).alias("name"),
        c.str.slice(b + 1, c.str.len_chars() - b - 1 - (n - e)).alias("body"),
        c.str.tail(n - e - 1).alias("suf"),
    )
    lab = lab.filter(pl.col("suf").str.contains(SUFFIX_RE))
    sv = pl.col("suf").str.strip_chars(" \t\r\n")
    lab = lab.with_columns(sv.alias("val"), pl.lit(None, pl.Utf8).alias("ts"))
    if lab["val"].str.contains("[ \t]").any():
        has_ts = pl.col("val").str.contains("[ \t]")
        lab = lab.with_columns(
            pl.when(has_ts).then(pl.col("val").str.extract(r"^([^ \t]+)", 1)).otherwise(pl.col("val")).alias("val"),
            pl.when(has_ts).then(pl.col("val").str.extract(r"([^ \t]+)$", 1)).alias("ts"),
        )
    plain = frame.filter(~pl.col("com") & b.is_null())
    groups = pl.col("t").str.extract_groups(PLAIN_RE)
    plain = plain.select(
        "line",
        "t",
        groups.struct.field("1").alias("name"),
        pl.lit("").alias("body"),
        groups.struct.field("2").alias("val"),
        groups.struct.field("3").alias("ts"),
    ).drop_nulls("name")
    names = pl.Series(
        [x for x in lab["name"].unique().to_list() if METRIC_NAME_RE.fullmatch(x)], dtype=pl.Utf8
    )
    lab = lab.filter(pl.col("name").is_in(names.implode())).select(plain.columns)
    cand = pl.concat([lab, plain]).sort("line")
    taken = np.zeros(frame.height, dtype=bool)
    taken[cand["line"].to_numpy() - 1] = True
    rest = frame.filter(pl.Series(~taken))
    others = list(zip(rest["line"].to_list(), [strip_eol(x) for x in rest["t"].to_list()], strict=True))
    return frame["t"], cand, others


def _unescape(raw: str) -> str:
    return parse_label_body(f'x="{raw}"')[0][1]


def parse_bodies(bodies: pl.Series) -> tuple[pl.Series, pl.DataFrame, set[int]]:
    """Parse distinct label-set bodies (``bid`` = index into ``bodies``) in polars.

    Returns the labels of each body as ``List(Struct(name, value))`` in text order, the same pairs
    flat (``bid``, ``name``, ``value``, in ``bid`` order), and the ``bid``s of bodies that are not
    plainly well-formed (bad syntax, a duplicate or reserved label name): their lines go to the
    careful reader, which names the fault.
    """
    frame = pl.DataFrame({"body": bodies}).with_columns(pl.col("body").str.contains(BODY_RE).alias("ok"))
    pair = pl.element()
    eq = pair.str.find("=", literal=True)  # label names are ASCII: byte offset = character offset
    lists = frame.select(
        pl.when(pl.col("ok"))
        .then(pl.col("body"))
        .str.extract_all(PAIR_RE)
        .list.eval(
            pl.struct(
                pair.str.head(eq).str.strip_chars_end(" \t").alias("name"),
                pair.str.slice(eq + 1)
                .str.strip_chars_start(" \t")
                .str.strip_prefix('"')
                .str.strip_suffix('"')
                .alias("value"),
            )
        )
        .alias("__labels__")
    ).to_series()
    flat = pl.DataFrame({"l": lists}).with_row_index("bid").explode("l").drop_nulls("l").unnest("l")
    bad = set(frame.with_row_index("bid").filter(~pl.col("ok"))["bid"].to_list())
    flawed = pl.struct("bid", "name").is_duplicated() | pl.col("name").is_in(sorted(RESERVED))
    bad_now = flat.filter(flawed)["bid"].unique()
    if len(bad_now):
        bad.update(bad_now.to_list())
        flat = flat.filter(~pl.col("bid").is_in(bad_now.implode()))
    escaped = flat["value"].str.contains("\\", literal=True)
    if escaped.any():
        # Escapes are rare: unescape those few values exactly as the careful reader does.
        values = flat["value"].clone()
        fixed = [_unescape(v) for v in values.filter(escaped).to_list()]
        values.scatter(escaped.arg_true(), pl.Series(fixed, dtype=pl.Utf8))
        flat = flat.with_columns(values.alias("value"))
        lists = _relist(flat, len(bodies))
    return lists, flat, bad


def _relist(flat: pl.DataFrame, n: int) -> pl.Series:
    """``List(Struct(name, value))`` per ``bid`` in ``0..n`` from flat pairs (empty where none)."""
    grouped = flat.group_by("bid", maintain_order=True).agg(pl.struct("name", "value").alias("__labels__"))
    every = pl.DataFrame({"bid": pl.arange(0, n, dtype=pl.UInt32, eager=True)})
    out = every.join(grouped, on="bid", how="left", maintain_order="left")["__labels__"]
    return out.fill_null(pl.lit([], dtype=LABEL_LIST))


def after_eof(cand: pl.DataFrame, eof_line: int) -> list[tuple[int, str, str]]:
    """Well-formed sample lines after ``# EOF``: dropped, since an OpenMetrics page ends there."""
    late = cand.filter(pl.col("line") > eof_line)
    return [(n, strip_eol(t), "text after '# EOF'") for n, t in zip(late["line"], late["t"], strict=True)]


@dataclass(slots=True)
class FastPart:
    """What the fast path read: one row per sample line it finished, and the lines it gave back."""

    rows: pl.DataFrame  # line, __name__, bid, __value__, ts
    lists: pl.Series  # List(Struct(name, value)) per bid
    flat: pl.DataFrame  # bid, name, value
    rejected: list[tuple[int, str]]


def fast_stage(cand: pl.DataFrame, om: bool, eof_line: int | None) -> FastPart:
    """Finish the candidate lines: values, timestamps and interned, parsed label sets."""
    m = cand if eof_line is None else cand.filter(pl.col("line") < eof_line)
    ts = pl.col("ts")
    if om:  # OpenMetrics timestamps are seconds, possibly fractional
        ts_ms = (ts.cast(pl.Float64, strict=False) * 1000.0).round().cast(pl.Int64, strict=False)
        ts_bad = ts.is_not_null() & (ts_ms.is_null() | (ts_ms.abs() > MAX_TS_MS))
    else:  # text 0.0.4 timestamps are integer milliseconds
        ts_ms = ts.cast(pl.Int64, strict=False)
        ts_bad = ts.is_not_null() & (ts_ms.is_null() | (ts_ms.abs() > MAX_TS_MS) | ~ts.str.contains(INT_RE))
    bodies = m["body"].unique(maintain_order=True)
    lists, flat, bad = parse_bodies(bodies)
    ids = pl.DataFrame({"body": bodies}).with_row_index("bid")
    m = m.join(ids, on="body", how="left", maintain_order="left")
    reject = ts_bad
    if bad:
        reject = reject | pl.col("bid").is_in(pl.Series(sorted(bad), dtype=pl.UInt32).implode())
    m = m.with_columns(reject.alias("reject"), ts_ms.alias("ts_ms"))
    back = m.filter(pl.col("reject"))
    rows = m.filter(~pl.col("reject")).select(
        "line",
        pl.col("name").alias("__name__"),
        "bid",
        pl.col("val").cast(pl.Float64).alias("__value__"),
        pl.col("ts_ms").alias("ts"),
    )
    rejected = list(zip(back["line"].to_list(), [strip_eol(t) for t in back["t"].to_list()], strict=True))
    return FastPart(rows, lists, flat, rejected)


_HIST = ("histogram", "gaugehistogram")
# Which sample-name suffixes belong to a family of which declared type.
SUFFIXES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("_bucket", _HIST),
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
    label_table: pl.DataFrame
    family_types: dict[str, str]
    first_line: dict[str, int]
    warnings: list[tuple[int, str]]
    texts: pl.Series

    def text_of(self, line: int) -> str:
        """The text of a line (1-based), without its line ending."""
        return strip_eol(self.texts[line - 1])


SlowRow = tuple[int, str, tuple[tuple[str, str], ...], float | None, int | None]


def build(texts: pl.Series, part: FastPart, slow: list[SlowRow], types_of: Mapping[str, str]) -> Built:
    """Join fast and slow rows into the sample frame; resolve families; find suspect lines."""
    rows, lists, flat = part.rows, part.lists, part.flat
    if slow:
        rows, lists, flat = _add_slow(rows, lists, flat, slow)
    n_sets = len(lists)
    blank = pl.col("__value__").is_finite() & (pl.col("__value__") >= BLANK_SENTINEL)
    sentinel = rows.filter(blank)["line"]
    rows = rows.with_columns(pl.when(blank).then(None).otherwise(pl.col("__value__")).alias("__value__"))
    fam = {n: resolve(n, types_of) for n in rows["__name__"].unique().to_list()}
    name = pl.col("__name__")
    rows = rows.with_columns(
        name.replace_strict({n: f for n, (f, _) in fam.items()}, return_dtype=pl.Utf8).alias("__family__"),
        name.replace_strict({n: t for n, (_, t) in fam.items()}, return_dtype=pl.Utf8).alias("__type__"),
        pl.col("ts").cast(pl.Datetime("ms", "UTC")).alias("__ts__"),
    )
    every = pl.DataFrame({"bid": pl.arange(0, n_sets, dtype=pl.UInt32, eager=True)})
    if len(flat):
        wide = flat.pivot(on="name", index="bid", values="value")
        table = every.join(wide, on="bid", how="left", maintain_order="left").drop("bid")
    else:
        table = pl.DataFrame(height=n_sets)
    lsid = rows["bid"]
    samples = rows.select(
        pl.col("line").cast(pl.UInt32), "__name__", "__family__", "__type__", "__value__", "__ts__"
    ).with_columns(lists.gather(lsid).alias("__labels__"))
    warnings = [
        (n, f"value {strip_eol(texts[n - 1]).split()[-1]!r} is the DCGM blank sentinel: read as missing")
        for n in sentinel.to_list()
    ]
    warnings += _suspects(rows, table)
    first = rows.group_by("__family__").agg(pl.col("line").min())
    return Built(
        samples=samples,
        lsid=lsid,
        label_table=table,
        family_types=dict(fam.values()),
        first_line=dict(zip(first["__family__"], first["line"], strict=True)),
        warnings=warnings,
        texts=texts,
    )


def _add_slow(
    rows: pl.DataFrame, lists: pl.Series, flat: pl.DataFrame, slow: list[SlowRow]
) -> tuple[pl.DataFrame, pl.Series, pl.DataFrame]:
    """Append the careful reader's samples, each with a label set of its own."""
    base = len(lists)
    srows = pl.DataFrame(
        {
            "line": [s[0] for s in slow],
            "__name__": [s[1] for s in slow],
            "bid": list(range(base, base + len(slow))),
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
        pl.concat([lists.cast(LABEL_LIST), slists]),
        pl.concat([flat, sflat]),
    )


def _suspects(rows: pl.DataFrame, table: pl.DataFrame) -> list[tuple[int, str]]:
    """Lines kept but suspect: duplicate series, ``le`` off a histogram bucket, bare histogram names."""
    out: list[tuple[int, str]] = []
    if table.width and table.is_duplicated().any():
        # Two bodies with the same labels in another order or spacing: key on the label values.
        groups = table.with_row_index("bid").group_by(table.columns).agg(pl.col("bid"))
        canon = groups.with_row_index("gid").explode("bid").sort("bid")["gid"]
        key = canon.gather(rows["bid"])
    else:
        key = rows["bid"] if table.width else pl.Series([0] * rows.height)
    keyed = rows.select("line", "__name__").with_columns(key.alias("key"))
    dup = keyed.filter(~pl.struct("__name__", "key").is_first_distinct())
    if len(dup):
        firsts = keyed.group_by("__name__", "key").agg(pl.col("line").min().alias("first"))
        for line, first in dup.join(firsts, on=["__name__", "key"]).select("line", "first").iter_rows():
            out.append((line, f"duplicate series: same name and labels as line {first}"))
    if "le" in table.columns:
        le_bids = table.with_row_index("bid").filter(pl.col("le").is_not_null())["bid"]
        odd = rows.filter(
            pl.col("bid").is_in(le_bids.implode())
            & ~(pl.col("__type__").is_in(_HIST) & (pl.col("__name__") == pl.col("__family__") + "_bucket"))
        )
        for line, name, ftype in odd.select("line", "__name__", "__type__").iter_rows():
            out.append((line, f"'le' label on {name!r} ({ftype}), which is not a histogram _bucket sample"))
    bare = rows.filter(pl.col("__type__").is_in(_HIST) & (pl.col("__name__") == pl.col("__family__")))
    warned = {w[0] for w in out}
    for line, name in bare.select("line", "__name__").iter_rows():
        if line not in warned:
            out.append((line, f"sample {name!r} of a histogram family has no _bucket/_sum/_count suffix"))
    return out
