"""Tests of the data set schemas: ``conform`` on good and bad frames, and write -> read round trips."""

from __future__ import annotations

import datetime as dt
import tempfile

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from analytics.errors import SchemaError
from analytics.schema import (
    DATASETS,
    ENGINE_SAMPLES,
    GPU_SAMPLES,
    REQUESTS,
    UTC_MS,
    Dataset,
    conform,
    dataset,
    empty,
)
from collectors.store.datasets import read_dataset, write_dataset

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def engine_frame(**overrides: list) -> pl.DataFrame:
    cols: dict[str, list] = {
        "ts": [T0, T0],
        "tenant": ["team-a", "team-b"],
        "engine": ["vllm", "triton"],
        "model": ["m1", "m2"],
        "requests_running": [1.0, 2.0],
    }
    cols.update(overrides)
    return pl.DataFrame(cols)


# --- conform: good frames --------------------------------------------------------------------------


def test_conform_orders_and_casts_a_good_frame() -> None:
    frame = engine_frame().with_columns(
        pl.col("ts").cast(pl.Datetime("us", "Europe/Paris")), pl.col("requests_running").cast(pl.Int32)
    )
    out = conform(frame.select(reversed(frame.columns)), ENGINE_SAMPLES, fill_missing=True)
    assert out.schema == ENGINE_SAMPLES.schema
    assert out["ts"].to_list() == [T0, T0]  # same instant, now ms UTC
    assert out["requests_running"].to_list() == [1.0, 2.0]


def test_conform_without_fill_missing_accepts_a_complete_frame_unchanged() -> None:
    full = conform(engine_frame(), ENGINE_SAMPLES, fill_missing=True)
    assert_frame_equal(conform(full, ENGINE_SAMPLES), full)


def test_fill_missing_adds_absent_columns_as_nulls_never_zeros() -> None:
    out = conform(engine_frame(), ENGINE_SAMPLES, fill_missing=True)
    absent = [c for c in ENGINE_SAMPLES.columns if c not in engine_frame().columns]
    assert absent and all(out[c].null_count() == out.height for c in absent)


def test_a_null_typed_column_casts_to_any_declared_dtype() -> None:
    out = conform(engine_frame(model_version=[None, None]), ENGINE_SAMPLES, fill_missing=True)
    assert out.schema["model_version"] == pl.Utf8 and out["model_version"].null_count() == 2


def test_date_only_timestamps_are_accepted_as_midnight_utc() -> None:
    frame = engine_frame(ts=[dt.date(2024, 5, 1)] * 2)
    assert (
        conform(frame, ENGINE_SAMPLES, fill_missing=True)["ts"].to_list()
        == [dt.datetime(2024, 5, 1, tzinfo=dt.UTC)] * 2
    )


def test_empty_has_the_schema_and_conforms() -> None:
    for ds in DATASETS.values():
        assert_frame_equal(conform(empty(ds), ds), empty(ds))


# --- conform: each failure names the data set and the column --------------------------------------


@pytest.mark.parametrize(
    "frame, column, message",
    [
        pytest.param(engine_frame(gpu="x"), "gpu", "not in the data set", id="an extra column is refused"),
        pytest.param(
            conform(engine_frame(), ENGINE_SAMPLES, fill_missing=True).drop("model"),
            "model",
            "missing column",
            id="a missing column is refused",
        ),
        pytest.param(
            engine_frame(requests_running=["1", "2"]),
            "requests_running",
            "cannot become",
            id="a string column where a number is declared is refused",
        ),
        pytest.param(
            engine_frame(model=[1, 2]),
            "model",
            "cannot become",
            id="a number where a string is declared is refused",
        ),
        pytest.param(
            engine_frame(ts=["2024-05-01", "2024-05-02"]),
            "ts",
            "cannot become",
            id="timestamps as strings are refused",
        ),
        pytest.param(
            engine_frame(tenant=["team-a", None]),
            "tenant",
            "1 null value(s) in a required column",
            id="a null in a required column is refused",
        ),
        pytest.param(
            engine_frame(engine=["vllm", "ollama"]),
            "engine",
            "['ollama']",
            id="a value outside the enum is refused",
        ),
    ],
)
def test_conform_failures_name_data_set_and_column(frame: pl.DataFrame, column: str, message: str) -> None:
    with pytest.raises(SchemaError) as err:
        conform(frame, ENGINE_SAMPLES, fill_missing="missing" not in message)
    assert (err.value.dataset, err.value.column) == ("engine_samples", column)
    assert str(err.value).startswith(f"engine_samples.{column}: ") and message in str(err.value)


