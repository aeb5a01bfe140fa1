"""The store's files: partition directories, part files, their lock, and atomic fsynced replacement."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import polars as pl
import pyarrow.parquet as pq

from analytics.errors import NameValidationError, StoreError
from analytics.names import validate_tenant
from analytics.schema import NO_TENANT, Dataset

TMP_PREFIX = ".tmp-"
LOCK_NAME = ".lock"
PART_RE = re.compile(r"^part-(\d+)\.parquet$")
# Key-value metadata stored in each part: lets a writer skip parts whose ts range cannot overlap.
_TS_MIN, _TS_MAX = b"fleetlens.ts_min_ms", b"fleetlens.ts_max_ms"

Encoder = Callable[[pl.DataFrame, BinaryIO, dict[str, str]], None]


@dataclass(frozen=True, slots=True)
class Partition:
    """One partition directory: its tenant directory value (``_none`` for no tenant) and date."""

    dataset: str
    path: Path
    tenant: str | None = None  # None when the data set is not partitioned by tenant
    date: dt.date | None = None  # None when the data set is not partitioned by date

    def files(self) -> list[Path]:
        """The part files, in part-number order (temp and lock files excluded)."""
        return part_files(self.path)


def partition(root: str | Path, ds: Dataset, tenant: str | None, date: dt.date | None) -> Partition:
    """The partition of ``ds`` under ``root`` holding rows of ``tenant`` on ``date``."""
    path = Path(root) / ds.name
    for col in ds.partition_by:
        # Callers pass a tenant / date for exactly the levels the data set declares.
        path = path / (f"tenant={tenant}" if col == "tenant" else f"date={date}")
    return Partition(ds.name, path, tenant, date)


def partition_from_dir(ds: Dataset, path: Path, values: dict[str, str]) -> Partition:
    """The partition a directory stands for, from its ``<column>=<value>`` path levels."""
    tenant = values.get("tenant")
    if tenant is not None and tenant != NO_TENANT:
        try:
            validate_tenant(tenant)
        except NameValidationError as exc:
            raise StoreError(f"{path}: bad tenant partition: {exc}") from exc
    date = None
    if "date" in values:
        try:
            date = dt.date.fromisoformat(values["date"])
        except ValueError as exc:
            raise StoreError(f"{path}: bad date partition {values['date']!r}") from exc
    return Partition(ds.name, path, tenant, date)


def part_files(path: Path) -> list[Path]:
    """The ``part-<n>.parquet`` files of a partition directory, in part-number order."""
    if not path.is_dir():
        return []
    parts = [(int(m.group(1)), p) for p in path.iterdir() if (m := PART_RE.match(p.name))]
    return [p for _, p in sorted(parts)]


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the partition's ``fcntl`` lock (serialises writers across processes)."""
    with open(path / LOCK_NAME, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def read_part(path: Path, columns: list[str] | None = None) -> pl.DataFrame:
    """One part file (or some of its columns); StoreError naming it when it cannot be read."""
    try:
        return pl.read_parquet(path, columns=columns, hive_partitioning=False)
    except Exception as exc:  # polars/arrow raise several kinds for a damaged file
        raise StoreError(f"{path}: cannot read part file: {exc}") from exc


def _metadata(path: Path) -> pq.FileMetaData:
    try:
        return pq.read_metadata(path)
    except Exception as exc:
        raise StoreError(f"{path}: cannot read part file metadata: {exc}") from exc


def num_rows(path: Path) -> int:
    """Rows in a part file, from its footer."""
    return _metadata(path).num_rows


def may_overlap(path: Path, batch: pl.DataFrame, ds: Dataset) -> bool:
    """False only when ts is part of the key and the part's ts range is disjoint from the batch's."""
    if "ts" not in ds.key:
        return True  # e.g. requests: the same request id may come back with another ts
    meta = _metadata(path).metadata or {}
    if _TS_MIN not in meta or _TS_MAX not in meta:
        return True  # written by another tool: check the keys
    ts = batch.get_column("ts").dt.epoch("ms")
    lo, hi = ts.min(), ts.max()
    if lo is None or hi is None:
        return True
    return not (hi < int(meta[_TS_MIN]) or lo > int(meta[_TS_MAX]))  # type: ignore[operator]


def atomic_write(path: Path, df: pl.DataFrame, encode: Encoder) -> None:
    """Write ``df`` with ``encode`` to a temp file beside ``path``, fsync it, then rename it over ``path``."""
    tmp = path.with_name(f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex}")
    meta = {}
    if "ts" in df.columns and df.height:
        ts = df.get_column("ts").dt.epoch("ms")
        meta = {_TS_MIN.decode(): str(ts.min()), _TS_MAX.decode(): str(ts.max())}
    try:
        with open(tmp, "wb") as fh:
            encode(df, fh, meta)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def fsync_dir(path: Path) -> None:
    """Make the renames in a directory durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_file_schema(path: Path, ds: Dataset) -> None:
    """Raise StoreError naming the file if it is unreadable or has a column of another dtype."""
    try:
        schema = pl.read_parquet_schema(path)
    except Exception as exc:
        raise StoreError(f"{path}: cannot read part file: {exc}") from exc
    for col, dtype in schema.items():
        if col in ds.columns and dtype != ds.columns[col]:
            raise StoreError(
                f"{path}: column {col!r} is {dtype}, data set {ds.name} declares {ds.columns[col]}"
            )
