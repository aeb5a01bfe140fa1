"""The store's files: partition directories, part files, their lock, and atomic fsynced replacement.

``partition`` is the one place a tenant becomes a path, so it is the one guard that a tenant is an
RFC 1123 label; every file-system failure here is a ``StoreError`` naming the path.
"""

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
    """The partition of ``ds`` under ``root`` holding rows of ``tenant`` (None: no tenant) on ``date``."""
    path = Path(root) / ds.name
    if "tenant" in ds.partition_by:
        tenant = NO_TENANT if tenant is None else tenant
        try:
            tenant_dir_value(tenant)
        except NameValidationError as exc:
            raise NameValidationError(f"{ds.name}: {exc}: not made a path") from exc
    for col in ds.partition_by:
        # Callers pass a tenant / date for exactly the levels the data set declares.
        path = path / (f"tenant={tenant}" if col == "tenant" else f"date={date}")
    return Partition(ds.name, path, tenant, date)


def tenant_dir_value(tenant: str) -> str:
    """``tenant`` if it may name a partition directory (``_none`` or an RFC 1123 label), else raise."""
    return tenant if tenant == NO_TENANT else validate_tenant(tenant)


def partition_from_dir(ds: Dataset, path: Path, values: dict[str, str]) -> Partition:
    """The partition a directory stands for, from its ``<column>=<value>`` path levels."""
    tenant = values.get("tenant")
    if tenant is not None:
        try:
            tenant_dir_value(tenant)
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
    try:
        parts = [(int(m.group(1)), p) for p in path.iterdir() if (m := PART_RE.match(p.name))]
    except OSError as exc:
        raise os_error(path, "cannot list the partition directory", exc) from exc
    return [p for _, p in sorted(parts)]


def children(path: Path) -> list[Path]:
    """The entries of a directory, sorted ([] when it does not exist); StoreError when it cannot be listed."""
    if not path.exists():
        return []
    try:
        return sorted(path.iterdir())
    except OSError as exc:
        raise os_error(path, "cannot list the directory", exc) from exc


def os_error(path: Path, what: str, exc: OSError) -> StoreError:
    """A StoreError naming ``path`` for a failed file-system call (raise it ``from exc``)."""
    return StoreError(f"{path}: {what}: {exc.strerror or exc}")


def make_dirs(path: Path) -> None:
    """Create the directory ``path`` and its parents (StoreError naming it when that fails)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise os_error(path, "cannot create the directory", exc) from exc


def remove_stale(path: Path) -> None:
    """Remove the temp files a killed writer left in a partition (the caller holds its lock)."""
    try:
        for stale in path.glob(f"{TMP_PREFIX}*"):
            stale.unlink(missing_ok=True)
    except OSError as exc:
        raise os_error(path, "cannot remove stale temp files", exc) from exc


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the partition's ``fcntl`` lock (serialises writers across processes)."""
    try:
        fh = open(path / LOCK_NAME, "a")  # noqa: SIM115 - closed below, after the unlock
    except OSError as exc:
        raise os_error(path / LOCK_NAME, "cannot open the partition lock", exc) from exc
    with fh:
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
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise os_error(path, f"cannot write the part file (temp file {tmp.name})", exc) from exc
        raise


def fsync_dir(path: Path) -> None:
    """Make the renames in a directory durable."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise os_error(path, "cannot sync the partition directory", exc) from exc


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
