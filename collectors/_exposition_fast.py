"""The vectorised path of the exposition reader: split well-formed sample lines and label sets in polars.

Every line is matched once by one Rust regex (name, label-set body, value, timestamp). Each distinct
label-set body is then parsed once (interned), also in polars. Lines or bodies that do not fit the
strict shapes here are handed back to the careful per-line reader in ``_exposition_slow``, which
either accepts them (exemplars, odd spacing) or says precisely what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from collectors._exposition_slow import BLANK_SENTINEL, MAX_TS_MS, METRIC_NAME_RE, parse_label_body

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LNAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_NUM = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_VALUE = rf"[+-]?(?:{_NUM}|(?i:inf(?:inity)?|nan))"
# An unlabelled sample line, and the part of a labelled one after its last '}'.
PLAIN_RE = rf"^[ \t]*({_NAME})[ \t]+({_VALUE})(?:[ \t]+(-?{_NUM}))?[ \t]*\r?\n?$"
SUFFIX_RE = rf"^[ \t]+{_VALUE}(?:[ \t]+-?{_NUM})?[ \t]*$"
VALUE_ONLY_RE = rf"^{_VALUE}$"
_PAIR = rf"{_LNAME}[ \t]*=[ \t]*{_QUOTED}"
PAIR_RE = rf"({_LNAME})[ \t]*=[ \t]*\"((?:[^\"\\]|\\.)*)\""
BODY_RE = rf"^[ \t]*(?:{_PAIR}[ \t]*,[ \t]*)*(?:{_PAIR}[ \t]*,?[ \t]*)?$"
INT_RE = r"^-?[0-9]+$"
LABEL_LIST = pl.List(pl.Struct({"name": pl.Utf8, "value": pl.Utf8}))


_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL  # one small pool for the life of the process, made on first use
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=3, thread_name_prefix="exposition")
    return _POOL


class Lines:
    """The page as UTF-8 bytes with each line's start and end offsets (end excludes ``\\r\\n``)."""

    def __init__(self, data: bytes, *, braces: bool = False) -> None:
        self.data = data
        self.arr = np.frombuffer(self.data, dtype=np.uint8)
        if not braces:
            nl = self._where(10)
            self.lb = self.rb = nl[:0]
        elif len(self.arr) > 1 << 20:
            # Three scans of a big page at once (numpy releases the GIL).
            nl, self.lb, self.rb = _pool().map(self._where, (10, 123, 125))
        else:
            nl, self.lb, self.rb = (self._where(c) for c in (10, 123, 125))
        starts = np.concatenate(([0], nl + 1))
        ends = np.concatenate((nl, [len(self.data)]))
        if len(starts) and starts[-1] == len(self.data):  # the last newline opens no new line
            starts, ends = starts[:-1], ends[:-1]
        # Drop a '\r' before the '\n' (CRLF pages).
        cr = (ends > starts) & (self.arr[np.maximum(ends - 1, 0)] == 13)
        self.starts, self.ends = starts, ends - cr

    def _where(self, byte: int) -> np.ndarray:
        """Offsets of every occurrence of ``byte``."""
        return np.flatnonzero(self.arr == byte)

    def __len__(self) -> int:
        return len(self.starts)

    def text(self, line: int) -> str:
        """The text of a line (1-based), without its line ending."""
        return self.data[self.starts[line - 1] : self.ends[line - 1]].decode("utf-8")

    def _gather12(self, off: np.ndarray) -> np.ndarray:
        """The 12 bytes at each offset as an (n, 12) array (zeros past the end of the page).

        The page is read as overlapping 12-byte items (stride 1), so each gather is one copy of
        one item per offset, with no copy of the page itself.
        """
        n_arr = len(self.data)
        limit = n_arr - 12
        raw = np.empty(len(off), dtype="V12")
        near = off > limit
        if limit >= 0:
            items = np.ndarray(buffer=self.data, dtype="V12", shape=(limit + 1,), strides=(1,))
            if near.any():
                raw[~near] = items[off[~near]]
            else:
                raw = items[off]
        if near.any():
            base = max(limit, 0)
            tail = bytes(self.data[base:]) + bytes(24)
            items = np.ndarray(buffer=tail, dtype="V12", shape=(13,), strides=(1,))
            raw[near] = items[off[near] - base]
        return raw.view(np.uint8).reshape(len(off), 12)

    def views(self, off: np.ndarray, length: np.ndarray) -> pl.Series:
        """A polars string column of byte ranges of the page, built as Arrow string views (no copy).

        A view is 16 bytes: length, then either the string itself (up to 12 bytes) or its first 4
        bytes, a buffer index and an offset. The ranges here are cut at ASCII bytes, so each one is
        valid UTF-8 whenever the page is.
        """
        n = len(off)
        if not n:
            return pl.Series(dtype=pl.Utf8)
        view = np.empty((n, 4), dtype=np.uint32)
        view[:, 0] = length
        long = length > 12
        if long.all():  # a long string: its 4-byte prefix, buffer 0, its offset
            view[:, 1] = np.ascontiguousarray(self._gather12(off)[:, :4]).view(np.uint32).ravel()
            view[:, 2] = 0
            view[:, 3] = off
        else:  # a short string lives in the view itself, zero-padded
            raw = self._gather12(off)
            raw *= (np.arange(12, dtype=np.uint32)[None, :] < length[:, None]) | long[:, None]
            view.view(np.uint8).reshape(n, 16)[:, 4:16] = raw
            if long.any():
                view[:, 2] = np.where(long, 0, view[:, 2])
                view[:, 3] = np.where(long, off, view[:, 3])
        arr = pa.Array.from_buffers(pa.string_view(), n, [None, pa.py_buffer(view), pa.py_buffer(self.data)])
        return pl.from_arrow(arr)  # type: ignore[return-value]


