"""One compiled (numba) pass over the page's bytes: line offsets and each line's label-set braces.

Why compiled: the fast path needs, per line, its start and end and the offsets of its first ``{``
and last ``}``. In numpy that is three full scans of the page (``\\n``, ``{``, ``}``), each making
a boolean page and an offset array, then binary searches to pair braces with lines. Here the
newlines are found eight bytes at a time (a word with no ``\\n`` is skipped with one test), and the
braces are looked for only near the ends of each line: forward from its start to the first ``{``
(the metric name, a few dozen bytes) and backward from its end to the last ``}`` (the value and
timestamp). The label-set bodies in between, most of a dcgm-exporter page, are never read here.
The offsets are the same ones the numpy scans gave, so every line keeps the path (fast or careful)
it had; the kernel decides nothing about what a line means.
``cache=True`` keeps the machine code on disk so only the first process after an install compiles.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True, inline="always")
def _has_newline(word: np.uint64) -> bool:
    """Whether any byte of the 8-byte ``word`` is ``\\n`` (the classic has-zero-byte test)."""
    # The masks are uint64 locals: module-level np.uint64 globals made numba mix in signed
    # arithmetic and ran six times slower.
    x = word ^ np.uint64(0x0A0A0A0A0A0A0A0A)
    return ((x - np.uint64(0x0101010101010101)) & (x ^ np.uint64(0xFFFFFFFFFFFFFFFF))
            & np.uint64(0x8080808080808080)) != np.uint64(0)


@nb.njit(cache=True, nogil=True)
def _newlines(arr: np.ndarray, words: np.ndarray) -> np.ndarray:
    """Offsets of every ``\\n`` byte in ``arr`` (``words``: the whole 8-byte words of ``arr``)."""
    out = np.empty(0, dtype=np.int64)
    for fill in range(2):  # count first, then fill an array of exactly that size
        k = 0
        for w in range(len(words)):
            if _has_newline(words[w]):
                for i in range(w * 8, w * 8 + 8):
                    if arr[i] == 10:
                        if fill:
                            out[k] = i
                        k += 1
        for i in range(len(words) * 8, len(arr)):  # the tail shorter than a word
            if arr[i] == 10:
                if fill:
                    out[k] = i
                k += 1
        if not fill:
            out = np.empty(k, dtype=np.int64)
    return out


@nb.njit(cache=True, nogil=True)
def _lines_and_braces(
    arr: np.ndarray, nl: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per line: start, end (before any ``\\r\\n``), first ``{`` and last ``}`` after it (-1: none)."""
    size = len(arr)
    n = len(nl) + 1
    if nl.size and nl[-1] + 1 == size or size == 0:  # the last newline opens no new line
        n -= 1
    starts = np.empty(n, dtype=np.int64)
    ends = np.empty(n, dtype=np.int64)
    lb = np.full(n, -1, dtype=np.int64)
    rb = np.full(n, -1, dtype=np.int64)
    for k in range(n):
        s = 0 if k == 0 else nl[k - 1] + 1
        e = nl[k] if k < len(nl) else size
        if e > s and arr[e - 1] == 13:
            e -= 1
        starts[k] = s
        ends[k] = e
        b = s
        while b < e and arr[b] != 123:  # '{'
            b += 1
        if b == e:
            continue
        lb[k] = b
        r = e - 1
        while r > b and arr[r] != 125:  # '}'
            r -= 1
        if r > b:
            rb[k] = r
    return starts, ends, lb, rb


def scan(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each line's start and end offsets (end before ``\\r\\n``) and its first ``{`` and last ``}``.

    A line with no ``{`` has -1 for both braces; a line whose ``{`` has no ``}`` after it (before
    the line's end) has -1 for the ``}``.
    """
    whole = len(arr) // 8 * 8
    words = arr[:whole].view(np.uint64) if whole else np.empty(0, dtype=np.uint64)
    return _lines_and_braces(arr, _newlines(arr, words))
