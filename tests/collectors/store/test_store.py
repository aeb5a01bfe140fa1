"""Tests of the Parquet data-set store: layout, upsert semantics, atomicity, locking, pruning, DuckDB."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from analytics.errors import NameValidationError, ProblemCode, StoreError
from analytics.schema import GPU_SAMPLES, INVENTORY, NO_TENANT, REQUESTS, conform, empty
from collectors.store import datasets as store
from collectors.store import files as store_files
from collectors.store.datasets import list_partitions, read_dataset, write_dataset

REPO = Path(__file__).resolve().parents[3]
T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def gpu_rows(
    n: int, *, start: int = 0, tenant: str | None = "team-a", power: float = 100.0, t: dt.datetime = T0
) -> pl.DataFrame:
    """``n`` gpu_samples rows with distinct keys (gpu_uuid GPU-<start..start+n>)."""
    return conform(
        pl.DataFrame(
            {
                "ts": [t] * n,
                "node": ["node-1"] * n,
                "gpu_uuid": [f"GPU-{i}" for i in range(start, start + n)],
                "tenant": pl.Series([tenant] * n, dtype=pl.Utf8),
                "pod_share": [False] * n,
                "power_w": [power + i for i in range(start, start + n)],
            }
        ),
        GPU_SAMPLES,
        fill_missing=True,
    )


def request_rows(
    ids: list[str], *, tenant: str = "team-a", ts: dt.datetime = T0, e2e: float = 1.0
) -> pl.DataFrame:
    return conform(
        pl.DataFrame(
            {
                "ts": [ts] * len(ids),
                "request_id": ids,
                "tenant": [tenant] * len(ids),
                "model": ["m"] * len(ids),
                "e2e_s": [e2e] * len(ids),
            }
        ),
        REQUESTS,
        fill_missing=True,
    )


def read_sorted(root: Path, ds=GPU_SAMPLES, **kw) -> pl.DataFrame:
    return read_dataset(root, ds, **kw).collect().sort(list(ds.key), nulls_last=True)


def all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# --- layout and round trip -------------------------------------------------------------------------


def test_write_lays_out_hive_partitions_and_reads_back_the_conformed_schema(tmp_path: Path) -> None:
    late = dt.datetime(2024, 5, 1, 23, 59, 59, 999000, tzinfo=dt.UTC)
    batch = pl.concat(
        [gpu_rows(2, t=late), gpu_rows(1, start=5, tenant=None, t=late + dt.timedelta(seconds=1))]
    )
    report = write_dataset(tmp_path, GPU_SAMPLES, batch)
    assert report.rows == 3 and report.replaced == 0 and report.rejected == ()
    files = [f for f in all_files(tmp_path) if f.endswith(".parquet")]
    assert files == [
        "gpu_samples/tenant=_none/date=2024-05-02/part-0.parquet",
        "gpu_samples/tenant=team-a/date=2024-05-01/part-0.parquet",
    ]
    back = read_dataset(tmp_path, GPU_SAMPLES).collect()
    assert back.schema == GPU_SAMPLES.schema  # no `date` column, exact dtypes
    assert_frame_equal(back.sort("gpu_uuid"), batch.sort("gpu_uuid"))
    assert back.filter(pl.col("gpu_uuid") == "GPU-5")["tenant"].to_list() == [None]


def test_date_partition_is_the_utc_date_of_ts_whatever_zone_the_frame_had(tmp_path: Path) -> None:
    berlin = dt.datetime(2024, 5, 2, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))  # 23:30 UTC on May 1
    frame = gpu_rows(1).with_columns(pl.lit(berlin).cast(pl.Datetime("ms", "Europe/Berlin")).alias("ts"))
    write_dataset(tmp_path, GPU_SAMPLES, frame)
    (part,) = list_partitions(tmp_path, GPU_SAMPLES)
    assert part.date == dt.date(2024, 5, 1) and part.tenant == "team-a"
    assert read_dataset(tmp_path, GPU_SAMPLES).collect()["ts"].to_list() == [berlin.astimezone(dt.UTC)]


def test_a_data_set_partitioned_by_date_only_has_no_tenant_level(tmp_path: Path) -> None:
    inv = conform(
        pl.DataFrame({"ts": [T0], "node": ["node-1"], "gpu_count": [8]}), INVENTORY, fill_missing=True
    )
    write_dataset(tmp_path, INVENTORY, inv)
    assert all_files(tmp_path) == [
        "inventory/date=2024-05-01/.lock",
        "inventory/date=2024-05-01/part-0.parquet",
    ]
    assert_frame_equal(read_dataset(tmp_path, INVENTORY).collect(), inv)
    with pytest.raises(StoreError, match="not partitioned by tenant"):
        read_dataset(tmp_path, INVENTORY, tenants=["team-a"])


def test_an_empty_or_absent_data_set_reads_as_an_empty_frame_with_the_schema(tmp_path: Path) -> None:
    assert read_dataset(tmp_path / "nowhere", GPU_SAMPLES).collect().schema == GPU_SAMPLES.schema
    report = write_dataset(tmp_path, GPU_SAMPLES, empty(GPU_SAMPLES))
    assert report.partitions == () and all_files(tmp_path) == []
    assert read_dataset(tmp_path, GPU_SAMPLES).collect().height == 0


def test_write_refuses_a_frame_that_does_not_fit_the_schema(tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"gpu_samples\.bogus"):
        write_dataset(tmp_path, GPU_SAMPLES, gpu_rows(1).with_columns(bogus=pl.lit(1)))
    assert all_files(tmp_path) == []


# --- upsert semantics ------------------------------------------------------------------------------


def test_writing_the_same_batch_twice_gives_the_data_set_of_one_write(tmp_path: Path) -> None:
    batch = pl.concat([gpu_rows(50), gpu_rows(3, start=100, tenant=None)])
    write_dataset(tmp_path, GPU_SAMPLES, batch)
    once = read_sorted(tmp_path)
    files_once = all_files(tmp_path)
    second = write_dataset(tmp_path, GPU_SAMPLES, batch)
    assert second.replaced == batch.height
    assert_frame_equal(read_sorted(tmp_path), once)
    assert all_files(tmp_path) == files_once


def test_rows_with_an_existing_key_replace_the_old_rows_and_new_keys_are_added(tmp_path: Path) -> None:
    write_dataset(tmp_path, GPU_SAMPLES, gpu_rows(10, power=100.0))
    report = write_dataset(tmp_path, GPU_SAMPLES, gpu_rows(10, start=5, power=500.0))  # 5 overlap, 5 new
    assert (report.rows, report.replaced) == (10, 5)
    back = read_sorted(tmp_path).sort("power_w")
    assert back.height == 15
    expected = {f"GPU-{i}": (100.0 if i < 5 else 500.0) + i for i in range(15)}
    assert dict(zip(back["gpu_uuid"], back["power_w"], strict=True)) == expected


def test_within_a_batch_the_later_row_with_a_key_wins(tmp_path: Path) -> None:
    batch = pl.concat([gpu_rows(3, power=1.0), gpu_rows(1, start=1, power=7.0)])
    report = write_dataset(tmp_path, GPU_SAMPLES, batch)
    assert report.duplicates_dropped == 1 and report.rows == 3
    assert read_sorted(tmp_path)["power_w"].to_list() == [1.0, 8.0, 3.0]


def test_null_key_columns_match_each_other_on_rewrite(tmp_path: Path) -> None:
    # mig_instance, cluster, pod, container are null in these rows and all part of the key.
    write_dataset(tmp_path, GPU_SAMPLES, gpu_rows(4, power=1.0))
    write_dataset(tmp_path, GPU_SAMPLES, gpu_rows(4, power=2.0))
    assert read_sorted(tmp_path)["power_w"].to_list() == [2.0, 3.0, 4.0, 5.0]


def test_negative_zero_and_zero_in_a_float_key_are_one_key(tmp_path: Path) -> None:
    from analytics.schema import ENGINE_HIST

    def hist(le: float, value: float) -> pl.DataFrame:
        return conform(
            pl.DataFrame(
                {
                    "ts": [T0],
                    "tenant": ["team-a"],
                    "engine": ["vllm"],
                    "model": ["m"],
                    "metric": ["ttft_s"],
                    "le": [le],
                    "value": [value],
                }
            ),
            ENGINE_HIST,
            fill_missing=True,
        )

    write_dataset(tmp_path, ENGINE_HIST, pl.concat([hist(-0.0, 1.0), hist(0.0, 2.0)]))
    write_dataset(tmp_path, ENGINE_HIST, hist(-0.0, 3.0))
    assert read_dataset(tmp_path, ENGINE_HIST).collect()["value"].to_list() == [3.0]


def test_a_request_that_comes_back_with_another_ts_replaces_the_old_row(tmp_path: Path, monkeypatch) -> None:
    # requests are keyed by (tenant, request_id): the ts-range shortcut must not apply to them.
    monkeypatch.setattr(store, "PART_ROWS", 2)
    write_dataset(tmp_path, REQUESTS, request_rows(["r1", "r2", "r3", "r4"], ts=T0, e2e=1.0))  # 2 full parts
    write_dataset(tmp_path, REQUESTS, request_rows(["r1"], ts=T0 + dt.timedelta(hours=1), e2e=9.0))
    back = read_sorted(tmp_path, REQUESTS)
    assert back.select("request_id", "e2e_s").rows() == [("r1", 9.0), ("r2", 1.0), ("r3", 1.0), ("r4", 1.0)]


def test_parts_are_bounded_and_a_key_stays_in_the_part_that_holds_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(store, "PART_ROWS", 10)
    write_dataset(tmp_path, GPU_SAMPLES, gpu_rows(25))  # parts of 10, 10, 5
    write_dataset(tmp_path, GPU_SAMPLES, gpu_rows(3, start=25, t=T0))  # last part has room: 8 rows
    (part,) = list_partitions(tmp_path, GPU_SAMPLES)
    assert [pl.read_parquet(f).height for f in part.files()] == [10, 10, 8]
    owner = {u: f.name for f in part.files() for u in pl.read_parquet(f)["gpu_uuid"]}
    before = {f.name: f.stat().st_mtime_ns for f in part.files()}
    report = write_dataset(tmp_path, GPU_SAMPLES, gpu_rows(2, start=12, power=999.0))  # both live in part-1
    assert report.partitions[0].files_written == 1
    after = {f.name: f.stat().st_mtime_ns for f in part.files()}
    assert [n for n in before if before[n] != after[n]] == [owner["GPU-12"]]
    assert {u: f.name for f in part.files() for u in pl.read_parquet(f)["gpu_uuid"]} == owner
    back = read_sorted(tmp_path)
    assert back.height == 28 and back["gpu_uuid"].n_unique() == 28
    assert back.filter(pl.col("power_w") >= 999.0)["gpu_uuid"].sort().to_list() == ["GPU-12", "GPU-13"]


def test_parts_written_by_another_tool_are_still_merged_on_key(tmp_path: Path) -> None:
    # No fleetlens ts metadata in the part: the writer must fall back to comparing keys.
    pdir = tmp_path / "gpu_samples" / "tenant=team-a" / "date=2024-05-01"
    pdir.mkdir(parents=True)
    gpu_rows(3, power=1.0).write_parquet(pdir / "part-0.parquet")
    write_dataset(tmp_path, GPU_SAMPLES, gpu_rows(3, power=2.0))
    assert read_sorted(tmp_path)["power_w"].to_list() == [2.0, 3.0, 4.0]


def test_a_part_of_an_older_schema_is_merged_with_its_missing_columns_as_nulls(tmp_path: Path) -> None:
    pdir = tmp_path / "gpu_samples" / "tenant=team-a" / "date=2024-05-01"
    pdir.mkdir(parents=True)
    gpu_rows(3, power=1.0).drop("xid_last").write_parquet(pdir / "part-0.parquet")
    assert read_sorted(tmp_path)["xid_last"].null_count() == 3
    write_dataset(tmp_path, GPU_SAMPLES, gpu_rows(1, power=2.0).with_columns(xid_last=pl.lit(43, pl.Int64)))
    back = read_sorted(tmp_path)
    assert back.schema == GPU_SAMPLES.schema and back["xid_last"].to_list() == [43, None, None]


def test_a_part_with_another_dtype_is_refused_naming_the_file_and_column(tmp_path: Path) -> None:
    pdir = tmp_path / "gpu_samples" / "tenant=team-a" / "date=2024-05-01"
    pdir.mkdir(parents=True)
    gpu_rows(3).with_columns(pl.col("mig_instance").cast(pl.Utf8)).write_parquet(pdir / "part-0.parquet")
    for action in (
        lambda: write_dataset(tmp_path, GPU_SAMPLES, gpu_rows(1)),
        lambda: read_dataset(tmp_path, GPU_SAMPLES),
    ):
        with pytest.raises(StoreError, match=r"part-0\.parquet: column 'mig_instance' is String"):
            action()


# --- tenants ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("../escape", id="a path traversal is refused"),
        pytest.param("Team-A", id="uppercase is refused"),
        pytest.param("a/b", id="a slash is refused"),
        pytest.param(NO_TENANT, id="the literal no-tenant marker is refused"),
        pytest.param("", id="an empty tenant is refused"),
        pytest.param("team\n", id="a trailing newline is refused"),
    ],
)
def test_a_batch_with_an_invalid_tenant_writes_nothing_in_strict_mode(tmp_path: Path, bad: str) -> None:
    batch = pl.concat([gpu_rows(2), gpu_rows(1, start=9, tenant=bad)])
    with pytest.raises(NameValidationError) as err:
        write_dataset(tmp_path, GPU_SAMPLES, batch)
    assert "gpu_samples" in str(err.value) and repr(bad) in str(err.value)
    assert all_files(tmp_path) == []


def test_lenient_mode_writes_valid_tenants_and_reports_the_rejected_rows(tmp_path: Path) -> None:
    batch = pl.concat([gpu_rows(2), gpu_rows(3, start=9, tenant="../x"), gpu_rows(1, start=20, tenant=None)])
    report = write_dataset(tmp_path, GPU_SAMPLES, batch, strict=False)
    assert [(r.name, r.rows, r.code) for r in report.rejected] == [("../x", 3, ProblemCode.INVALID_TENANT)]
    assert str(report.rejected[0]).startswith("gpu_samples: ../x (3 rows): invalid_tenant: ")
    assert report.rows == 3
    assert sorted(read_dataset(tmp_path, GPU_SAMPLES).collect()["gpu_uuid"]) == ["GPU-0", "GPU-1", "GPU-20"]
    assert not any("x" in p.name for p in (tmp_path / "gpu_samples").iterdir())


# --- reading: pruning and filters --------------------------------------------------------------------


def _three_partitions(root: Path) -> None:
    write_dataset(root, GPU_SAMPLES, gpu_rows(2, tenant="team-a"))
    write_dataset(root, GPU_SAMPLES, gpu_rows(2, start=10, tenant="team-b"))
    write_dataset(root, GPU_SAMPLES, gpu_rows(2, start=20, tenant="team-a", t=T0 + dt.timedelta(days=1)))


def _corrupt(part: Path) -> None:
    for f in part.glob("part-*.parquet"):
        f.write_bytes(b"this is not parquet")


def test_reading_some_tenants_opens_only_their_partitions(tmp_path: Path) -> None:
    _three_partitions(tmp_path)
    _corrupt(tmp_path / "gpu_samples" / "tenant=team-b" / "date=2024-05-01")
    got = read_dataset(tmp_path, GPU_SAMPLES, tenants=["team-a"]).collect()
    assert sorted(got["gpu_uuid"]) == ["GPU-0", "GPU-1", "GPU-20", "GPU-21"]
    with pytest.raises(StoreError, match="tenant=team-b"):
        read_dataset(tmp_path, GPU_SAMPLES).collect()


def test_reading_a_time_range_opens_only_its_dates_and_is_half_open(tmp_path: Path) -> None:
    _three_partitions(tmp_path)
    _corrupt(tmp_path / "gpu_samples" / "tenant=team-a" / "date=2024-05-02")
    day = read_dataset(tmp_path, GPU_SAMPLES, start=dt.date(2024, 5, 1), end=dt.date(2024, 5, 2)).collect()
    assert sorted(day["gpu_uuid"]) == ["GPU-0", "GPU-1", "GPU-10", "GPU-11"]
    at_t0 = read_dataset(tmp_path, GPU_SAMPLES, start=T0, end=T0 + dt.timedelta(milliseconds=1)).collect()
    assert at_t0.height == 4
    assert read_dataset(tmp_path, GPU_SAMPLES, end=T0).collect().height == 0


def test_untenanted_rows_are_selected_with_none(tmp_path: Path) -> None:
    write_dataset(tmp_path, GPU_SAMPLES, pl.concat([gpu_rows(1), gpu_rows(2, start=5, tenant=None)]))
    for sel in (None, NO_TENANT):
        got = read_dataset(tmp_path, GPU_SAMPLES, tenants=[sel]).collect()
        assert got["gpu_uuid"].sort().to_list() == ["GPU-5", "GPU-6"] and got["tenant"].null_count() == 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        pytest.param({"start": dt.datetime(2024, 5, 1)}, "naive", id="a naive start is refused"),
        pytest.param({"tenants": ["../etc"]}, "RFC 1123", id="an invalid tenant filter is refused"),
    ],
)
def test_read_arguments_are_validated(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises((StoreError, NameValidationError), match=message):
        read_dataset(tmp_path, GPU_SAMPLES, **kwargs)


def test_list_partitions_names_tenant_and_date_and_ignores_partitions_without_parts(tmp_path: Path) -> None:
    _three_partitions(tmp_path)
    (tmp_path / "gpu_samples" / "tenant=team-c" / "date=2024-05-09").mkdir(
        parents=True
    )  # a killed first write
    parts = list_partitions(tmp_path, GPU_SAMPLES)
    assert [(p.tenant, p.date) for p in parts] == [
        ("team-a", dt.date(2024, 5, 1)),
        ("team-a", dt.date(2024, 5, 2)),
        ("team-b", dt.date(2024, 5, 1)),
    ]


def test_a_foreign_directory_in_the_data_set_is_an_error_naming_it(tmp_path: Path) -> None:
    _three_partitions(tmp_path)
    (tmp_path / "gpu_samples" / "tenant=Bad..Name" / "date=2024-05-01").mkdir(parents=True)
    with pytest.raises(StoreError, match=r"tenant=Bad\.\.Name"):
        list_partitions(tmp_path, GPU_SAMPLES)


def test_duckdb_reads_the_data_set_as_it_is(tmp_path: Path) -> None:
    batch = pl.concat(
        [gpu_rows(5), gpu_rows(3, start=10, tenant="team-b"), gpu_rows(2, start=20, tenant=None)]
    )
    write_dataset(tmp_path, GPU_SAMPLES, batch)
    write_dataset(tmp_path, GPU_SAMPLES, batch)  # a rewrite must not duplicate rows for DuckDB either
    glob = str(tmp_path / "gpu_samples" / "**" / "*.parquet")
    rel = duckdb.sql(f"SELECT * FROM read_parquet('{glob}', hive_partitioning=true)")
    got = rel.pl()
    assert "date" in got.columns and got.height == batch.height
    # DuckDB takes tenant from the path, so rows without a tenant show the `_none` directory value.
    got = got.with_columns(pl.col("tenant").replace(NO_TENANT, None)).select(list(GPU_SAMPLES.columns))
    assert_frame_equal(conform(got, GPU_SAMPLES).sort("gpu_uuid"), read_sorted(tmp_path).sort("gpu_uuid"))


# --- atomicity and locking: real processes ---------------------------------------------------------

_KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {repo!r})
    import polars as pl
    from collectors.store import datasets as store
    from analytics.schema import GPU_SAMPLES

    def stuck(df, fh, meta):
        # Write the real bytes, half of them reach the disk, then hang until killed.
        import io
        buf = io.BytesIO()
        df.write_parquet(buf)
        data = buf.getvalue()
        fh.write(data[: len(data) // 2])
        fh.flush()
        print("STUCK", flush=True)
        time.sleep(600)

    store._encode = stuck
    frame = pl.read_parquet({batch!r})
    store.write_dataset({root!r}, GPU_SAMPLES, frame)
    """
)


