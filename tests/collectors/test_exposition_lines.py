"""Unit tests of ``_exposition_lines``: line offsets, brace search and interning on page bytes."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from collectors._exposition_lines import Lines, intern, intern_runs


def _reference(data: bytes) -> list[tuple[int, int]]:
    """First '{' and last '}' of each line, by plain bytes search (-1 where none)."""
    out, pos = [], 0
    for raw in data.split(b"\n")[: -1 if data.endswith(b"\n") else None]:
        line = raw[:-1] if raw.endswith(b"\r") else raw
        first, last = line.find(b"{"), line.rfind(b"}")
        out.append((pos + first if first >= 0 else -1, pos + last if last >= 0 else -1))
        pos += len(raw) + 1
    return out


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('m{a="1"} 2\n', id="a short labelled line"),
        pytest.param("n" * 90 + '{a="1"} 2\n', id="a name longer than the window"),
        pytest.param(
            'm{a="1"}' + " " * 80 + "2\r\nx 1", id="a suffix longer than the window, CRLF, no final newline"
        ),
        pytest.param('m{a="}' + "v" * 100 + '{"} 2\n', id="braces inside a long label value"),
        pytest.param("plain " + "1" * 100 + "\n\n{", id="lines without a brace pair"),
        pytest.param("}" + " " * 70 + "{\n", id="a closing brace before the opening one"),
    ],
)
def test_braces_match_a_plain_search_of_each_line(text: str) -> None:
    lines = Lines(text.encode())
    first, last = lines.braces(np.zeros(len(lines), dtype=bool))
    assert list(zip(first.tolist(), last.tolist(), strict=True)) == _reference(text.encode())


def test_skipped_lines_report_no_braces() -> None:
    lines = Lines(b'# {a} comment\nm{a="1"} 1\n')
    first, last = lines.braces(np.array([True, False]))
    assert (first.tolist(), last.tolist()) == ([-1, 15], [-1, 21])


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