def compact(values: pl.Series) -> pl.Series:
    """The same strings copied into one dense buffer: views scattered over a 10 MB page are slow
    to scan, and would keep the whole page alive."""
    return pl.from_arrow(values.to_arrow().cast(pa.large_string())).alias(values.name)  # type: ignore[union-attr]


def intern(values: pl.Series) -> tuple[pl.Series, np.ndarray]:
    """The distinct values (in order of first appearance) and, per row, the index of its value."""
    groups = values.to_frame("v").with_row_index("r").group_by("v", maintain_order=True).agg("r")
    ids = np.empty(len(values), dtype=np.uint32)
    ids[groups["r"].explode().to_numpy()] = np.repeat(
        np.arange(groups.height, dtype=np.uint32), groups["r"].list.len().to_numpy()
    )
    return groups["v"], ids


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
class LabelSets:
    """Interned, parsed label-set bodies: ``bid`` gives each input row's body."""

    bodies: pl.Series
    bid: np.ndarray
    lists: pl.Series  # List(Struct(name, value)) per body
    flat: pl.DataFrame  # bid, name, value
    bad: set[int]


def label_sets(body: pl.Series) -> LabelSets:
    """Intern the bodies (one hashing pass) and parse each distinct one once."""
    bodies, bid = intern(body)
    lists, flat, bad = parse_bodies(compact(bodies))
    return LabelSets(bodies, bid, lists, flat, bad)


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
    A labelled line is cut at its first ``{`` and last ``}``, found with numpy on the page's bytes:
    the name before must be a valid metric name and the text after exactly ``value [timestamp]``,
    so the body between is the whole label set (its syntax is checked per distinct body later).
    """
    lines = Lines(data, braces=True)
    arr, starts, ends = lines.arr, lines.starts, lines.ends
    n = len(lines)
    if not n:
        return Matched(lines, EMPTY_CAND, [])
    lb, rb = lines.lb, lines.rb  # every '{' and '}'
    i = np.searchsorted(lb, starts)
    b = lb[np.minimum(i, max(len(lb) - 1, 0))] if len(lb) else np.zeros(n, dtype=np.int64)
    j = np.searchsorted(rb, ends) - 1
    e = rb[np.maximum(j, 0)] if len(rb) else np.zeros(n, dtype=np.int64)
    first = np.where(ends > starts, arr[np.minimum(starts, len(arr) - 1)], 0)
    comment = first == 35  # '#'
    labelled = (i < len(lb)) & (b < ends) & (j >= 0) & (e >= starts) & (e > b) & ~comment
    number = np.arange(1, n + 1, dtype=np.uint32)
    idx = np.flatnonzero(labelled)
    body = lines.views(b[idx] + 1, e[idx] - b[idx] - 1)
    # Label sets are the costliest part: parse them on another core while this one goes on.
    sets = _pool().submit(label_sets, body) if len(idx) > 1 << 12 else label_sets(body)
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
        lab = lab.with_columns(
            pl.when(simple)
            .then(pl.col("val"))
            .otherwise(lines.views(e[idx] + 1, ends[idx] - e[idx] - 1))
            .alias("val")
        ).filter(simple | pl.col("val").str.contains(SUFFIX_RE))
        v = pl.col("val").str.strip_chars(" \t")
        lab = lab.with_columns(
            pl.when(simple).then(pl.col("val")).otherwise(v.str.extract(r"^([^ \t]+)", 1)).alias("val"),
            pl.when(simple).then(None).otherwise(v.str.extract(r"[ \t]([^ \t]+)$", 1)).alias("ts"),
        )
    names, nid = intern(lab["name"])
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


def _unescape(raw: str) -> str:
    return parse_label_body(f'x="{raw}"')[0][1]


def parse_bodies(bodies: pl.Series) -> tuple[pl.Series, pl.DataFrame, set[int]]:
    """Parse distinct label-set bodies (``bid`` = index into ``bodies``) in polars.

    Returns the labels of each body as ``List(Struct(name, value))`` in text order, the same pairs
    flat (``bid``, ``name``, ``value``, in ``bid`` order), and the ``bid``s of bodies that are not
    plainly well-formed (bad syntax, a duplicate or reserved label name): their lines go to the
    careful reader, which names the fault.
    """
    frame = pl.DataFrame({"body": bodies}).with_row_index("bid")
    ok = frame["body"].str.contains(BODY_RE)
    escapes = frame["body"].str.contains("\\", literal=True)
    flat = _split_pairs(frame.filter(ok & ~escapes))
    if (ok & escapes).any():
        flat = pl.concat([flat, _extract_pairs(frame.filter(ok & escapes))]).sort("bid", maintain_order=True)
    bad = set(frame.filter(~ok)["bid"].to_list())
    # A repeated label name, or one that may be reserved: the careful reader decides. Hashes may
    # collide, but that only sends a good body the slow way.
    flawed = pl.struct("bid", "name").hash().is_duplicated() | pl.col("name").str.starts_with("__")
    bad_now = flat.filter(flawed)["bid"].unique()
    if len(bad_now):
        bad.update(bad_now.to_list())
        flat = flat.filter(~pl.col("bid").is_in(bad_now.implode()))
    escaped = flat["value"].str.contains("\\", literal=True) if (ok & escapes).any() else None
    if escaped is not None and escaped.any():
        # Escapes are rare: unescape those few values exactly as the careful reader does.
        values = flat["value"].clone()
        fixed = [_unescape(v) for v in values.filter(escaped).to_list()]
        values.scatter(escaped.arg_true(), pl.Series(fixed, dtype=pl.Utf8))
        flat = flat.with_columns(values.alias("value"))
    return _relist(flat, len(bodies)), flat, bad


def _split_pairs(frame: pl.DataFrame) -> pl.DataFrame:
    """Pairs of well-formed bodies without a backslash: every '"' then delimits a value, so
    splitting on '"' gives name parts (even places) and values (odd places)."""
    parts = frame.select("bid", pl.col("body").str.split('"').alias("s")).with_columns(
        pl.int_ranges(0, pl.col("s").list.len()).alias("k"), pl.col("s").list.len().alias("n")
    )
    parts = parts.explode("s", "k")
    odd = (pl.col("k") % 2) == 1
    names = parts.filter(~odd & (pl.col("k") < pl.col("n") - 1)).select(
        pl.col("s").str.strip_chars(" \t,=").alias("name")
    )
    values = parts.filter(odd).select("bid", pl.col("s").alias("value"))
    return pl.concat([values.select("bid"), names, values.select("value")], how="horizontal")


def _extract_pairs(frame: pl.DataFrame) -> pl.DataFrame:
    """Pairs of well-formed bodies that have escapes: match each ``name="value"`` with a regex."""
    p, eq = pl.col("p"), pl.col("eq")
    return (
        frame.select("bid", pl.col("body").str.extract_all(PAIR_RE).alias("p"))
        .explode("p")
        .drop_nulls("p")
        .with_columns(p.str.find("=", literal=True).alias("eq"))
        .select(
            "bid",
            # Label names are ASCII, so the byte offset of '=' is also its character offset.
            p.str.head(eq).str.strip_chars_end(" \t").alias("name"),
            p.str.slice(eq + 1)
            .str.strip_chars_start(" \t")
            .str.strip_prefix('"')
            .str.strip_suffix('"')
            .alias("value"),
        )
    )


def _relist(flat: pl.DataFrame, n: int) -> pl.Series:
    """``List(Struct(name, value))`` per ``bid`` in ``0..n`` from flat pairs (empty where none)."""
    grouped = flat.group_by("bid", maintain_order=True).agg(pl.struct("name", "value").alias("__labels__"))
    every = pl.DataFrame({"bid": pl.arange(0, n, dtype=pl.UInt32, eager=True)})
    out = every.join(grouped, on="bid", how="left", maintain_order="left")["__labels__"]
    return out.fill_null(pl.lit([], dtype=LABEL_LIST)).rechunk()  # gather on one chunk is ~20x faster


def after_eof(lines: Lines, cand: pl.DataFrame, eof_line: int) -> list[tuple[int, str, str]]:
    """Well-formed sample lines after ``# EOF``: dropped, since an OpenMetrics page ends there."""
    late = cand.filter(pl.col("line") > eof_line)["line"].to_list()
    return [(n, lines.text(n), "text after '# EOF'") for n in late]


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
        names, nid = intern(m["name"])
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
    suspects = _pool().submit(_suspects, *args) if big else None
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
    warnings += suspects.result() if suspects is not None else _suspects(*args)
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