def _run_killed_writer(root: Path, batch: pl.DataFrame, tmp: Path) -> None:
    batch_file = tmp / "batch.parquet"
    batch.write_parquet(batch_file)
    script = _KILLED_WRITER.format(repo=str(REPO), batch=str(batch_file), root=str(root))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "STUCK"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize(
    "first_rows",
    [
        pytest.param(0, id="a killed first write leaves no file"),
        pytest.param(40, id="a killed rewrite leaves the old part whole"),
    ],
)
def test_a_writer_killed_mid_file_leaves_the_data_set_complete(tmp_path: Path, first_rows: int) -> None:
    root = tmp_path / "data"
    if first_rows:
        write_dataset(root, GPU_SAMPLES, gpu_rows(first_rows, power=1.0))
    before = read_sorted(root)
    _run_killed_writer(root, gpu_rows(60, power=2.0), tmp_path)
    pdir = root / "gpu_samples" / "tenant=team-a" / "date=2024-05-01"
    leftovers = list(pdir.glob(f"{store_files.TMP_PREFIX}*"))
    assert len(leftovers) == 1 and leftovers[0].stat().st_size > 0  # the half-written temp file
    assert_frame_equal(read_sorted(root), before)
    glob = str(root / "gpu_samples" / "**" / "*.parquet")
    if first_rows:
        assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}')").fetchall() == [(first_rows,)]
    # The next write completes the batch and sweeps the temp file.
    write_dataset(root, GPU_SAMPLES, gpu_rows(60, power=2.0))
    assert not list(pdir.glob(f"{store_files.TMP_PREFIX}*"))
    assert_frame_equal(
        read_sorted(root), gpu_rows(60, power=2.0).sort(list(GPU_SAMPLES.key), nulls_last=True)
    )


_WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {repo!r})
    import datetime as dt
    import polars as pl
    from collectors.store.datasets import write_dataset
    from analytics.schema import GPU_SAMPLES, conform
    t0 = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
    for b in range({batches}):
        uuids = [f"W{who}-{{b}}-{{i}}" for i in range(20)]
        frame = pl.DataFrame({{"ts": [t0] * 20, "node": ["n"] * 20, "gpu_uuid": uuids,
                              "tenant": ["team-a"] * 20, "pod_share": [False] * 20}})
        write_dataset({root!r}, GPU_SAMPLES, conform(frame, GPU_SAMPLES, fill_missing=True))
    """
)


def test_concurrent_writers_to_one_partition_lose_no_rows(tmp_path: Path) -> None:
    batches = 25
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WRITER.format(repo=str(REPO), root=str(tmp_path), who=who, batches=batches),
            ]
        )
        for who in range(3)
    ]
    for p in procs:
        assert p.wait(timeout=240) == 0
    back = read_dataset(tmp_path, GPU_SAMPLES).collect()
    assert back.height == 3 * batches * 20 and back["gpu_uuid"].n_unique() == back.height


def test_a_write_holds_the_partition_lock_against_other_processes(tmp_path: Path, monkeypatch) -> None:
    seen: list[int] = []
    real = store._encode
    probe_script = (
        "import fcntl, sys\nf = open(sys.argv[1], 'a')\n"
        "try:\n    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept BlockingIOError:\n    sys.exit(3)\n"
    )

    def probe(df, fh, meta):
        lock = Path(fh.name).parent / store_files.LOCK_NAME
        seen.append(
            subprocess.run(
                [sys.executable, "-c", probe_script, str(lock)], check=False, timeout=60
            ).returncode
        )
        real(df, fh, meta)

    monkeypatch.setattr(store, "_encode", probe)
    write_dataset(tmp_path, GPU_SAMPLES, gpu_rows(3))
    assert seen == [3]  # another process could not take the lock during the write
    lock = tmp_path / "gpu_samples" / "tenant=team-a" / "date=2024-05-01" / store_files.LOCK_NAME
    assert (
        subprocess.run([sys.executable, "-c", probe_script, str(lock)], check=False, timeout=60).returncode
        == 0
    )


# --- file-system failures are StoreErrors naming the path; the store is the one tenant-to-path guard -----


@pytest.mark.parametrize("tenant", ["../x", "A_B", "a/b", "", ".", "team-a/../../etc"])
def test_a_tenant_that_is_not_an_rfc1123_label_never_becomes_a_path(tmp_path: Path, tenant: str) -> None:
    """Even a caller that skips every other check cannot build a partition path from a bad tenant."""
    with pytest.raises(NameValidationError, match="gpu_samples: tenant"):
        store_files.partition(tmp_path, GPU_SAMPLES, tenant, T0.date())
    assert store_files.partition(tmp_path, GPU_SAMPLES, None, T0.date()).path.parent.name == f"tenant={NO_TENANT}"
    assert list(tmp_path.iterdir()) == []


def test_a_data_dir_that_is_a_file_is_a_store_error_naming_the_path(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.write_text("a file\n")
    with pytest.raises(StoreError, match=rf"^{root}/gpu_samples/tenant=team-a/date=2024-05-01: cannot create") as err:
        write_dataset(root, GPU_SAMPLES, gpu_rows(2))
    assert isinstance(err.value.__cause__, OSError)
    with pytest.raises(StoreError, match=rf"^{root}: the data directory is not a directory"):
        read_dataset(root, GPU_SAMPLES)


def test_a_data_dir_under_a_file_is_a_store_error_from_the_os_error(tmp_path: Path) -> None:
    """Tests run as root, which chmod does not stop: a regular file as a parent is unwritable for anyone."""
    (tmp_path / "file").write_text("x\n")
    with pytest.raises(StoreError, match=r"file/sub/gpu_samples/.*: cannot create the directory: Not a directory"):
        write_dataset(tmp_path / "file" / "sub", GPU_SAMPLES, gpu_rows(1))


def test_a_lock_that_cannot_be_opened_is_a_store_error_naming_it(tmp_path: Path) -> None:
    part = store_files.partition(tmp_path, GPU_SAMPLES, "team-a", T0.date()).path
    (part / store_files.LOCK_NAME).mkdir(parents=True)
    with pytest.raises(StoreError, match=rf"^{part}/\.lock: cannot open the partition lock: Is a directory"):
        write_dataset(tmp_path, GPU_SAMPLES, gpu_rows(1))


def test_a_failed_rename_is_a_store_error_and_leaves_no_temp_file(tmp_path: Path, monkeypatch) -> None:
    write_dataset(tmp_path, GPU_SAMPLES, gpu_rows(2))

    def refuse(src: object, dst: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(store_files.os, "replace", refuse)
    with pytest.raises(StoreError, match=r"part-0\.parquet: cannot write the part file .*Permission denied"):
        write_dataset(tmp_path, GPU_SAMPLES, gpu_rows(3, start=5))
    monkeypatch.undo()
    (part,) = list_partitions(tmp_path, GPU_SAMPLES)
    assert [p.name for p in part.path.iterdir() if p.name.startswith(store_files.TMP_PREFIX)] == []
    assert read_dataset(tmp_path, GPU_SAMPLES).collect().height == 2, "what was written before is kept"


def test_a_truncated_part_is_a_store_error_naming_the_file_on_read_and_write(tmp_path: Path) -> None:
    write_dataset(tmp_path, GPU_SAMPLES, gpu_rows(50))
    (part,) = list_partitions(tmp_path, GPU_SAMPLES)
    path = part.files()[0]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(StoreError, match=rf"^{path}: cannot read part file"):
        read_dataset(tmp_path, GPU_SAMPLES)
    with pytest.raises(StoreError, match=rf"^{path}: cannot read part file"):
        write_dataset(tmp_path, GPU_SAMPLES, gpu_rows(1))
