"""Unit tests of ``parse_text``: the grammar of text 0.0.4 and OpenMetrics, errors, and ``wide``."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import polars as pl
import pytest

from analytics.errors import ExpositionError
from collectors import exposition
from collectors.exposition import MetricType, parse_text
from collectors.samples import META_COLUMNS, META_SCHEMA


@pytest.fixture(
    autouse=True,
    params=[pytest.param(0, id="vectorised path"), pytest.param(10**9, id="per-line path")],
)
def reading_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test through both readers: polars (big pages) and per-line Python (small pages)."""
    monkeypatch.setattr(exposition, "SMALL_PAGE_LINES", request.param)


def one(text: str) -> dict:
    """The single sample of a page, as a dict with its labels unpacked."""
    page = parse_text(text, strict=True)
    assert page.samples.height == 1, page.dropped
    row = page.samples.row(0, named=True)
    row["labels"] = {p["name"]: p["value"] for p in row.pop("__labels__")}
    return row


def test_samples_frame_has_the_documented_columns_and_dtypes() -> None:
    page = parse_text('# TYPE a gauge\na{x="1"} 2 1700000000000\n')
    assert page.samples.schema == pl.Schema(
        {
            "line": pl.UInt32,
            "__name__": pl.Utf8,
            "__family__": pl.Utf8,
            "__type__": pl.Utf8,
            "__value__": pl.Float64,
            "__ts__": pl.Datetime("ms", "UTC"),
            "__labels__": pl.List(pl.Struct({"name": pl.Utf8, "value": pl.Utf8})),
        }
    )
    assert page.samples["line"].to_list() == [2]


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        pytest.param("42", 42.0, id="an integer"),
        pytest.param("-3.5", -3.5, id="a negative decimal"),
        pytest.param("1.5e3", 1500.0, id="exponent notation"),
        pytest.param("2E-2", 0.02, id="an upper-case exponent"),
        pytest.param(".5", 0.5, id="a leading dot"),
        pytest.param("+Inf", math.inf, id="plus Inf"),
        pytest.param("Inf", math.inf, id="bare Inf"),
        pytest.param("-Inf", -math.inf, id="minus Inf"),
        pytest.param("8.128902e+06", 8128902.0, id="an explicit exponent sign"),
        pytest.param("9.2e18", 9.2e18, id="a huge value under the DCGM sentinel is kept"),
    ],
)
def test_value_forms_read_as_floats(token: str, expected: float) -> None:
    assert one(f"m {token}\n")["__value__"] == expected


def test_nan_is_kept_as_nan_not_null() -> None:
    assert math.isnan(one("m NaN\n")["__value__"])


@pytest.mark.parametrize(
    "token",
    [pytest.param("9223372036854775794", id="the README sentinel"), pytest.param("9.3e18", id="above it")],
)
def test_dcgm_blank_sentinel_is_missing_and_warned(token: str) -> None:
    page = parse_text(f'DCGM_FI_DEV_MEMORY_TEMP{{gpu="0"}} {token}\n')
    assert page.samples["__value__"].to_list() == [None]
    assert [w.line for w in page.warnings] == [1]
    assert "sentinel" in page.warnings[0].reason


def test_types_come_from_type_lines_and_suffixes_resolve_the_family() -> None:
    text = (
        "# HELP h Latency.\n# TYPE h histogram\n"
        'h_bucket{le="0.1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 0.3\nh_count 2\nh_created 1.7e9\n'
        "# TYPE s summary\n"
        's{quantile="0.5"} 1\ns_sum 2\ns_count 3\n'
        "# TYPE c_total counter\nc_total 4\n"
        "# TYPE g gauge\ng 5\n"
        "plain 6\n"
        "c_total_bucket 7\n"
    )
    page = parse_text(text, strict=True)
    got = page.samples.select("__name__", "__family__", "__type__").rows()
    assert got == [
        ("h_bucket", "h", "histogram"),
        ("h_bucket", "h", "histogram"),
        ("h_sum", "h", "histogram"),
        ("h_count", "h", "histogram"),
        ("h_created", "h", "histogram"),
        ("s", "s", "summary"),
        ("s_sum", "s", "summary"),
        ("s_count", "s", "summary"),
        ("c_total", "c_total", "counter"),
        ("g", "g", "gauge"),
        ("plain", "plain", "untyped"),
        ("c_total_bucket", "c_total_bucket", "untyped"),
    ]
    assert page.families["h"].help == "Latency."
    assert page.families["plain"].type is MetricType.UNTYPED
    assert page.warnings == ()


