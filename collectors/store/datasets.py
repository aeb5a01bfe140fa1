"""Parquet data sets on disk: hive-partitioned, written atomically, merged on each data set's key.

Layout: ``<root>/<data set>/tenant=<t>/date=<YYYY-MM-DD>/part-<n>.parquet`` (the levels are the data
set's ``partition_by``; ``date`` is the UTC date of ``ts``; rows without a tenant go to
``tenant=_none``). Files hold every column of the data set, partition columns included, so a file
read alone is complete; DuckDB and polars with ``hive_partitioning`` read ``tenant`` from the path and
so see ``"_none"`` where ``read_dataset`` returns null.

Write semantics (upsert): a batch is first deduplicated on the data set's ``key`` (the later row
wins), then merged into each partition it touches. A key lives in exactly one part file of its
partition for ever: a row whose key already exists replaces the old row *in the part that holds it*,
new keys are appended to the last part while it has fewer than ``PART_ROWS`` rows, else to a new part.
Every file change is one atomic ``os.replace`` of a fully written, fsynced temp file, so a reader
(ours, DuckDB, anything) never sees a partial file nor the same key twice, even mid-write, and a
killed writer leaves at worst part of its batch applied; writing the same batch again completes it.
Writing a batch twice gives the same data set as writing it once. Keys are merged within a
partition: a row whose tenant changed between two writes (gpu_samples, allocations and scrapes do not
key on tenant) lands in the other tenant's partition and the old row stays. Writers to one partition are
serialised by an ``fcntl`` lock on ``<partition>/.lock``; temp files (``.tmp-*``, never ``*.parquet``)
left by a killed writer are removed by the next write to that partition.

Invalid tenants: with ``strict=True`` (default) nothing of the batch is written and
``NameValidationError`` names the data set and the tenants; with ``strict=False`` the rows of valid
tenants are written and the rejected rows are counted per tenant in the ``WriteReport``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import polars as pl

from analytics.errors import NameValidationError, Problem, ProblemCode, StoreError
from analytics.names import validate_tenant
from analytics.schema import NO_TENANT, Dataset, conform, empty
from collectors.store.files import (
    PART_RE,
    Partition,
    atomic_write,
    check_file_schema,
    children,
    fsync_dir,
    locked,
    make_dirs,
    may_overlap,
    num_rows,
    partition,
    partition_from_dir,
    read_part,
    remove_stale,
)

# Part size that bounds the cost of one write: appends rewrite at most one part of this many rows.
PART_ROWS = 250_000
_SUPPORTED_PARTITIONS = ("tenant", "date")
_TENANT_COL, _DATE_COL = "__store_tenant__", "__store_date__"


@dataclass(frozen=True, slots=True)
class PartitionWrite:
    """What one write did to one partition."""

    partition: Partition
    rows: int  # rows of the batch now in this partition
    replaced: int  # of those, rows that replaced an existing row with the same key
    files_written: int


@dataclass(frozen=True, slots=True)
class WriteReport:
    """The outcome of ``write_dataset``."""

    dataset: str
    partitions: tuple[PartitionWrite, ...]
    rejected: tuple[Problem, ...] = ()  # per invalid tenant (``name``), the ``rows`` not written (lenient mode)
    duplicates_dropped: int = 0  # batch rows superseded by a later batch row with the same key

    @property
    def rows(self) -> int:
        """Rows written (inserted or replaced)."""
        return sum(p.rows for p in self.partitions)

    @property
    def replaced(self) -> int:
        """Rows that replaced an existing row with the same key."""
        return sum(p.replaced for p in self.partitions)


def write_dataset(root: str | Path, ds: Dataset, frame: pl.DataFrame, *, strict: bool = True) -> WriteReport:
    """Conform ``frame`` to ``ds`` and upsert it into the data set under ``root`` (see module doc)."""
    _check_partitioning(ds)
    df = conform(frame, ds)
    df = _canonical_keys(df, ds)
    before = df.height
    df = df.unique(subset=list(ds.key), keep="last", maintain_order=True)
    dropped = before - df.height
    if df.is_empty():
        return WriteReport(ds.name, (), (), dropped)
    df, rejected = _split_invalid_tenants(df, ds, strict=strict)
    keys = [c for c in (_TENANT_COL, _DATE_COL) if c in df.columns]
    groups = df.partition_by(keys, as_dict=True, include_key=False, maintain_order=True) if keys else {(): df}
    written = []
    for values in sorted(groups, key=lambda v: tuple(str(x) for x in v)):
        named = dict(zip(keys, values, strict=True))
        part = partition(root, ds, named.get(_TENANT_COL), named.get(_DATE_COL))
        written.append(_write_partition(part, groups[values], ds))
    return WriteReport(ds.name, tuple(written), rejected, dropped)


def read_dataset(
    root: str | Path,
    ds: Dataset,
    *,
    tenants: Iterable[str | None] | None = None,
    start: dt.datetime | dt.date | None = None,
    end: dt.datetime | dt.date | None = None,
) -> pl.LazyFrame:
    """Scan the data set with partition pruning: rows of ``tenants`` with ``start <= ts < end``.

    ``None`` (or ``"_none"``) in ``tenants`` selects rows without a tenant. Only the partition
    directories that can hold matching rows are opened. Returns exactly the data set's schema.
    """
    _check_partitioning(ds)
    lo, hi = _utc(start, "start"), _utc(end, "end")
    wanted: set[str] | None = None
    if tenants is not None:
        if "tenant" not in ds.partition_by:
            raise StoreError(f"{ds.name}: not partitioned by tenant, cannot select tenants")
        wanted = {NO_TENANT if t in (None, NO_TENANT) else _valid_tenant(ds, t) for t in tenants}
    last_day = None if hi is None else (hi - dt.timedelta(milliseconds=1)).date()
    files: list[Path] = []
    for part in list_partitions(root, ds):
        if wanted is not None and part.tenant not in wanted:
            continue
        if part.date is not None and (
            (lo is not None and part.date < lo.date()) or (last_day is not None and part.date > last_day)
        ):
            continue
        files.extend(part.files())
    if not files:
        return empty(ds).lazy()
    for path in files:
        check_file_schema(path, ds)
    lf = pl.scan_parquet(
        files, schema=ds.schema, hive_partitioning=False, missing_columns="insert", extra_columns="ignore"
    )
    if lo is not None:
        lf = lf.filter(pl.col("ts") >= lo)
    if hi is not None:
        lf = lf.filter(pl.col("ts") < hi)
    return lf


def list_partitions(root: str | Path, ds: Dataset) -> list[Partition]:
    """Every partition of the data set that holds at least one part file, in path order."""
    _check_partitioning(ds)
    if Path(root).exists() and not Path(root).is_dir():
        raise StoreError(f"{root}: the data directory is not a directory")
    base = Path(root) / ds.name
    found: list[Partition] = []

    def walk(path: Path, level: int, values: dict[str, str]) -> None:
        if level == len(ds.partition_by):
            part = partition_from_dir(ds, path, values)
            if part.files():
                found.append(part)
            return
        col = ds.partition_by[level]
        for child in children(path):
            if not child.is_dir() or child.name.startswith((".", "_")):
                continue  # temp dirs, _SUCCESS markers and the like
            name, sep, value = child.name.partition("=")
            if not sep or name != col:
                raise StoreError(f"{child}: expected a '{col}=<value>' partition directory")
            walk(child, level + 1, {**values, col: value})

    walk(base, 0, {})
    return found


def _check_partitioning(ds: Dataset) -> None:
    bad = [c for c in ds.partition_by if c not in _SUPPORTED_PARTITIONS]
    if bad or ("tenant" in ds.partition_by and "tenant" not in ds.columns):
        raise StoreError(f"{ds.name}: cannot partition by {list(ds.partition_by)}")


def _canonical_keys(df: pl.DataFrame, ds: Dataset) -> pl.DataFrame:
    """-0.0 -> 0.0 in float key columns: joins treat them as equal, ``unique`` would not."""
    floats = [c for c in ds.key if df.schema[c].is_float()]
    return df.with_columns([(pl.col(c) + 0.0).alias(c) for c in floats]) if floats else df


def _split_invalid_tenants(
    df: pl.DataFrame, ds: Dataset, *, strict: bool
) -> tuple[pl.DataFrame, tuple[Problem, ...]]:
    """Add the helper partition columns; drop (lenient) or refuse (strict) rows of invalid tenants."""
    cols = []
    if "tenant" in ds.partition_by:
        cols.append(pl.col("tenant").fill_null(NO_TENANT).alias(_TENANT_COL))
    if "date" in ds.partition_by:
        cols.append(pl.col("ts").dt.date().alias(_DATE_COL))
    df = df.with_columns(cols)
    if "tenant" not in ds.partition_by:
        return df, ()
    counts = df.filter(pl.col("tenant").is_not_null()).group_by("tenant").len()
    rejected = []
    for tenant, rows in counts.sort("tenant").iter_rows():
        try:
            validate_tenant(tenant)
        except NameValidationError as exc:
            rejected.append(Problem(ds.name, str(exc), name=tenant, rows=rows, code=ProblemCode.INVALID_TENANT))
    if rejected and strict:
        names = ", ".join(f"{r.name!r} ({r.rows} rows)" for r in rejected)
        raise NameValidationError(
            f"{ds.name}: nothing written, invalid tenant(s) {names}: {rejected[0].reason}"
        )
    if rejected:
        df = df.filter(~pl.col("tenant").is_in([r.name for r in rejected]).fill_null(False))
    return df, tuple(rejected)


def _valid_tenant(ds: Dataset, tenant: str) -> str:
    try:
        return validate_tenant(tenant)
    except NameValidationError as exc:
        raise NameValidationError(f"{ds.name}: {exc}") from exc


def _write_partition(part: Partition, batch: pl.DataFrame, ds: Dataset) -> PartitionWrite:
    """Upsert ``batch`` (unique on key, all of one partition) into ``part`` under its lock."""
    key = list(ds.key)
    make_dirs(part.path)
    with locked(part.path):
        remove_stale(part.path)  # left by a killed writer: we hold the lock, so not in use
        files = part.files()
        for path in files:
            check_file_schema(path, ds)  # a foreign part with other dtypes would break the key joins
        remaining, updates = batch, {}
        for path in files:
            if remaining.is_empty() or not may_overlap(path, remaining, ds):
                continue
            hits = remaining.join(read_part(path, key), on=key, how="semi", nulls_equal=True)
            if hits.height:
                updates[path] = hits
                remaining = remaining.join(hits.select(key), on=key, how="anti", nulls_equal=True)
        replaced = sum(h.height for h in updates.values())
        if remaining.height:
            last = files[-1] if files else None
            if last is not None and num_rows(last) + remaining.height <= PART_ROWS:
                updates[last] = pl.concat([updates[last], remaining]) if last in updates else remaining
            else:
                n = int(PART_RE.match(last.name).group(1)) + 1 if last else 0  # type: ignore[union-attr]
                for i, chunk in enumerate(remaining.iter_slices(PART_ROWS)):
                    updates[part.path / f"part-{n + i}.parquet"] = chunk
        for path, rows in updates.items():
            if path.exists():
                old = _as_schema(read_part(path), ds)
                rows = pl.concat([old.join(rows.select(key), on=key, how="anti", nulls_equal=True), rows])
            atomic_write(path, rows, _encode)
        fsync_dir(part.path)
    return PartitionWrite(part, batch.height, replaced, len(updates))


def _as_schema(df: pl.DataFrame, ds: Dataset) -> pl.DataFrame:
    """A part read back, with columns it lacks (an older schema) added as nulls, extra ones dropped."""
    return df.select(
        [pl.col(c) if c in df.columns else pl.lit(None, dtype=t).alias(c) for c, t in ds.columns.items()]
    )


def _encode(df: pl.DataFrame, fh: BinaryIO, meta: dict[str, str]) -> None:
    """Serialise one part (a seam the crash test replaces to stop a writer mid-file)."""
    df.write_parquet(fh, compression="zstd", statistics=True, metadata=meta or None)


def _utc(value: dt.datetime | dt.date | None, what: str) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if value.tzinfo is None:
        raise StoreError(f"{what}={value.isoformat()} is a naive datetime: pass a timezone-aware (UTC) one")
    return value.astimezone(dt.UTC)
