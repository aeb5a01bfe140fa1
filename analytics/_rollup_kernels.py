"""Compiled (numba) per-group kernels behind :func:`analytics.rollup.rollup_requests`.

Why compiled: the rollup needs, per tenant x model x version x minute, three exact order statistics
and a sparse log-bucket histogram of four latencies. Expressed as frame operations that is a global
sort per latency plus a separate bucketing pass; a per-group loop does it in one pass over each
group's values while they sit in cache, as DuckDB's per-group quantile state does.

The steps: :func:`group_rows` numbers the groups (an open-addressing hash table over the minute and
per-column key hashes, compared in full; the caller makes sure distinct keys have distinct hashes),
:func:`order_by_group` is a counting sort of the rows by group (O(n)), :func:`sum_by_group` adds
integer columns, and
:func:`latency_stats` counts each group's non-NaN values of one latency into their log buckets
(the histogram) and picks the order statistics the quantiles need from the few values of the
bucket each rank falls in, so no group is ever comparison-sorted (O(n) per latency).
``cache=True`` keeps the machine code on disk (``__pycache__``) so only the first process after an
install pays the compilation (~10 s); loading it costs ~0.4 s once per process.
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


# Bucket indexes of values >= MIN_VALUE lie in [bucket(MIN_VALUE), bucket(MAX_VALUE)]; the counting
# arrays are indexed by "slot": 0 for the zero bucket, 1 + bucket - _LO otherwise (2 of margin each
# side, so a last-ulp difference between Python's and the kernel's log cannot index out of range).
_LO = math.ceil(math.log(MIN_VALUE) / LN_GAMMA) - 2
_SLOTS = math.ceil(math.log(MAX_VALUE) / LN_GAMMA) + 2 - _LO + 2


@nb.njit(cache=True, inline="always")
def _slot(v: float) -> int:
    """The counting slot of a non-NaN value: :func:`analytics.histogram.bucket_of` (same libm ``log``,
    same arithmetic) shifted to a small non-negative index."""
    if v >= MIN_VALUE:
        return math.ceil(math.log(min(v, MAX_VALUE)) / LN_GAMMA) - _LO + 1
    return 0


def make_scratch(rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Work arrays for :func:`latency_stats`: values, slots, run buckets, run counts."""
    return np.empty(rows, np.float64), np.empty(rows, np.int32), np.empty(rows, np.int32), np.empty(rows, np.int64)


@nb.njit(cache=True)
def _sorted_run(vals: np.ndarray, slots: np.ndarray, bucket: int, size: int, buf: np.ndarray) -> None:
    """Put the ``size`` values of one group that fall in ``bucket``, sorted, in ``buf[:size]``."""
    slot = 0 if bucket == ZERO_BUCKET else bucket + 1 - _LO
    k = 0
    for j in range(vals.size):
        if slots[j] == slot:
            buf[k] = vals[j]
            k += 1
    buf[:size].sort()


@nb.njit(cache=True, parallel=True)
def latency_stats(
    values: np.ndarray, perm: np.ndarray, offsets: np.ndarray, qs: np.ndarray, scratch: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per group of one latency: (quantiles [groups, len(qs)], NaN if no value; histogram list
    offsets; bucket indexes; counts). NaN values are skipped, as nulls are. ``scratch`` is
    :func:`make_scratch` of the row count, reused across latencies (fresh pages cost page faults).

    No comparison sort of the group: the values are counted into their buckets (which rise with
    the value), the histogram is the non-empty buckets in order, and each order statistic the
    quantiles need is picked from the few values of the bucket its rank falls in.
    """
    groups = offsets.size - 1
    vals, slots, run_bucket, run_count = scratch
    quant = np.full((groups, qs.size), np.nan)
    runs = np.zeros(groups, dtype=np.int64)
    chunks = min(groups, 64)
    for c in nb.prange(chunks):
        counts = np.zeros(_SLOTS, dtype=np.int64)
        buf = np.empty(16, dtype=np.float64)
        for g in range(groups * c // chunks, groups * (c + 1) // chunks):
            a = offsets[g]
            m = 0
            lo_slot, hi_slot = _SLOTS, 0
            for j in range(a, offsets[g + 1]):
                v = values[perm[j]]
                if not np.isnan(v):
                    s = _slot(v)
                    vals[a + m] = v
                    slots[a + m] = s
                    counts[s] += 1
                    lo_slot, hi_slot = min(lo_slot, s), max(hi_slot, s)
                    m += 1
            if m == 0:
                continue
            r = a
            for s in range(lo_slot, hi_slot + 1):
                if counts[s]:
                    run_bucket[r] = ZERO_BUCKET if s == 0 else s - 1 + _LO
                    run_count[r] = counts[s]
                    counts[s] = 0  # ready for the next group
                    r += 1
            runs[g] = r - a
            gv, gs = vals[a:a + m], slots[a:a + m]
            cur, run, before = -1, a, 0  # buf holds the sorted values of run ``cur``
            for t in range(qs.size):
                # pos = q (n - 1), linear between the order statistics either side (quantile_cont)
                pos = qs[t] * float(m - 1)
                lo = math.floor(pos)
                v_lo = 0.0
                for rank in (lo, math.ceil(pos)):
                    if rank < before:  # quantiles not ascending: walk from the first run again
                        run, before = a, 0
                    while before + run_count[run] <= rank:
                        before += run_count[run]
                        run += 1
                    if run != cur:
                        if run_count[run] > buf.size:
                            buf = np.empty(run_count[run], dtype=np.float64)
                        _sorted_run(gv, gs, run_bucket[run], run_count[run], buf)
                        cur = run
                    if rank == lo:
                        v_lo = buf[rank - before]
                quant[g, t] = v_lo + (pos - lo) * (buf[rank - before] - v_lo)
    list_offsets = np.zeros(groups + 1, dtype=np.int64)
    for g in range(groups):
        list_offsets[g + 1] = list_offsets[g] + runs[g]
    buckets = np.empty(list_offsets[-1], dtype=np.int32)
    counts_out = np.empty(list_offsets[-1], dtype=np.int64)
    for g in nb.prange(groups):
        dst, src, c = list_offsets[g], offsets[g], runs[g]
        buckets[dst:dst + c] = run_bucket[src:src + c]
        counts_out[dst:dst + c] = run_count[src:src + c]
    return quant, list_offsets, buckets, counts_out
