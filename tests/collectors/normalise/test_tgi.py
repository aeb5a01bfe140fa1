"""Tests for collectors.normalise.tgi: model from the target label, both counter spellings, the histograms."""

from __future__ import annotations

import polars as pl
import pytest

from collectors.normalise.tgi import parse_tgi
from tests.collectors.normalise.test_normalise import read_page, wide

TARGET = {"namespace": "team-d", "pod": "tgi-0", "instance": "10.0.0.11:9000", "model_name": "bigscience/bloom-560m"}


def test_page_with_model_from_the_target() -> None:
    out = parse_tgi(read_page("pages/tgi/tgi.txt", labels=TARGET))
    row = out.engine.row(0, named=True)
    assert (row["model"], row["engine"], row["tenant"]) == ("bigscience/bloom-560m", "tgi", "team-d")
    assert (row["requests_success_total"], row["requests_failure_total"]) == (95.0, 5.0)
    assert (row["requests_waiting"], row["requests_running"]) == (4.0, 12.0)
    hist = out.hist
    assert set(hist["metric"].unique()) == {"e2e_s", "queue_s", "tpot_s", "prompt_tokens", "generation_tokens"}
    e2e = hist.filter(pl.col("metric") == "e2e_s")
    assert e2e.height == 36 and e2e["le"][0] == pytest.approx(1.5e-4)
    assert e2e["sum"].unique().to_list() == [190.5] and e2e["count"].unique().to_list() == [95.0]


def test_without_a_model_target_label_rows_are_dropped_and_counted() -> None:
    labels = {k: v for k, v in TARGET.items() if k != "model_name"}
    out = parse_tgi(read_page("pages/tgi/tgi.txt", labels=labels))
    assert out.engine.height == 0 and out.hist.height == 0
    assert out.dropped["missing_model"] > 0


@pytest.mark.parametrize(
    "name",
    [pytest.param("tgi_request_success", id="without _total"), pytest.param("tgi_request_success_total", id="with _total")],
)
def test_counter_names_with_and_without_total(name: str) -> None:
    frame = wide([(name, {"namespace": "team-d", "model_name": "m"}, 42.0)])
    assert parse_tgi(frame).engine["requests_success_total"].to_list() == [42.0]
