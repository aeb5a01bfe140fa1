"""Lines kept but suspect: duplicate series, ``le`` off a histogram bucket, bare histogram names."""

from __future__ import annotations

import numpy as np
import polars as pl

HIST = ("histogram", "gaugehistogram")


def find_suspects(
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
    bucket = np.array([t in HIST and n == f + "_bucket" for n, (f, t) in zip(names, fam, strict=True)])
    bare = np.array([t in HIST and n == f for n, (f, t) in zip(names, fam, strict=True)])
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
        h = flat.select(pl.struct("name", "value").hash()).to_series().to_numpy()
        b = flat["bid"].to_numpy()
        if (b[1:] >= b[:-1]).all():  # pairs in bid order (as built): xor each run of pairs in numpy
            starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
            per[b[starts]] = np.bitwise_xor.reduceat(h, starts)
        else:
            xor = pl.DataFrame({"bid": b, "h": h}).group_by("bid").agg(pl.col("h").bitwise_xor())
            per[xor["bid"].to_numpy()] = xor["h"].to_numpy()
    values, counts = np.unique(per, return_counts=True)
    shared = np.flatnonzero(np.isin(per, values[counts > 1])) if (counts > 1).any() else per[:0]
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