def test_type_is_never_guessed_from_the_name() -> None:
    page = parse_text(
        "# TYPE vllm:iteration_tokens_total histogram\nvllm:iteration_tokens_total_count 3\nx_total 1\n"
    )
    assert page.samples["__type__"].to_list() == ["histogram", "untyped"]
    assert page.samples["__family__"].to_list() == ["vllm:iteration_tokens_total", "x_total"]


def test_openmetrics_page_with_unit_info_stateset_created_and_exemplar() -> None:
    text = (
        '# TYPE req counter\n# UNIT req requests\n# HELP req Requests \\"served\\".\n'
        'req_total{a="1"} 3 1700000000.5 # {trace_id="abc"} 1 1700000000.25\n'
        'req_created{a="1"} 1699999999\n'
        "# TYPE build info\n"
        'build_info{version="1.2"} 1\n'
        "# TYPE state stateset\n"
        'state{state="a"} 1\nstate{state="b"} 0\n'
        "# EOF\n"
    )
    page = parse_text(text, strict=True)
    assert page.openmetrics
    s = page.samples
    assert s["__family__"].to_list() == ["req", "req", "build", "state", "state"]
    assert s["__type__"].to_list() == ["counter", "counter", "info", "stateset", "stateset"]
    assert s["__ts__"][0] == datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=UTC)
    assert page.families["req"].unit == "requests"
    assert page.families["req"].help == 'Requests "served".'
    assert [(e.line, e.labels, e.value, e.ts_ms) for e in page.exemplars] == [
        (4, (("trace_id", "abc"),), 1.0, 1700000000250)
    ]


def test_text_format_timestamps_are_integer_milliseconds() -> None:
    assert one("m 1 1700000000123\n")["__ts__"] == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
    assert one("m 1\n")["__ts__"] is None
    page = parse_text("m 1 1700000000.5\n")
    assert [d.line for d in page.dropped] == [1]
    assert "integer milliseconds" in page.dropped[0].reason


