"""Compiled (numba) per-group kernels behind :func:`analytics.rollup.rollup_requests`.

Why compiled: the rollup needs, per tenant x model x version x minute, three exact order statistics
and a sparse log-bucket histogram of four latencies. Expressed as frame operations that is a global
sort per latency plus a separate bucketing pass; a per-group loop does it in one pass over each
group's values while they sit in cache, as DuckDB's per-group quantile state does.

The steps: :func:`group_rows` numbers the groups (an open-addressing hash table over the minute and
per-column key hashes, compared in full so distinct keys never merge), :func:`order_by_group` is a
counting sort of the rows by group (O(n)), :func:`sum_by_group` adds integer columns, and
:func:`latency_stats` sorts each group's non-NaN values of one latency (groups are small: tens to
thousands of values), reads the quantiles off them and counts buckets as runs, since the bucket
index rises with the value. ``cache=True`` keeps the machine code on disk (``__pycache__``) so
only the first process after an install pays the compilation.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from analytics.histogram import LN_GAMMA, MAX_VALUE, MIN_VALUE, ZERO_BUCKET

_EMPTY = np.int64(-1)


@nb.njit(cache=True, inline="always")
def _mix(minute: np.uint64, h0: np.uint64, h1: np.uint64, h2: np.uint64) -> np.uint64:
    """One 64-bit hash of a row's key (splitmix64 finaliser over an xor of odd multiples)."""
    k = h0 ^ (h1 * np.uint64(0x9E3779B97F4A7C15)) ^ (h2 * np.uint64(0xC2B2AE3D27D4EB4F)) ^ (minute * np.uint64(0x165667B19E3779F9))
    k ^= k >> np.uint64(33)
    k *= np.uint64(0xFF51AFD7ED558CCD)
    k ^= k >> np.uint64(33)
    return k


@nb.njit(cache=True)
def _insert(table: np.ndarray, key: np.uint64, group: np.int64) -> None:
    """Put ``group`` in the first free slot of its probe sequence (the key is known to be new)."""
    mask = np.uint64(table.size - 1)
    slot = key & mask
    while table[slot] != _EMPTY:
        slot = (slot + np.uint64(1)) & mask
    table[slot] = group


@nb.njit(cache=True)
def group_rows(minute: np.ndarray, h0: np.ndarray, h1: np.ndarray, h2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(group id per row, first row of each group): groups numbered in order of first appearance.

    Two rows share a group iff their minute and all three key hashes are equal; the caller checks
    that equal hashes mean equal keys.
    """
    n = minute.size
    table = np.full(1024, _EMPTY, dtype=np.int64)
    first = np.empty(1024, dtype=np.int64)
    gid = np.empty(n, dtype=np.int64)
    groups = 0
    for i in range(n):
        key = _mix(minute[i], h0[i], h1[i], h2[i])
        mask = np.uint64(table.size - 1)
        slot = key & mask
        while True:
            g = table[slot]
            if g == _EMPTY:
                if groups == first.size:
                    grown = np.empty(2 * first.size, dtype=np.int64)
                    grown[:groups] = first
                    first = grown
                first[groups] = i
                table[slot] = groups
                gid[i] = groups
                groups += 1
                if 2 * groups > table.size:  # keep the load factor below 1/2: probes stay short
                    table = np.full(2 * table.size, _EMPTY, dtype=np.int64)
                    for j in range(groups):
                        r = first[j]
                        _insert(table, _mix(minute[r], h0[r], h1[r], h2[r]), np.int64(j))
                break
            r = first[g]
            if minute[r] == minute[i] and h0[r] == h0[i] and h1[r] == h1[i] and h2[r] == h2[i]:
                gid[i] = g
                break
            slot = (slot + np.uint64(1)) & mask
    return gid, first[:groups].copy()


@nb.njit(cache=True)
def order_by_group(gid: np.ndarray, groups: int) -> tuple[np.ndarray, np.ndarray]:
    """(offsets of length groups + 1, row permutation): a stable counting sort of the rows by group."""
    offsets = np.zeros(groups + 1, dtype=np.int64)
    for g in gid:
        offsets[g + 1] += 1
    for g in range(groups):
        offsets[g + 1] += offsets[g]
    fill = offsets[:-1].copy()
    perm = np.empty(gid.size, dtype=np.int64)
    for i in range(gid.size):
        g = gid[i]
        perm[fill[g]] = i
        fill[g] += 1
    return offsets, perm


@nb.njit(cache=True)
def sum_by_group(gid: np.ndarray, groups: int, values: np.ndarray) -> np.ndarray:
    """Int64 sum of ``values`` (nulls already 0) per group."""
    out = np.zeros(groups, dtype=np.int64)
    for i in range(gid.size):
        out[gid[i]] += values[i]
    return out


@nb.njit(cache=True, inline="always")
def _bucket(v: float) -> np.int32:
    """Scalar :func:`analytics.histogram.bucket_of` (same libm ``log``, same arithmetic)."""
    if v >= MIN_VALUE:
        return np.int32(math.ceil(math.log(min(v, MAX_VALUE)) / LN_GAMMA))
    return np.int32(ZERO_BUCKET)


@nb.njit(cache=True, parallel=True)
def latency_stats(
    values: np.ndarray, perm: np.ndarray, offsets: np.ndarray, qs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per group of one latency: (quantiles [groups, len(qs)], NaN if no value; histogram list
    offsets; bucket indexes; counts). NaN values are skipped, as nulls are."""
    groups = offsets.size - 1
    scratch = np.empty(perm.size, dtype=np.float64)
    quant = np.full((groups, qs.size), np.nan)
    run_bucket = np.empty(perm.size, dtype=np.int32)
    run_count = np.empty(perm.size, dtype=np.int64)
    runs = np.zeros(groups, dtype=np.int64)
    for g in nb.prange(groups):
        a = offsets[g]
        k = a
        for j in range(a, offsets[g + 1]):
            v = values[perm[j]]
            if not np.isnan(v):
                scratch[k] = v
                k += 1
        m = k - a
        if m == 0:
            continue
        seg = scratch[a:k]
        seg.sort()
        for t in range(qs.size):
            # pos = q (n - 1), linear between the order statistics either side (quantile_cont)
            pos = qs[t] * float(m - 1)
            lo = math.floor(pos)
            v_lo = seg[int(lo)]
            quant[g, t] = v_lo + (pos - lo) * (seg[int(math.ceil(pos))] - v_lo)
        r = a
        run_bucket[r] = _bucket(seg[0])
        run_count[r] = 1
        for j in range(1, m):
            b = _bucket(seg[j])
            if b == run_bucket[r]:
                run_count[r] += 1
            else:
                r += 1
                run_bucket[r] = b
                run_count[r] = 1
        runs[g] = r - a + 1
    list_offsets = np.zeros(groups + 1, dtype=np.int64)
    for g in range(groups):
        list_offsets[g + 1] = list_offsets[g] + runs[g]
    buckets = np.empty(list_offsets[-1], dtype=np.int32)
    counts = np.empty(list_offsets[-1], dtype=np.int64)
    for g in nb.prange(groups):
        dst, src, c = list_offsets[g], offsets[g], runs[g]
        buckets[dst:dst + c] = run_bucket[src:src + c]
        counts[dst:dst + c] = run_count[src:src + c]
    return quant, list_offsets, buckets, counts
