"""Upstream exposition samples read by ``parse_text``, checked against prometheus_client as the oracle."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from collectors import exposition
from collectors.exposition import ParsedPage, parse_text


@pytest.fixture(
    autouse=True,
    params=[pytest.param(0, id="vectorised path"), pytest.param(10**9, id="per-line path")],
)
def reading_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test through both readers: polars (big pages) and per-line Python (small pages)."""
    monkeypatch.setattr(exposition, "SMALL_PAGE_LINES", request.param)


UPSTREAM = Path(__file__).resolve().parents[2] / "fixtures" / "upstream"
TEXT_FILES = sorted(p.relative_to(UPSTREAM).as_posix() for p in UPSTREAM.rglob("*.txt"))

# Files that prometheus_client rejects (PROVENANCE.md says "does not parse"): the lines we drop, with
# a word of the reason, and the lines we keep but warn about.
ELISION = "elision '...'"
BROKEN = {
    "dcgm-exporter/README.md.k8s-curl-output.txt": (
        {7: ELISION, 11: ELISION},
        {10: "DCGM blank sentinel"},
    ),
    "dcgm-exporter/golden/render_metrics_test.FE_GPU.head-d5e5f51.txt": (
        {3: "invalid label name 'test-uuid'"},
        {1: "declared but has no samples"},
    ),
    "dcgm-exporter/golden/render_metrics_test.FE_GPU.v4.5.3-4.8.2-691c927.txt": (
        {3: "invalid label name 'test-uuid'"},
        {1: "declared but has no samples"},
    ),
    "triton/vllm_backend-README.md.metrics-sample.txt": (
        {12: ELISION, 19: ELISION, 26: ELISION, 33: ELISION, 40: ELISION, 47: ELISION},
        {},
    ),
    "vllm/v0.33.0/docs-design-metrics.md.cache_config_info.txt": (
        {3: "elision '...' inside the label set"},
        {1: "declared but has no samples"},
    ),
    "vllm/v0.33.0/docs-design-metrics.md.example-output.txt": ({4: ELISION, 8: ELISION, 14: ELISION}, {}),
    "vllm/v0.33.0/docs-usage-metrics.md.example-output.txt": ({12: ELISION}, {}),
}
# Files prometheus_client reads, but which we flag as suspect.
SUSPECT = {
    "triton/metrics.md.histogram-sample.txt": {
        1: "'nv_first_response_histogram_ms' is declared but has no samples",
        **{n: "'le' label on 'nv_inference_first_response_histogram_ms' (untyped)" for n in range(5, 10)},
    },
    "argo-rollouts/rollout_test.TestCollectRollouts.case1.expected.txt": {
        13: "repeated HELP",
        14: "repeated TYPE",
        15: "duplicate series: same name and labels as line 12",
    },
}


def _oracle(text: str) -> list[tuple[str, dict[str, str], float, float | None, str]]:
    """prometheus_client's samples in page order: name, labels, value, timestamp (s), family type."""
    out = []
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.append((s.name, dict(s.labels), float(s.value), s.timestamp, fam.type))
    return out


def _ours(page: ParsedPage) -> list[tuple[str, dict[str, str], float | None, float | None]]:
    rows = page.samples.select("__name__", "__labels__", "__value__", "__ts__").iter_rows()
    return [
        (name, {p["name"]: p["value"] for p in labels}, value, None if ts is None else ts.timestamp())
        for name, labels, value, ts in rows
    ]


def _assert_same_samples(text: str, page: ParsedPage) -> None:
    theirs, ours = _oracle(text), _ours(page)
    assert len(ours) == len(theirs)
    for (name, labels, value, ts), (o_name, o_labels, o_value, o_ts, o_type) in zip(
        ours, theirs, strict=True
    ):
        # prometheus_client renames a counter's samples to end in _total; the page does not.
        assert name == o_name or (o_type == "counter" and name + "_total" == o_name)
        assert labels == o_labels
        assert value is not None
        assert value == o_value or (math.isnan(value) and math.isnan(o_value))
        assert ts == o_ts


def _parses_in_prometheus_client(rel: str) -> bool:
    try:
        _oracle((UPSTREAM / rel).read_text())
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(
    "rel", [pytest.param(r, id=f"{r} reads like prometheus_client") for r in TEXT_FILES if r not in BROKEN]
)
def test_file_prometheus_client_reads_gives_the_same_samples(rel: str) -> None:
    text = (UPSTREAM / rel).read_text()
    page = parse_text(text, source=rel)
    _assert_same_samples(text, page)
    assert page.dropped == ()
    assert {w.line: w.reason for w in page.warnings}.keys() == SUSPECT.get(rel, {}).keys()
    for warning in page.warnings:
        assert SUSPECT[rel][warning.line] in warning.reason


