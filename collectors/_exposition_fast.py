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


def parse_bodies(bodies: pl.Series) -> tuple[pl.DataFrame, set[int]]:
    """Parse distinct label-set bodies into (``bid``, ``pos``, ``name``, ``value``) rows.

    ``bodies`` holds distinct strings and ``bid`` indexes it. Bodies that are not plainly
    well-formed (bad syntax, a duplicate or reserved label name) come back as a set of bad ``bid``s
    with no rows: their lines go to the careful reader, which names the fault.
    """
    frame = pl.DataFrame({"body": bodies}).with_row_index("bid")
    ok = frame["body"].str.contains(BODY_RE)
    bad = set(frame.filter(~ok)["bid"].to_list())
    pairs = (
        frame.filter(ok)
        .select("bid", pl.col("body").str.extract_all(PAIR_RE).alias("p"))
        .explode("p")
        .drop_nulls("p")
        .with_columns(pl.int_range(pl.len()).over("bid").cast(pl.UInt32).alias("pos"))
        .with_columns(
            pl.col("p").str.extract(PAIR_RE, 1).alias("name"),
            pl.col("p").str.extract(PAIR_RE, 2).alias("value"),
        )
        .drop("p")
    )
    flawed = pl.struct("bid", "name").is_duplicated() | pl.col("name").is_in(list(RESERVED))
    bad_now = pairs.filter(flawed)["bid"].unique()
    if len(bad_now):
        bad.update(bad_now.to_list())
        pairs = pairs.filter(~pl.col("bid").is_in(bad_now.implode()))
    escaped = pairs["value"].str.contains("\\", literal=True)
    if escaped.any():
        # Escapes are rare; unescape those few values exactly as the careful reader does.
        values = pairs["value"].clone()
        fixed = [_unescape(v) for v in values.filter(escaped).to_list()]
        values.scatter(escaped.arg_true(), pl.Series(fixed, dtype=pl.Utf8))
        pairs = pairs.with_columns(values.alias("value"))
    return pairs, bad


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


def after_eof(cand: pl.DataFrame, eof_line: int) -> list[tuple[int, str, str]]:
    """Well-formed sample lines after ``# EOF``: dropped, since an OpenMetrics page ends there."""
    late = cand.filter(pl.col("line") > eof_line)
    return [(n, strip_eol(t), "text after '# EOF'") for n, t in zip(late["line"], late["t"], strict=True)]


@dataclass(slots=True)
class FastPart:
    """What the fast path read: one row per sample line it finished, and the lines it gave back."""

    rows: pl.DataFrame  # line, __name__, bid, __value__, ts
    pairs: pl.DataFrame  # bid, pos, name, value
    n_bodies: int
    rejected: list[tuple[int, str]]


def fast_stage(cand: pl.DataFrame, om: bool, eof_line: int | None) -> FastPart:
    """Finish the regex-matched lines: values, timestamps and interned label sets."""
    m = cand
    if eof_line is not None:
        m = m.filter(pl.col("line") < eof_line)
    ts = pl.col("ts")
    ts_ms = ((ts.cast(pl.Float64) * 1000.0).round() if om else ts.cast(pl.Int64, strict=False)).cast(
        pl.Int64, strict=False
    )
    m = m.with_columns(ts_ms.alias("ts_ms"))
    ts_bad = ts.is_not_null() & (
        pl.col("ts_ms").is_null() | (pl.col("ts_ms").abs() > MAX_TS_MS) | (pl.lit(om) | ts.str.contains(INT_RE)).not_()
    )
    bodies = m["body"].unique(maintain_order=True)
    pairs, bad = parse_bodies(bodies)
    ids = pl.DataFrame({"body": bodies}).with_row_index("bid")
    m = m.join(ids, on="body", how="left")
    reject = ts_bad | pl.col("bid").is_in(pl.Series(sorted(bad), dtype=pl.UInt32).implode())
    back = m.filter(reject)
    rows = m.filter(~reject).select(
        "line",
        pl.col("name").alias("__name__"),
        "bid",
        pl.col("val").cast(pl.Float64).alias("__value__"),
        pl.col("ts_ms").alias("ts"),
    )
    rejected = list(zip(back["line"].to_list(), [strip_eol(t) for t in back["t"].to_list()], strict=True))
    return FastPart(rows, pairs, len(bodies), rejected)


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

    @property
    def family_names(self) -> list[str]:
        """Every family that has samples."""
        return list(self.family_types)

    def text_of(self, line: int) -> str:
        """The text of a line (1-based)."""
        return strip_eol(self.texts[line - 1])