def test_a_value_that_overflows_the_declared_integer_is_refused_naming_the_column() -> None:
    frame = pl.DataFrame(
        {"ts": [T0], "node": ["n"], "gpu_uuid": ["g"], "pod_share": [False], "gpu_index": [2**40]}
    )
    with pytest.raises(SchemaError) as err:
        conform(frame, GPU_SAMPLES, fill_missing=True)
    assert err.value.column == "gpu_index" and "do not cast" in str(err.value)


def test_a_missing_column_is_an_error_unless_fill_missing() -> None:
    with pytest.raises(SchemaError, match="missing column"):
        conform(engine_frame(), ENGINE_SAMPLES)


def test_an_unknown_data_set_name_is_a_schema_error_listing_the_known_ones() -> None:
    assert dataset("requests") is REQUESTS
    with pytest.raises(SchemaError, match="unknown data set.*gpu_samples"):
        dataset("request")


@pytest.mark.parametrize(
    "ds", [pytest.param(d, id=f"{d.name} declares coherent keys") for d in DATASETS.values()]
)
def test_every_data_set_is_keyed_partitioned_and_timestamped_coherently(ds: Dataset) -> None:
    assert ds.columns["ts"] == UTC_MS and "ts" in ds.required
    assert set(ds.partition_by) <= {"tenant", "date"}
    assert ds.key and set(ds.key) <= set(ds.columns)
    if "tenant" in ds.partition_by:
        assert "tenant" in ds.columns


# --- any frame of the schema round-trips write -> read ---------------------------------------------

_TENANTS = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,8}[a-z0-9])?", fullmatch=True)
_TIMES = st.datetimes(
    min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2030, 12, 31), timezones=st.just(dt.UTC)
).map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000))


def _values(ds: Dataset, col: str) -> st.SearchStrategy:
    dtype = ds.columns[col]
    if col in ds.enums:
        base: st.SearchStrategy = st.sampled_from([m.value for m in ds.enums[col]])
    elif col == "tenant":
        base = _TENANTS
    elif col == "ts":
        base = _TIMES
    elif dtype == pl.Utf8:
        base = st.text(max_size=12)
    elif dtype == pl.Int32:
        base = st.integers(-(2**31), 2**31 - 1)
    elif dtype == pl.Int64:
        base = st.integers(-(2**63), 2**63 - 1)
    elif dtype == pl.Float64:
        base = st.floats(allow_nan=True, allow_infinity=True)
    elif dtype == pl.Boolean:
        base = st.booleans()
    elif dtype == pl.List(pl.Struct({"bucket": pl.Int32, "count": pl.Int64})):  # rollup histograms
        pair = st.fixed_dictionaries({"bucket": st.integers(-(2**31), 2**31 - 1), "count": st.integers(0, 2**40)})
        base = st.lists(pair, max_size=4)
    else:  # a new dtype in schema.py needs a strategy here
        raise AssertionError(f"no strategy for {ds.name}.{col}: {dtype}")
    return base if col in ds.required else st.none() | base


@st.composite
def frames(draw: st.DrawFn, ds: Dataset) -> pl.DataFrame:
    """A frame of ``ds``'s schema; rows often share key values so the upsert path is exercised."""
    n = draw(st.integers(0, 12))
    rows = [{c: draw(_values(ds, c)) for c in ds.columns} for _ in range(n)]
    for i in range(1, n):  # copy another row's key into some rows: same key, different values
        if draw(st.booleans()):
            src = rows[draw(st.integers(0, i - 1))]
            rows[i].update({c: src[c] for c in ds.key})
    return pl.DataFrame(rows, schema=ds.schema)


def _expected(batch: pl.DataFrame, ds: Dataset) -> pl.DataFrame:
    """The documented upsert semantics: -0.0 == 0.0 in float keys, the last row per key wins."""
    floats = [c for c in ds.key if ds.columns[c] == pl.Float64]
    batch = batch.with_columns([(pl.col(c) + 0.0).alias(c) for c in floats])
    return batch.unique(subset=list(ds.key), keep="last", maintain_order=True)


@pytest.mark.parametrize("ds", [pytest.param(d, id=f"{d.name} round-trips") for d in DATASETS.values()])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_frame_of_the_schema_round_trips_through_the_store(ds: Dataset, data: st.DataObject) -> None:
    batch = data.draw(frames(ds))
    with tempfile.TemporaryDirectory() as root:
        write_dataset(root, ds, batch)
        first = read_dataset(root, ds).collect()
        write_dataset(root, ds, batch)  # writing the same batch again changes nothing
        again = read_dataset(root, ds).collect()
    expected = _expected(batch, ds)
    assert first.schema == ds.schema
    assert_frame_equal(first, expected, check_row_order=False)
    assert_frame_equal(again, expected, check_row_order=False)