def _suspects(
    line: np.ndarray,
    nid: np.ndarray,
    bid: np.ndarray,
    flat: pl.DataFrame,
    n_sets: int,
    names: list[str],
    fam: list[tuple[str, str]],
) -> list[tuple[int, str]]:
    """Lines kept but suspect: duplicate series, ``le`` off a histogram bucket, bare histogram names."""
    out: list[tuple[int, str]] = []
    if not len(line):
        return out
    key = nid.astype(np.int64) * n_sets + _canonical_ids(flat, n_sets)[bid].astype(np.int64)
    space = (int(nid.max()) + 1) * n_sets
    # Duplicates are rare: a counting pass over a small key space says whether to look closer.
    maybe = bool((np.bincount(key, minlength=0) > 1).any()) if space < 1 << 26 else True
    dup = np.flatnonzero(~pl.Series(key).is_first_distinct().to_numpy()) if maybe else key[:0]
    if len(dup):
        first_of: dict[int, int] = {}
        for k, ln in zip(key.tolist(), line.tolist(), strict=True):
            first_of.setdefault(k, ln)
        out += [
            (int(line[i]), f"duplicate series: same name and labels as line {first_of[int(key[i])]}")
            for i in dup
        ]
    has_le = np.zeros(n_sets, dtype=bool)
    has_le[flat.filter(pl.col("name") == "le")["bid"].to_numpy()] = True
    bucket = np.array([t in _HIST and n == f + "_bucket" for n, (f, t) in zip(names, fam, strict=True)])
    bare = np.array([t in _HIST and n == f for n, (f, t) in zip(names, fam, strict=True)])
    odd = has_le[bid] & ~bucket[nid]
    for i in np.flatnonzero(odd):
        out.append(
            (
                int(line[i]),
                f"'le' label on {names[nid[i]]!r} ({fam[nid[i]][1]}), which is not a histogram _bucket sample",
            )
        )
    for i in np.flatnonzero(bare[nid] & ~odd):
        out.append(
            (
                int(line[i]),
                f"sample {names[nid[i]]!r} of a histogram family has no _bucket/_sum/_count suffix",
            )
        )
    return out