def test_lines_after_eof_are_dropped() -> None:
    page = parse_text("a 1\n# EOF\nb 2\n# HELP c x\n")
    assert page.samples["__name__"].to_list() == ["a"]
    assert [(d.line, d.reason) for d in page.dropped] == [
        (3, "text after '# EOF'"),
        (4, "text after '# EOF'"),
    ]


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        pytest.param('a="x\\\\y"', {"a": "x\\y"}, id="an escaped backslash"),
        pytest.param('a="say \\"hi\\""', {"a": 'say "hi"'}, id="escaped quotes"),
        pytest.param('a="two\\nlines"', {"a": "two\nlines"}, id="an escaped newline"),
        pytest.param('a="\\\\n"', {"a": "\\n"}, id="an escaped backslash before n is not a newline"),
        pytest.param('a="\\t"', {"a": "\\t"}, id="an unknown escape is kept verbatim"),
        pytest.param('a="x,y=z}{#w"', {"a": "x,y=z}{#w"}, id="separators inside a value"),
        pytest.param('a="1", b="2"', {"a": "1", "b": "2"}, id="a space after a comma"),
        pytest.param(
            ' a = "1" ,b="2", ', {"a": "1", "b": "2"}, id="spaces around tokens and a trailing comma"
        ),
        pytest.param('a="1",', {"a": "1"}, id="a trailing comma"),
        pytest.param("", {}, id="an empty label set"),
        pytest.param('a=""', {"a": ""}, id="an empty value"),
        pytest.param('a="ünï ☃ 🚀"', {"a": "ünï ☃ 🚀"}, id="unicode"),
    ],
)
def test_label_values_are_unescaped(labels: str, expected: dict[str, str]) -> None:
    row = one(f"vllm:m{{{labels}}} 1\n")
    assert row["__name__"] == "vllm:m"
    assert row["labels"] == expected


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        pytest.param('m{a="1",a="2"} 1', "duplicate label name 'a'", id="a duplicate label name"),
        pytest.param('m{test-uuid="x"} 1', "invalid label name 'test-uuid'", id="a hyphen in a label name"),
        pytest.param('m{a:b="x"} 1', "invalid label name 'a:b'", id="a colon in a label name"),
        pytest.param('m{1a="x"} 1', "invalid label name '1a'", id="a label name starting with a digit"),
        pytest.param("...", "elision '...'", id="an elision line"),
        pytest.param('m{a="1",...} 1', "elision '...' inside the label set", id="an elision in a label set"),
        pytest.param('m{a="1"}', "missing value", id="a missing value"),
        pytest.param("m", "missing value", id="a bare name"),
        pytest.param('m{a="1"} abc', "invalid value 'abc'", id="a garbage value"),
        pytest.param("m 0x10", "invalid value '0x10'", id="a hex value"),
        pytest.param("m 1_000", "invalid value '1_000'", id="digit separators"),
        pytest.param('m{a="1} 1', "unterminated quoted value", id="an unterminated quote"),
        pytest.param("m{a=1} 1", "double-quoted", id="an unquoted value"),
        pytest.param('m{a="1"', "not closed", id="an unclosed label set"),
        pytest.param("m 1 2 3", "unexpected text", id="trailing tokens"),
        pytest.param("m 1 abc", "invalid timestamp", id="a garbage timestamp"),
        pytest.param("9m 1", "invalid metric name", id="a name starting with a digit"),
        pytest.param("m-x 1", "invalid character '-'", id="a hyphen in a metric name"),
        pytest.param('m{__value__="1"} 1', "reserved label name", id="a label named like a meta column"),
        pytest.param("# TYPE m gauge extra", "unknown metric type", id="a bad TYPE"),
        pytest.param("# TYPE m", "TYPE line without a type", id="a TYPE without a type"),
        pytest.param("# HELP 9m x", "invalid metric name '9m'", id="a bad HELP name"),
    ],
)
def test_bad_line_is_dropped_in_lenient_mode_and_raises_in_strict_mode(line: str, reason: str) -> None:
    text = f"good 1\n{line}\nalso_good 2\n"
    page = parse_text(text, source="page.txt")
    assert page.samples["__name__"].to_list() == ["good", "also_good"]
    assert [d.line for d in page.dropped] == [2]
    assert reason in page.dropped[0].reason
    assert page.dropped[0].text == line
    with pytest.raises(ExpositionError) as info:
        parse_text(text, strict=True, source="page.txt")
    assert (info.value.source, info.value.line) == ("page.txt", 2)
    assert reason in info.value.reason


def test_strict_mode_reports_the_first_bad_line_of_several() -> None:
    with pytest.raises(ExpositionError) as info:
        parse_text('a 1\nb x\n# TYPE c bogus\nd{e-f="1"} 1\n', strict=True)
    assert info.value.line == 2


def test_crlf_blank_lines_and_plain_comments() -> None:
    text = '# HELP a The a.\r\n# TYPE a gauge\r\n\r\n# just a comment\r\n  \r\na{x="1"} 1\r\n\r\n'
    page = parse_text(text, strict=True)
    assert page.samples.select("line", "__value__").rows() == [(6, 1.0)]
    assert page.blank_count == 3
    assert page.families["a"].help == "The a."
    assert page.wide()["x"].to_list() == ["1"]


def test_help_escapes_in_text_format() -> None:
    page = parse_text('# HELP a back\\\\slash new\\nline \\"quoted\\"\na 1\n')
    assert page.families["a"].help == 'back\\slash new\nline \\"quoted\\"'


