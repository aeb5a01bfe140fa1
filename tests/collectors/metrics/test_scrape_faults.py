"""Scrape faults against real loopback servers: each is a down SCRAPES row, the rest of the round is kept."""

from __future__ import annotations

import http.server
import threading
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from analytics.promql import compute_increase
from collectors.metrics.rounds import collect_scrape
from collectors.metrics.scrape import fetch_pages
from collectors.samples import SourceFormat
from collectors.targets import Target
from tests.collectors.metrics.test_rounds import vllm_page
from tests.collectors.metrics.test_scrape import closed_port, send, serve

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
H = http.server.BaseHTTPRequestHandler


def slow(h: H, n: int) -> None:
    """Answers only after the client's timeout (released at teardown, so no thread outlives the test)."""
    stub_release.wait(timeout=10)
    send(h, vllm_page(1, 1).encode())


def truncated(h: H, n: int) -> None:
    """Promises 4096 bytes, sends a plausible prefix, then closes the connection."""
    part = vllm_page(1, 1).encode()
    h.send_response(200)
    h.send_header("Content-Type", "text/plain; version=0.0.4")
    h.send_header("Content-Length", "4096")
    h.end_headers()
    h.wfile.write(part)
    h.wfile.flush()
    h.close_connection = True


def flaky(h: H, n: int) -> None:
    """Fails with 500 the first time, then serves the page."""
    if n == 1:
        send(h, b"internal error\n", status=500)
    else:
        send(h, vllm_page(7, 70, model="flaky").encode())


stub_release = threading.Event()

