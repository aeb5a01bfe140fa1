"""Unit tests of ``_exposition_lines``: interning of column values."""

from __future__ import annotations

import polars as pl
import pytest

from collectors.exposition.lines import intern, intern_runs


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(["a", "a", "b", "b", "a", "c", "c"], id="runs with a value coming back later"),
        pytest.param(["x"], id="a single value"),
        pytest.param([], id="no values"),
        pytest.param(["a", None, None, "a"], id="nulls form their own run"),
    ],
)
def test_intern_runs_gives_the_same_ids_as_intern(values: list[str | None]) -> None:
    series = pl.Series(values, dtype=pl.Utf8)
    distinct, ids = intern_runs(series)
    expected, expected_ids = intern(series)
    assert distinct.to_list() == expected.to_list()
    assert ids.tolist() == expected_ids.tolist()
    assert [distinct[i] for i in ids.tolist()] == values