def test_suspect_lines_are_kept_and_warned() -> None:
    text = (
        "# HELP lonely Nothing follows.\n# TYPE lonely gauge\n"
        "# TYPE h histogram\n"
        'h{le="1"} 1\n'
        'dup{a="1",b="2"} 1\n'
        'dup{b="2", a="1"} 2\n'
        "t 1\n# TYPE t gauge\n"
    )
    page = parse_text(text, strict=True)
    assert page.samples.height == 4
    reasons = {w.line: w.reason for w in page.warnings}
    assert set(reasons) == {1, 4, 6, 8}
    assert "declared but has no samples" in reasons[1]
    assert "'le' label" in reasons[4]
    assert reasons[6] == "duplicate series: same name and labels as line 5"
    assert "comes after its samples" in reasons[8]


def test_wide_frame_follows_the_samples_contract() -> None:
    text = (
        "# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n"
        'DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-a",Hostname="h",container="",namespace="",pod=""} 7\n'
        'DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-b",GPU_I_PROFILE="1g.10gb",GPU_I_ID="3",Hostname="h"} 9\n'
        "# TYPE vllm:num_requests_running gauge\n"
        'vllm:num_requests_running{model_name="m",engine="0"} 2 1700000000000\n'
    )
    page = parse_text(text, strict=True)
    wide = page.wide()
    assert wide.columns[:5] == list(META_COLUMNS)
    assert wide.select(META_COLUMNS).schema == META_SCHEMA
    labels = wide.columns[5:]
    assert set(labels) == {
        "gpu",
        "UUID",
        "Hostname",
        "container",
        "namespace",
        "pod",
        "GPU_I_PROFILE",
        "GPU_I_ID",
        "model_name",
        "engine",
    }
    assert all(wide.schema[c] == pl.Utf8 for c in labels)
    assert wide["GPU_I_ID"].to_list() == [None, "3", None]
    assert wide["pod"].to_list() == ["", None, None]
    gpu = page.wide(["DCGM_FI_DEV_GPU_UTIL"])
    assert gpu.height == 2
    assert "model_name" not in gpu.columns
    vllm = page.wide({"vllm:num_requests_running"})
    assert vllm.columns == [*META_COLUMNS, "model_name", "engine"]
    assert vllm["__ts__"].to_list() == [datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)]
    assert page.wide(["nothing"]).columns == list(META_COLUMNS)


def test_wide_selects_by_family_as_well_as_by_sample_name() -> None:
    page = parse_text(
        '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 3\nh_count 2\nother 1\n'
    )
    assert page.wide(["h"])["__name__"].to_list() == ["h_bucket", "h_bucket", "h_sum", "h_count"]
    assert page.wide(["h_sum"])["__value__"].to_list() == [3.0]
    assert page.wide(["h"])["le"].to_list() == ["1", "+Inf", None, None]


def test_empty_page() -> None:
    page = parse_text("")
    assert page.samples.height == 0
    assert page.wide().schema == META_SCHEMA
    assert (page.dropped, page.warnings, page.blank_count) == ((), (), 0)


_DUP_OF_LINE_4 = '{gpu="1",UUID="GPU-00000001",Hostname="node-0",container="",namespace="ns-1",pod="p-1"}'


def _big_page() -> str:
    """A page big enough for the threaded parts of the vectorised reader, with every odd case."""
    out = ["# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).", "# TYPE DCGM_FI_DEV_GPU_UTIL gauge"]
    for g in range(4000):
        mig = f',GPU_I_PROFILE="1g.10gb",GPU_I_ID="{g % 7}"' if g % 5 == 0 else ""
        out.append(
            f'DCGM_FI_DEV_GPU_UTIL{{gpu="{g % 8}",UUID="GPU-{g:08d}",Hostname="node-{g // 8}"{mig},'
            f'container="",namespace="ns-{g % 3}",pod="p-{g}"}} {g % 101}'
        )
    out += ["# TYPE vllm:time_to_first_token_seconds histogram"]
    for engine in range(60):
        lbl = f'model_name="m{engine % 4}",engine="{engine}"'
        for le in ("0.001", "0.5", "1.0", "+Inf"):
            out.append(f'vllm:time_to_first_token_seconds_bucket{{{lbl},le="{le}"}} {engine}')
        out.append(f"vllm:time_to_first_token_seconds_sum{{{lbl}}} 1.5e-3 1700000000000")
        out.append(f"vllm:time_to_first_token_seconds_count{{{lbl}}}\t{engine}")
    out += [
        "process_cpu_seconds_total 12.5",
        'odd{a="x\\"y",b="\\\\"} 1',
        'odd{b="2",a="1"} 1',
        'odd{a="1", b="2",} 2',
        'bad{test-uuid="x"} 1',
        "...",
        "DCGM_FI_DEV_GPU_UTIL" + _DUP_OF_LINE_4 + " 9223372036854775794",
        'spaced {a="1"}  3  ',
        'ex{a="1"} 1 # {trace_id="t"} 0.5',
    ]
    return "\r\n".join(out) + "\r\n"