@pytest.mark.parametrize(
    "rel", [pytest.param(r, id=f"{r} is flagged where upstream is broken") for r in BROKEN]
)
def test_broken_file_drops_only_its_bad_lines_and_keeps_the_rest(rel: str) -> None:
    text = (UPSTREAM / rel).read_text()
    assert not _parses_in_prometheus_client(rel), "PROVENANCE.md says this file does not parse"
    expect_dropped, expect_warned = BROKEN[rel]
    page = parse_text(text, source=rel)
    assert {d.line: d.reason for d in page.dropped}.keys() == expect_dropped.keys()
    for d in page.dropped:
        assert expect_dropped[d.line] in d.reason
        assert d.text == text.splitlines()[d.line - 1]
    assert {w.line for w in page.warnings} == expect_warned.keys()
    for w in page.warnings:
        assert expect_warned[w.line] in w.reason
    # Blank out the dropped lines: what remains parses in prometheus_client, and must match us.
    lines = text.splitlines()
    for d in page.dropped:
        lines[d.line - 1] = ""
    rest = "\n".join(lines) + "\n"
    theirs = _oracle(rest)
    ours = _ours(page)
    assert len(ours) == len(theirs)
    for (name, labels, value, _), (o_name, o_labels, o_value, _, _) in zip(ours, theirs, strict=True):
        assert name == o_name
        assert labels == o_labels
        # Our only null is the DCGM blank sentinel, which prometheus_client reads as a huge number.
        assert value == o_value or (value is None and o_value >= 9223372036854775792)


@pytest.mark.parametrize(
    "rel", [pytest.param(r, id=f"{r} strict mode stops at line {min(BROKEN[r][0])}") for r in BROKEN]
)
def test_broken_file_in_strict_mode_raises_at_the_first_bad_line(rel: str) -> None:
    from analytics.errors import ExpositionError

    with pytest.raises(ExpositionError) as info:
        parse_text((UPSTREAM / rel).read_text(), strict=True, source=rel)
    assert info.value.line == min(BROKEN[rel][0])
    assert info.value.source == rel
    assert rel in str(info.value)


# The workspace's originals (``../shared/fixtures/upstream``), beside a dev checkout and CI's clone. The
# tests above read only the committed copies; these compare the copies with whatever originals exist.
SHARED = Path(__file__).resolve().parents[4] / "shared" / "fixtures" / "upstream"
COMMITTED = sorted(
    p.relative_to(UPSTREAM).as_posix() for p in UPSTREAM.rglob("*") if p.is_file() and p.name != "PROVENANCE.md"
)


def _provenance_rows() -> list[str]:
    """The first cell of every table row in tests/fixtures/upstream/PROVENANCE.md."""
    rows = []
    for line in (UPSTREAM / "PROVENANCE.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] not in ("file", "") and not set(cells[0]) <= set("-: "):
            rows.append(cells[0])
    return rows


def test_every_committed_upstream_file_has_exactly_one_provenance_row() -> None:
    rows = _provenance_rows()
    assert sorted(rows) == COMMITTED


def test_committed_copies_are_byte_identical_to_the_shared_originals_that_exist() -> None:
    originals = [rel for rel in COMMITTED if (SHARED / rel).is_file()]
    for rel in originals:
        assert (SHARED / rel).read_bytes() == (UPSTREAM / rel).read_bytes(), f"{rel} differs from {SHARED / rel}"
    shared_text = sorted(p.relative_to(SHARED).as_posix() for p in SHARED.rglob("*.txt")) if SHARED.is_dir() else []
    assert set(shared_text) <= set(TEXT_FILES), "every shared exposition sample is an oracle case here"


def test_argo_rollouts_goldens_keep_types_and_both_copies_of_the_repeated_block() -> None:
    page = parse_text(
        (UPSTREAM / "argo-rollouts/rollout_test.TestCollectRollouts.case1.expected.txt").read_text()
    )
    wide = page.wide(["rollout_info_replicas_unavailable"])
    assert wide.height == 2
    assert wide["name"].to_list() == ["guestbook-bluegreen"] * 2
    assert page.families["rollout_info"].type == "gauge"
    info = page.wide(["rollout_info"])
    assert info.row(0, named=True)["traffic_router"] == ""
    events = parse_text(
        (UPSTREAM / "argo-rollouts/rollout_test.TestIncRolloutEvents.expected.txt").read_text()
    )
    ev = events.wide()
    assert ev["__type__"].unique().to_list() == ["counter"]
    assert ev.filter(ev["name"] == "ro-test-2")["__value__"].to_list() == [2.0]
