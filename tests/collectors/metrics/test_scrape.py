"""Tests of the HTTP page fetcher against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import gzip
import http.server
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

import pytest

from analytics.errors import CollectorError
from collectors.metrics.scrape import ACCEPT, ScrapeResult, fetch_pages
from collectors.samples import SourceFormat
from collectors.targets import Target

Handler = Callable[[http.server.BaseHTTPRequestHandler, int], None]
FIXED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@dataclass
class StubServer:
    """A threaded HTTP server on 127.0.0.1 whose paths answer with test handlers; it counts requests."""

    routes: dict[str, Handler]
    hits: Counter[str] = field(default_factory=Counter)
    headers: list[dict[str, str]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def send(h: http.server.BaseHTTPRequestHandler, body: bytes, *, status: int = 200,
         ctype: str = "text/plain; version=0.0.4; charset=utf-8", extra: dict[str, str] | None = None) -> None:
    """Answer with ``body`` and a correct Content-Length."""
    h.send_response(status)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(body)))
    for k, v in (extra or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(body)


class _QuietServer(http.server.ThreadingHTTPServer):
    """A client hanging up on a slow or truncated handler is expected here: no traceback on stderr."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass


@contextmanager
def serve(routes: dict[str, Handler]) -> Iterator[StubServer]:
    """Run a StubServer for the block; it is shut down (and sleeping handlers released) after."""
    stub = StubServer(routes)

    class _H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            with stub.lock:
                stub.hits[self.path] += 1
                n = stub.hits[self.path]
                stub.headers.append(dict(self.headers.items()))
                stub.in_flight += 1
                stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
            try:
                handler = stub.routes.get(self.path)
                if handler is None:
                    send(self, b"not found\n", status=404)
                else:
                    handler(self, n)
            finally:
                with stub.lock:
                    stub.in_flight -= 1

        def log_message(self, *args: object) -> None:
            pass

    server = _QuietServer(("127.0.0.1", 0), _H)
    stub.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        stub.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def closed_port() -> int:
    """A loopback port nothing listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PAGE = b'# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name="m"} 3\n'


def fetch(*targets: Target, **kw: object) -> list[ScrapeResult]:
    kw.setdefault("backoff_s", 0.001)
    kw.setdefault("clock", lambda: FIXED)
    return fetch_pages(list(targets), **kw)  # type: ignore[arg-type]


def test_a_page_is_fetched_with_prometheus_accept_header_and_the_injected_clock() -> None:
    with serve({"/metrics": lambda h, n: send(h, PAGE)}) as srv:
        (r,) = fetch(Target(SourceFormat.VLLM, srv.url("/metrics")))
    assert r.ok and r.http_status == 200 and r.text == PAGE.decode() and r.error == ""
    assert r.ts == FIXED
    assert r.attempts == 1 and r.duration_s >= 0
    assert r.content_type is not None and r.content_type.startswith("text/plain")
    assert srv.headers[0]["Accept"] == ACCEPT


def test_a_gzip_page_is_decoded() -> None:
    def gz(h: http.server.BaseHTTPRequestHandler, n: int) -> None:
        send(h, gzip.compress(PAGE), extra={"Content-Encoding": "gzip"})

    with serve({"/metrics": gz}) as srv:
        (r,) = fetch(Target(SourceFormat.VLLM, srv.url("/metrics")))
    assert r.ok and r.text == PAGE.decode()


def numbered(i: int) -> Handler:
    """A handler serving the one-line page ``x <i>``."""
    return lambda h, n: send(h, f"x {i}\n".encode())


def test_results_come_back_in_target_order_one_per_target() -> None:
    with serve({f"/m{i}": numbered(i) for i in range(5)}) as srv:
        results = fetch(*(Target(SourceFormat.TGI, srv.url(f"/m{i}")) for i in range(5)))
    assert [r.text for r in results] == [f"x {i}\n" for i in range(5)]


@pytest.mark.parametrize(
    "status, attempts",
    [
        pytest.param(404, 1, id="a 404 is not retried"),
        pytest.param(403, 1, id="a 403 is not retried"),
        pytest.param(503, 3, id="a 503 is retried up to the retry budget"),
    ],
)
def test_http_errors_fail_and_only_5xx_are_retried(status: int, attempts: int) -> None:
    with serve({"/metrics": lambda h, n: send(h, b"no\n", status=status)}) as srv:
        (r,) = fetch(Target(SourceFormat.VLLM, srv.url("/metrics")), retries=2)
    assert not r.ok and r.text is None
    assert r.http_status == status and f"HTTP {status}" in r.error
    assert srv.hits["/metrics"] == attempts == r.attempts


def test_a_body_over_the_cap_fails_as_too_large() -> None:
    with serve({"/metrics": lambda h, n: send(h, b"x 1\n" * 1000)}) as srv:
        (r,) = fetch(Target(SourceFormat.VLLM, srv.url("/metrics")), max_body_bytes=1000)
    assert not r.ok and "body too large" in r.error
    assert srv.hits["/metrics"] == 1


def test_a_gzip_bomb_is_capped_on_the_decoded_size() -> None:
    body = gzip.compress(b"#" * 50_000)  # small on the wire, large decoded

    def gz(h: http.server.BaseHTTPRequestHandler, n: int) -> None:
        send(h, body, extra={"Content-Encoding": "gzip"})

    with serve({"/metrics": gz}) as srv:
        (r,) = fetch(Target(SourceFormat.VLLM, srv.url("/metrics")), max_body_bytes=10_000)
    assert len(body) < 10_000
    assert not r.ok and "body too large" in r.error


def test_a_body_that_is_not_utf8_fails() -> None:
    with serve({"/metrics": lambda h, n: send(h, b"\xff\xfe\x00garbage")}) as srv:
        (r,) = fetch(Target(SourceFormat.VLLM, srv.url("/metrics")))
    assert not r.ok and "not UTF-8" in r.error and r.http_status == 200


def test_an_unusable_target_is_reported_without_a_request() -> None:
    with serve({"/metrics": lambda h, n: send(h, PAGE)}) as srv:
        (r,) = fetch(Target(SourceFormat.VLLM, srv.url("/metrics"), error="namespace label: bad tenant"))
    assert not r.ok and r.error == "namespace label: bad tenant" and r.attempts == 0
    assert srv.hits["/metrics"] == 0


@pytest.mark.parametrize(
    "url, needle",
    [
        pytest.param("ftp://127.0.0.1/metrics", "not an http(s) URL", id="another scheme"),
        pytest.param("http://127.0.0.1:99999/metrics", "Port out of range", id="a port out of range"),
        pytest.param("http:///metrics", "with a host", id="no host"),
    ],
)
def test_an_invalid_url_is_a_failed_result_not_an_exception(url: str, needle: str) -> None:
    good_page = "x 1\n"
    with serve({"/ok": lambda h, n: send(h, good_page.encode())}) as srv:
        bad, good = fetch(Target(SourceFormat.VLLM, url), Target(SourceFormat.VLLM, srv.url("/ok")))
    assert not bad.ok and needle in bad.error and bad.attempts == 0
    assert good.ok and good.text == good_page


def test_proxy_settings_in_the_environment_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(var, dead)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with serve({"/metrics": lambda h, n: send(h, PAGE)}) as srv:
        (r,) = fetch(Target(SourceFormat.VLLM, srv.url("/metrics")))
    assert r.ok, r.error


def test_a_clock_in_another_zone_is_stored_as_utc() -> None:
    local = datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    with serve({"/metrics": lambda h, n: send(h, PAGE)}) as srv:
        (r,) = fetch(Target(SourceFormat.VLLM, srv.url("/metrics")), clock=lambda: local)
    assert r.ts == FIXED and r.ts.utcoffset() == timedelta(0)


def test_a_naive_clock_is_refused() -> None:
    with pytest.raises(CollectorError, match="naive"):
        fetch(Target(SourceFormat.VLLM, f"http://127.0.0.1:{closed_port()}/"), clock=lambda: datetime(2026, 1, 1))


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"timeout_s": 0}, id="a zero timeout"),
        pytest.param({"retries": -1}, id="negative retries"),
        pytest.param({"concurrency": 0}, id="zero concurrency"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, float]) -> None:
    with pytest.raises(CollectorError, match="bad scrape settings"):
        fetch(Target(SourceFormat.VLLM, "http://127.0.0.1:1/"), **settings)


def test_no_targets_is_no_results() -> None:
    assert fetch() == []