def _canonical_ids(flat: pl.DataFrame, n_sets: int) -> np.ndarray:
    """For each label set, the smallest ``bid`` with the same labels (order and spacing ignored).

    An order-independent hash (xor of pair hashes) finds the candidates; only label sets whose
    hash is shared are compared exactly, so a hash collision can never merge two series.
    """
    gid = np.arange(n_sets, dtype=np.uint32)
    per = np.zeros(n_sets, dtype=np.uint64)
    if len(flat):
        hashed = flat.select("bid", pl.struct("name", "value").hash().alias("h"))
        xor = hashed.group_by("bid").agg(pl.col("h").bitwise_xor())
        per[xor["bid"].to_numpy()] = xor["h"].to_numpy()
    shared = np.flatnonzero(~pl.Series(per).is_unique().to_numpy())
    if len(shared):
        labels: dict[int, list[tuple[str, str]]] = {int(b): [] for b in shared}
        for b, k, v in flat.filter(
            pl.col("bid").is_in(pl.Series(shared, dtype=pl.UInt32).implode())
        ).iter_rows():
            labels[b].append((k, v))
        first: dict[tuple[tuple[str, str], ...], int] = {}
        for b in sorted(labels):
            gid[b] = first.setdefault(tuple(sorted(labels[b])), b)
    return gid
