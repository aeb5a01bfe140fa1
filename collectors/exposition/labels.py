"""Label-set bodies, parsed in polars: each distinct body once, as nested lists and as flat pairs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from collectors.exposition.lines import compact, intern
from collectors.exposition.slow import parse_label_body

_LNAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_PAIR = rf"{_LNAME}[ \t]*=[ \t]*{_QUOTED}"
PAIR_RE = rf"({_LNAME})[ \t]*=[ \t]*\"((?:[^\"\\]|\\.)*)\""
BODY_RE = rf"^[ \t]*(?:{_PAIR}[ \t]*,[ \t]*)*(?:{_PAIR}[ \t]*,?[ \t]*)?$"
LABEL_LIST = pl.List(pl.Struct({"name": pl.Utf8, "value": pl.Utf8}))


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