ROUTES = {
    "/good": lambda h, n: send(h, vllm_page(2, 20, model="good").encode()),
    "/slow": slow,
    "/html": lambda h, n: send(h, b"<!DOCTYPE html>\n<html><body><h1>502 Bad Gateway</h1></body></html>\n",
                               ctype="text/html"),
    "/binary": lambda h, n: send(h, bytes(range(256)) * 4, ctype="application/octet-stream"),
    "/controls": lambda h, n: send(h, b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\n\x0b\x0c\x0e\x0f\n"),
    "/truncated": truncated,
    "/flaky": flaky,
}


@pytest.fixture()
def faulty():
    stub_release.clear()
    with serve(ROUTES) as srv:
        try:
            yield srv
        finally:
            stub_release.set()


def target(url: str, ns: str) -> Target:
    return Target(SourceFormat.VLLM, url, {"namespace": ns, "pod": f"{ns}-0"})


@pytest.mark.parametrize(
    "path, needle",
    [
        pytest.param(None, "ConnectError", id="a closed port is down with a connection error"),
        pytest.param("/slow", "timeout after 1s", id="a server slower than the timeout is down with a timeout"),
        pytest.param("/html", "no samples parsed", id="an HTML error page served with 200 is down"),
        pytest.param("/binary", "not UTF-8", id="binary garbage is down"),
        pytest.param("/controls", "no samples parsed", id="control characters that are valid UTF-8 are down"),
        pytest.param("/truncated", "truncated", id="a body cut short of its Content-Length is down"),
    ],
)
def test_a_fault_is_a_down_row_with_a_clear_error_and_other_targets_are_kept(faulty, path: str | None,
                                                                             needle: str) -> None:
    url = f"http://127.0.0.1:{closed_port()}/metrics" if path is None else faulty.url(path)
    batch = collect_scrape([target(url, "broken"), target(faulty.url("/good"), "healthy")], clock=lambda: T0,
                           timeout_s=1, retries=1, concurrency=4, backoff_s=0.001)
    rows = {r["tenant"]: r for r in batch.scrapes.iter_rows(named=True)}
    assert rows["healthy"]["up"] is True, rows["healthy"]["error"]
    assert rows["broken"]["up"] is False
    assert needle in rows["broken"]["error"]
    assert rows["healthy"]["up"] is True and rows["healthy"]["error"] is None
    engine = batch.normalised.engine
    assert engine["tenant"].to_list() == ["healthy"] and engine["model"].to_list() == ["good"]


def test_a_truncated_page_is_never_taken_as_a_short_page(faulty) -> None:
    (result,) = fetch_pages([target(faulty.url("/truncated"), "t")], retries=0, clock=lambda: T0)
    assert not result.ok and result.text is None
    assert faulty.hits["/truncated"] == 1


def test_a_500_then_200_succeeds_on_retry(faulty) -> None:
    batch = collect_scrape([target(faulty.url("/flaky"), "flaky")], clock=lambda: T0, retries=2, backoff_s=0.001)
    (row,) = batch.scrapes.iter_rows(named=True)
    assert row["up"] and row["http_status"] == 200
    assert faulty.hits["/flaky"] == 2
    assert batch.normalised.engine["requests_running"].to_list() == [7.0]


def test_without_retries_a_500_is_down_with_the_status(faulty) -> None:
    batch = collect_scrape([target(faulty.url("/flaky"), "flaky")], clock=lambda: T0, retries=0)
    (row,) = batch.scrapes.iter_rows(named=True)
    assert not row["up"] and row["http_status"] == 500 and "HTTP 500" in row["error"]


def test_all_faults_in_one_round_leave_the_healthy_targets_data_intact(faulty) -> None:
    faults = [f"http://127.0.0.1:{closed_port()}/metrics"] + [faulty.url(p) for p in
                                                              ("/slow", "/html", "/binary", "/controls", "/truncated")]
    targets = [target(u, f"broken-{i}") for i, u in enumerate(faults)]
    targets += [target(faulty.url("/good"), "healthy"), target(faulty.url("/flaky"), "flaky")]
    # 3 s, not 1 s: on two loaded cores (CI runs two test workers) the flaky target's second answer,
    # served by a thread of this same process, once took longer than 1 s; /slow still never answers in time.
    batch = collect_scrape(targets, clock=lambda: T0, timeout_s=3, retries=1, concurrency=8, backoff_s=0.001)
    up = dict(zip(batch.scrapes["tenant"], batch.scrapes["up"]))
    errors = dict(zip(batch.scrapes["tenant"], batch.scrapes["error"]))
    assert up == {**{f"broken-{i}": False for i in range(len(faults))}, "healthy": True, "flaky": True}, errors
    assert sorted(batch.normalised.engine["model"]) == ["flaky", "good"]
    assert batch.scrapes["error"].filter(~batch.scrapes["up"]).null_count() == 0


def test_a_counter_reset_between_rounds_is_stored_as_a_drop_and_counted_as_a_reset() -> None:
    values = iter([1500.0, 1510.0, 12.0])  # the server restarted between the 2nd and 3rd scrape
    times = [T0 + timedelta(seconds=15 * i) for i in range(3)]
    with serve({"/metrics": lambda h, n: send(h, vllm_page(1, next(values)).encode())}) as srv:
        t = target(srv.url("/metrics"), "team-r")
        batches = [collect_scrape([t], clock=lambda at=at: at, retries=0) for at in times]
    engine = pl.concat([b.normalised.engine for b in batches])
    assert engine.select("ts", "prompt_tokens_total").rows() == list(zip(times, [1500.0, 1510.0, 12.0]))
    samples = engine.select("ts", "tenant", "model", pl.col("prompt_tokens_total").alias("value"))
    inc = compute_increase(samples, range_s=30, at=[times[-1]], by=["tenant", "model"])
    # 10 tokens before the restart and 12 after; without reset handling it would be 12 - 1500 < 0.
    assert inc["value"].to_list() == [22.0]


def test_a_round_scrapes_targets_concurrently_up_to_the_limit() -> None:
    limit, n = 4, 10
    lock = threading.Lock()
    state = {"in_flight": 0, "max": 0}
    gate = threading.Event()

    def overlapping(h: H, _: int) -> None:
        # Each request waits until `limit` are in flight at once: only a concurrent client gets there.
        with lock:
            state["in_flight"] += 1
            state["max"] = max(state["max"], state["in_flight"])
            if state["in_flight"] >= limit:
                gate.set()
        gate.wait(timeout=5)
        with lock:
            state["in_flight"] -= 1  # before replying, so the client cannot start the next one first
        send(h, vllm_page(1, 1).encode())

    with serve({f"/m{i}": overlapping for i in range(n)}) as srv:
        batch = collect_scrape([target(srv.url(f"/m{i}"), f"t{i}") for i in range(n)], clock=lambda: T0,
                               timeout_s=30, retries=0, concurrency=limit)
    assert batch.scrapes["up"].all()
    assert state["max"] == limit
