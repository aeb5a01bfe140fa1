"""The page as bytes: line offsets, zero-copy string views of byte ranges, and interning."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl
import pyarrow as pa

from collectors.exposition.kernel import scan

_POOL: ThreadPoolExecutor | None = None


def pool() -> ThreadPoolExecutor:
    global _POOL  # one small pool for the life of the process, made on first use
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=3, thread_name_prefix="exposition")
    return _POOL


class Lines:
    """The page as UTF-8 bytes with each line's start and end offsets (end excludes ``\\r\\n``).

    ``lb``/``rb``: per line, the offset of its first ``{`` and of the last ``}`` after it (-1: none).
    """

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.arr = np.frombuffer(self.data, dtype=np.uint8)
        # One compiled pass gives the offsets and, per line, its first '{' and last '}' after it
        # (-1: none); see ``_exposition_kernel`` for why.
        self.starts, self.ends, self.lb, self.rb = scan(self.arr)

    def __len__(self) -> int:
        return len(self.starts)

    def text(self, line: int) -> str:
        """The text of a line (1-based), without its line ending."""
        return self.data[self.starts[line - 1] : self.ends[line - 1]].decode("utf-8")

    def _gather(self, off: np.ndarray, width: int = 12) -> np.ndarray:
        """The ``width`` bytes at each offset as an (n, width) array (zeros past the end of the page).

        The page is read as overlapping ``width``-byte items (stride 1), so each gather is one copy
        of one item per offset, with no copy of the page itself.
        """
        n_arr = len(self.data)
        limit = n_arr - width
        raw = np.empty(len(off), dtype=f"V{width}")
        near = off > limit
        if limit >= 0:
            items = np.ndarray(buffer=self.data, dtype=f"V{width}", shape=(limit + 1,), strides=(1,))
            if near.any():
                raw[~near] = items[off[~near]]
            else:
                raw = items[off]
        if near.any():
            base = max(limit, 0)
            tail = bytes(self.data[base:]) + bytes(2 * width)
            items = np.ndarray(buffer=tail, dtype=f"V{width}", shape=(width + 1,), strides=(1,))
            raw[near] = items[off[near] - base]
        return raw.view(np.uint8).reshape(len(off), width)

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
            view[:, 1] = np.ascontiguousarray(self._gather(off)[:, :4]).view(np.uint32).ravel()
            view[:, 2] = 0
            view[:, 3] = off
        else:  # a short string lives in the view itself, zero-padded
            raw = self._gather(off)
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


def intern_runs(values: pl.Series) -> tuple[pl.Series, np.ndarray]:
    """``intern`` for values that come in runs (sample names: a family's lines are together).

    Only the first value of each run is hashed and grouped; the rest copy their run's index.
    """
    if len(values) < 2:
        return intern(values)
    head = values.ne_missing(values.shift(1)).to_numpy()
    head[0] = True
    starts = np.flatnonzero(head)
    distinct, run_id = intern(values.gather(starts))
    return distinct, np.repeat(run_id, np.diff(np.append(starts, len(values))))