def test_vectorised_and_per_line_readers_agree_on_a_big_page(monkeypatch: pytest.MonkeyPatch) -> None:
    text = _big_page()
    pages = []
    for threshold in (0, 10**9):
        monkeypatch.setattr(exposition, "SMALL_PAGE_LINES", threshold)
        pages.append(parse_text(text))
    fast, slow = pages
    assert fast.samples.height > 4096
    assert fast.samples.equals(slow.samples, null_equal=True)
    assert fast.wide().equals(slow.wide(), null_equal=True)
    assert (fast.dropped, fast.warnings) == (slow.dropped, slow.warnings)
    assert [(d.line, d.reason.split(" ")[0]) for d in fast.dropped] == [(4368, "invalid"), (4369, "elision")]
    warned = [(w.line, w.reason) for w in fast.warnings]
    assert (4367, "duplicate series: same name and labels as line 4366") in warned
    assert (4370, "duplicate series: same name and labels as line 4") in warned
    assert any(n == 4370 and "DCGM blank sentinel" in r for n, r in warned)
    assert len(warned) == 3
    assert [e.line for e in fast.exemplars] == [4372]
    odd = fast.wide(["odd"])
    assert odd.select("a", "b").rows() == [('x"y', "\\"), ("1", "2"), ("1", "2")]
    assert fast.wide(["spaced"])["__value__"].to_list() == [3.0]
    ttft = fast.wide(["vllm:time_to_first_token_seconds"])
    assert ttft.height == 360
    assert ttft.filter(pl.col("__name__").str.ends_with("_sum"))["__ts__"].null_count() == 0


def _long_lines_page() -> str:
    """Long names, long label values, wide spacing and braces inside values."""
    pad = " " * 70
    return "\n".join(
        [
            "# HELP m a help text longer than the window, with a brace { and another } " + "x" * 40,
            "# TYPE m gauge",
            "a" * 80 + '{x="1"} 1',
            'm{x="2"}' + pad + "2",
            'm{x="}{"}' + pad + "3 1700000000000",
            'm{x="' + "v" * 90 + '"} 4',
            "b" * 100 + " 5",
            'm{x="6"' + pad + " 6",
            'm{x="{7}"} 7',
        ]
    )


def test_long_lines_and_braces_in_values_read_the_same_on_both_paths(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pages = []
    for threshold in (0, 10**9):
        monkeypatch.setattr(exposition, "SMALL_PAGE_LINES", threshold)
        pages.append(parse_text(_long_lines_page()))
    fast, slow = pages
    assert fast.samples.equals(slow.samples, null_equal=True)
    assert (fast.dropped, fast.warnings) == (slow.dropped, slow.warnings)
    assert fast.samples["__value__"].to_list() == [1.0, 2.0, 3.0, 4.0, 5.0, 7.0]
    assert [d.line for d in fast.dropped] == [8]
    assert fast.wide(["m"])["x"].to_list() == ["2", "}{", "v" * 90, "{7}"]


def test_a_page_whose_odd_suffixes_are_all_dropped_still_reads_the_rest() -> None:
    # Every labelled line has a suffix that is neither a plain value nor value + timestamp.
    page = parse_text('{}\n{}\nm{a="1"} x\nn 5\n')
    assert page.samples["__name__"].to_list() == ["n"]
    assert [d.line for d in page.dropped] == [1, 2, 3]
