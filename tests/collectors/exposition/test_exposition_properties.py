"""Property tests: render -> parse round-trips, and arbitrary text never breaks ``parse_text``."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.errors import ExpositionError
from collectors import exposition
from collectors.exposition import Family, MetricType, ParsedPage, parse_text
from collectors.exposition.render import render_text

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

metric_names = st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,20}", fullmatch=True)
label_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,12}", fullmatch=True).filter(
    lambda n: not n.startswith("__")
)
label_values = st.text(max_size=30)  # any unicode, quotes, backslashes, newlines, '{', '}', '#'
# Finite values at or above the DCGM blank sentinel read back as missing: leave them out here.
values = st.floats(allow_nan=True, allow_infinity=True).filter(
    lambda v: not (math.isfinite(v) and v >= 9.2e18)
)
timestamps = st.none() | st.integers(min_value=-(10**12), max_value=253_402_300_799_000)
series = st.tuples(st.dictionaries(label_names, label_values, max_size=5), values, timestamps)
families = st.dictionaries(
    metric_names,
    st.tuples(
        st.sampled_from([MetricType.GAUGE, MetricType.COUNTER, MetricType.UNTYPED]),
        # HELP text: leading blanks are the separator and a trailing '\r' is a CRLF line end, so
        # neither can round-trip; everything else can.
        st.none()
        | st.text(max_size=40).filter(lambda h: not h.startswith((" ", "\t")) and not h.endswith("\r")),
        st.lists(series, min_size=1, max_size=4),
    ),
    min_size=1,
    max_size=5,
)


def _frame(spec: dict) -> tuple[dict[str, Family], pl.DataFrame, list[tuple]]:
    fams, rows, expected = {}, [], []
    for name, (mtype, help_text, samples) in spec.items():
        fams[name] = Family(name, mtype, help_text)
        for labels, value, ts in samples:
            dt = None if ts is None else EPOCH + timedelta(milliseconds=ts)
            pairs = [{"name": k, "value": v} for k, v in labels.items()]
            rows.append(
                {"__name__": name, "__family__": name, "__value__": value, "__ts__": dt, "__labels__": pairs}
            )
            expected.append((name, labels, value, ts))
    schema = {
        "__name__": pl.Utf8,
        "__family__": pl.Utf8,
        "__value__": pl.Float64,
        "__ts__": pl.Datetime("ms", "UTC"),
        "__labels__": pl.List(pl.Struct({"name": pl.Utf8, "value": pl.Utf8})),
    }
    return fams, pl.DataFrame(rows, schema=schema), expected


def parse_both(text: str, *, strict: bool = False) -> ParsedPage:
    """Parse with the vectorised and the per-line reader; both must give the very same page."""
    pages = []
    errors = []
    for threshold in (0, 10**9):
        saved = exposition.SMALL_PAGE_LINES
        exposition.SMALL_PAGE_LINES = threshold
        try:
            pages.append(parse_text(text, strict=strict, source="fuzz"))
        except ExpositionError as err:
            errors.append((err.source, err.line, err.reason))
        finally:
            exposition.SMALL_PAGE_LINES = saved
    if errors:
        assert len(errors) == 2 and errors[0] == errors[1], errors
        raise ExpositionError(*errors[0])
    fast, slow = pages
    assert fast.samples.equals(slow.samples, null_equal=True)
    assert fast.wide().equals(slow.wide(), null_equal=True)
    assert (fast.dropped, fast.warnings, fast.blank_count) == (slow.dropped, slow.warnings, slow.blank_count)
    assert dict(fast.families) == dict(slow.families)
    assert fast.exemplars == slow.exemplars
    return fast


def _same_value(a: float | None, b: float) -> bool:
    return a is not None and (a == b or (math.isnan(a) and math.isnan(b)))


@SETTINGS
@given(spec=families, openmetrics=st.booleans())
def test_render_then_parse_gives_back_the_same_samples(spec: dict, openmetrics: bool) -> None:
    fams, frame, expected = _frame(spec)
    text = render_text(fams, frame, openmetrics=openmetrics)
    page = parse_both(text, strict=True)
    assert page.openmetrics == openmetrics
    got = page.samples.select("__name__", "__labels__", "__value__", "__ts__").rows()
    assert len(got) == len(expected)
    for (name, labels, value, ts), (e_name, e_labels, e_value, e_ts) in zip(got, expected, strict=True):
        assert name == e_name
        assert {p["name"]: p["value"] for p in labels} == e_labels
        assert [p["name"] for p in labels] == list(e_labels)
        assert _same_value(value, e_value)
        assert (None if ts is None else (ts - EPOCH) // timedelta(milliseconds=1)) == e_ts
    for name, fam in fams.items():
        assert page.families[name].type == fam.type
        assert page.families[name].help == fam.help


@SETTINGS
@given(spec=families)
def test_wide_frame_has_each_label_in_its_own_column(spec: dict) -> None:
    fams, frame, expected = _frame(spec)
    wide = parse_both(render_text(fams, frame), strict=True).wide()
    for row, (_, labels, _, _) in zip(wide.iter_rows(named=True), expected, strict=True):
        for column in wide.columns[5:]:
            assert row[column] == labels.get(column)


FRAGMENTS = [
    "{",
    "}",
    '"',
    "\\",
    "=",
    ",",
    " ",
    "\t",
    "\n",
    "\r\n",
    "#",
    " # ",
    "a",
    "b_c",
    "vllm:x",
    "1",
    "-2.5e3",
    "NaN",
    "+Inf",
    "-Inf",
    "Inf",
    "le",
    '"0.1"',
    "...",
    "# TYPE a gauge\n",
    "# TYPE a histogram\n",
    "# HELP a x\\n\n",
    "# UNIT a s\n",
    "# EOF\n",
    "a_bucket",
    "9223372036854775794",
    "1700000000000",
    "1700000000.5",
    "\u00e9",
    "\U0001f680",
    "test-uuid",
    "__name__",
    "_total",
    "_created",
]
garbage = st.lists(st.sampled_from(FRAGMENTS), max_size=60).map("".join) | st.text(max_size=200)


@SETTINGS
@given(text=garbage)
def test_arbitrary_text_only_ever_raises_exposition_error_and_lenient_never_raises(text: str) -> None:
    page = parse_both(text)
    kept = set(page.samples["line"].to_list())
    dropped = [d.line for d in page.dropped]
    assert kept.isdisjoint(dropped)
    assert len(dropped) == len(set(dropped))
    n_lines = len(text.split("\n")) - (1 if text.endswith("\n") else 0)
    assert all(1 <= n <= n_lines for n in kept | set(dropped))
    try:
        parse_both(text, strict=True)
    except ExpositionError as err:
        # Strict mode stops exactly where lenient mode dropped its first line.
        assert dropped and err.line == dropped[0]
        assert err.source == "fuzz"
    else:
        assert not dropped


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("\ud800 1\n", id="a lone surrogate"),
        pytest.param('a{b="\ud83d"} 1\n', id="a lone surrogate in a label value"),
    ],
)
def test_text_that_is_not_valid_unicode_is_an_exposition_error(text: str) -> None:
    page = parse_text(text)
    assert [d.line for d in page.dropped] == [1]
    with pytest.raises(ExpositionError):
        parse_text(text, strict=True)