def build(
    texts: pl.Series,
    part: FastPart,
    slow: list[tuple[int, str, tuple[tuple[str, str], ...], float | None, int | None]],
    types_of: Mapping[str, str],
) -> Built:
    """Join fast and slow rows into the sample frame; resolve families; find suspect lines."""
    rows, pairs = part.rows, part.pairs
    if slow:
        base = part.n_bodies
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
        rows = pl.concat([rows, srows])
        flat = [(base + i, p, k, v) for i, s in enumerate(slow) for p, (k, v) in enumerate(s[2])]
        if flat:
            spairs = pl.DataFrame(
                {
                    "bid": [f[0] for f in flat],
                    "pos": [f[1] for f in flat],
                    "name": [f[2] for f in flat],
                    "value": [f[3] for f in flat],
                },
                schema=pairs.schema,
            )
            pairs = pl.concat([pairs, spairs])
    n_sets = part.n_bodies + len(slow)
    sentinel = rows.filter(pl.col("__value__").is_finite() & (pl.col("__value__") >= BLANK_SENTINEL))
    rows = rows.with_columns(
        pl.when(pl.col("__value__").is_finite() & (pl.col("__value__") >= BLANK_SENTINEL))
        .then(None)
        .otherwise(pl.col("__value__"))
        .alias("__value__")
    ).sort("line")
    names = rows["__name__"].unique().to_list()
    fam = {n: resolve(n, types_of) for n in names}
    rows = rows.with_columns(
        pl.col("__name__").replace_strict({n: f for n, (f, _) in fam.items()}, return_dtype=pl.Utf8).alias("__family__"),
        pl.col("__name__").replace_strict({n: t for n, (_, t) in fam.items()}, return_dtype=pl.Utf8).alias("__type__"),
        pl.col("ts").cast(pl.Datetime("ms", "UTC")).alias("__ts__"),
    )
    everything = pl.DataFrame({"bid": pl.arange(0, n_sets, dtype=pl.UInt32, eager=True)})
    ordered = pairs.sort("bid", "pos")
    lists = everything.join(
        ordered.group_by("bid", maintain_order=True).agg(pl.struct("name", "value").alias("__labels__")),
        on="bid",
        how="left",
    ).sort("bid")
    label_lists = lists["__labels__"].fill_null(pl.lit([], dtype=lists["__labels__"].dtype))
    if len(pairs):
        table = everything.join(pairs.pivot(on="name", index="bid", values="value"), on="bid", how="left")
        table = table.sort("bid").drop("bid")
    else:
        table = pl.DataFrame(height=n_sets)
    lsid = rows["bid"]
    samples = rows.select(
        pl.col("line").cast(pl.UInt32),
        "__name__",
        "__family__",
        "__type__",
        "__value__",
        "__ts__",
    ).with_columns(label_lists.gather(lsid).alias("__labels__"))
    warnings = [(n, f"value {t.split()[-1]!r} is the DCGM blank sentinel: read as missing") for n, t in zip(
        sentinel["line"], texts.gather(sentinel["line"].cast(pl.Int64) - 1).str.strip_chars_end("\r\n"), strict=True)]
    warnings += _suspects(rows, ordered, n_sets)
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


def _suspects(rows: pl.DataFrame, pairs: pl.DataFrame, n_sets: int) -> list[tuple[int, str]]:
    """Lines kept but suspect: duplicate series, ``le`` off a histogram bucket, bare histogram names."""
    out: list[tuple[int, str]] = []
    canon = (
        pairs.sort("bid", "name")
        .group_by("bid")
        .agg((pl.col("name") + "\x00" + pl.col("value")).str.join("\x01").alias("canon"))
    )
    keyed = rows.select("line", "__name__", "bid").join(canon, on="bid", how="left").with_columns(
        pl.col("canon").fill_null("")
    ).sort("line")
    dup = keyed.filter(~pl.struct("__name__", "canon").is_first_distinct())
    if len(dup):
        firsts = keyed.group_by("__name__", "canon").agg(pl.col("line").min().alias("first"))
        for line, first in dup.join(firsts, on=["__name__", "canon"]).select("line", "first").iter_rows():
            out.append((line, f"duplicate series: same name and labels as line {first}"))
    le_bids = pairs.filter(pl.col("name") == "le")["bid"].unique()
    if len(le_bids):
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
