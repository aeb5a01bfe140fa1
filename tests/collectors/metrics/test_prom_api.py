"""collectors.metrics.prom_api against a real Prometheus and a real VictoriaMetrics holding the same samples."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import polars as pl
import pytest

from analytics.errors import CollectorError
from collectors.metrics.prom_api import DEFAULT_SELECTORS, PromApiSource, fetch_range, fetch_wide
from collectors.samples import META_COLUMNS, NAME, TS, VALUE, SourceFormat, label_columns
from tests.servers import Series, Server, samples_frame, utc

T0 = 1_735_689_600_000  # 2025-01-01T00:00:00Z
MIN = 60_000
END = T0 + 120 * MIN
CHUNK_EDGE = 7 * MIN


def make_series(seed: int = 7) -> list[Series]:
    """Per-job series with irregular scrapes, gaps, ms timestamps and samples on 7-minute chunk edges."""
    rng = random.Random(seed)

    def times(start: int, step_s: tuple[int, int], ms: bool = False) -> list[int]:
        out, t = [], start
        while t <= END:
            out.append(t)
            t += rng.randint(*step_s) * 1000 + (rng.randint(1, 999) if ms else 0)
            if rng.random() < 0.02:
                t += rng.randint(2, 9) * MIN  # a gap
        # Every 7-minute edge in range holds a sample, so chunk edges are hit exactly.
        return sorted(set(out) | set(range(T0, END + 1, CHUNK_EDGE)) if not ms else out)

    def values(n: int) -> list[float]:
        # Four decimals: VictoriaMetrics stores decimals, so these round-trip exactly on both backends.
        return [round(rng.uniform(0, 500), 4) for _ in range(n)]

    spec = [
        ("DCGM_FI_DEV_GPU_UTIL", {"gpu": "0", "UUID": "GPU-1", "Hostname": "n1", "namespace": "t1", "pod": "p"}, (15, 15), False),
        ("DCGM_FI_DEV_FB_USED", {"gpu": "1", "UUID": "GPU-2", "Hostname": "n1"}, (10, 40), True),
        ("vllm:num_requests_running", {"model_name": "m", "namespace": "t1", "pod": "v1"}, (5, 30), False),
        ("vllm:e2e_request_latency_seconds_bucket", {"model_name": "m", "le": "+Inf", "pod": "v1"}, (15, 15), True),
        ("nv_inference_request_success", {"model": "r", "version": "1"}, (20, 20), False),
        ("sglang:num_running_reqs", {"model_name": "s", "tp_rank": "0"}, (7, 13), True),
        ("tgi_queue_size", {"pod": "g"}, (30, 90), False),
        ("unrelated_metric", {"x": "y"}, (15, 15), False),
    ]
    out = []
    for name, labels, step, ms in spec:
        ts = times(T0 + rng.randint(0, 20_000), step, ms)
        out.append(Series.of(name, labels, ts, values(len(ts))))
    return out


SERIES = make_series()
EXPECTED = samples_frame(SERIES)


@pytest.fixture(scope="module", params=["prometheus", "victoria-metrics"])
def backend(request: pytest.FixtureRequest, prometheus_factory, victoria_factory) -> Iterator[Server]:
    """The same samples in a real Prometheus and a real VictoriaMetrics."""
    factory = prometheus_factory if request.param == "prometheus" else victoria_factory
    yield factory(SERIES)


def _rows(wide: pl.DataFrame) -> list[tuple[object, ...]]:
    """Wide-frame samples as sorted (name, labels, ts ms, value) tuples."""
    labels = label_columns(wide)
    out = []
    for r in wide.with_columns(pl.col(TS).dt.epoch("ms")).iter_rows(named=True):
        lab = tuple(sorted((k, r[k]) for k in labels if r[k] is not None))
        out.append((r[NAME], lab, r[TS], r[VALUE]))
    return sorted(out, key=repr)


def _expected(regex: str, start: int, end: int) -> list[tuple[object, ...]]:
    """The loaded samples whose name matches ``regex`` with start <= ts <= end."""
    f = EXPECTED.filter(pl.col("__name__").str.contains(f"^(?:{regex})$"))
    f = f.filter(pl.col("ts").dt.epoch("ms").is_between(start, end)).rename({"__name__": NAME, "ts": TS, "value": VALUE})
    return _rows(f)


@pytest.mark.realserver
@pytest.mark.parametrize(
    ("selector", "regex", "start", "end", "chunk_s"),
    [
        pytest.param('{__name__=~"vllm:.*"}', "vllm:.*", T0, END, 420, id="7-minute chunks over 2 h with samples on every edge"),
        pytest.param('{__name__=~"DCGM_FI_.*"}', "DCGM_FI_.*", T0, END, 3600, id="hour chunks"),
        pytest.param('{__name__=~"sglang:.*|tgi_.*"}', "sglang:.*|tgi_.*", T0, END, 7 * 3600, id="one chunk longer than the range"),
        pytest.param('{__name__=~".+"}', ".+", T0 + CHUNK_EDGE, T0 + 5 * CHUNK_EDGE, 61.5,
                     id="a bounded window starting and ending on samples with odd 61.5 s chunks"),
        pytest.param("nv_inference_request_success", "nv_inference_request_success", T0, END, 420,
                     id="a bare metric name"),
    ],
)
def test_fetch_wide_returns_exactly_the_loaded_samples(backend: Server, selector: str, regex: str, start: int,
                                                       end: int, chunk_s: float) -> None:
    wide = fetch_wide(backend.url, selector, start=utc(start), end=utc(end), chunk_s=chunk_s)
    assert list(wide.columns[: len(META_COLUMNS)]) == list(META_COLUMNS)
    assert wide[TS].dtype == pl.Datetime("ms", "UTC")
    assert wide["__family__"].null_count() == wide.height
    got, want = _rows(wide), _expected(regex, start, end)
    assert len(want) > 20
    assert len(got) == len(set(got)), "duplicate samples at chunk edges"
    assert got == want


@pytest.mark.realserver
def test_fetch_range_returns_a_long_frame_with_labels(backend: Server) -> None:
    out = fetch_range(backend.url, "tgi_queue_size", start=utc(T0 + 10 * MIN), end=utc(T0 + 20 * MIN), step_s=60)
    assert out.columns == ["__name__", "pod", "ts", "value"]
    # Backends differ in lookback (VictoriaMetrics adapts it), so only the grid is common ground.
    grid = {utc(T0 + 10 * MIN + k * MIN) for k in range(11)}
    assert set(out["ts"]) <= grid and out["ts"].is_sorted() and out["ts"].n_unique() == out.height
    assert set(out["pod"]) == {"g"} and out.height >= 6


@pytest.mark.realserver
def test_source_fetches_each_job_with_its_selector(backend: Server) -> None:
    src = PromApiSource(backend.url, chunk_s=1800)
    frames = src.fetch(utc(T0), utc(END))
    assert set(frames) == set(DEFAULT_SELECTORS) == set(SourceFormat)
    for job, regex in {SourceFormat.DCGM: "DCGM_FI_.*", SourceFormat.VLLM: "vllm:.*", SourceFormat.TRITON: "nv_.*", SourceFormat.SGLANG: "sglang:.*",
                       SourceFormat.TGI: "tgi_.*"}.items():
        assert _rows(frames[job]) == _expected(regex, T0, END)


class _Garbage(BaseHTTPRequestHandler):
    """Answers every request according to the path prefix of the server's base URL."""

    def do_GET(self) -> None:
        mode = self.path.split("/")[1]
        status, body = {
            "garbage": (200, b"<html>not json"),
            "http500": (500, b"internal error"),
            "error": (400, json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error"}).encode()),
            "error200": (200, json.dumps({"status": "error", "error": "boom"}).encode()),
            "badpoint": (200, json.dumps({"status": "success", "data": {"resultType": "matrix", "result": [
                {"metric": {"__name__": "x"}, "values": [[1, "not-a-number"]]}]}}).encode()),
        }[mode]
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Silence the default stderr logging."""


@pytest.fixture(scope="module")
def garbage_server() -> Iterator[str]:
    """A local HTTP server that answers garbage, 500s and Prometheus errors."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Garbage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("mode", [
    pytest.param("garbage", id="a body that is not JSON"),
    pytest.param("http500", id="an HTTP 500"),
    pytest.param("error", id="a Prometheus status error with HTTP 400"),
    pytest.param("error200", id="a status error with HTTP 200"),
    pytest.param("badpoint", id="a point whose value is not a number"),
])
def test_errors_raise_collector_error_naming_url_and_query(garbage_server: str, mode: str) -> None:
    url = f"{garbage_server}/{mode}"
    with pytest.raises(CollectorError) as err:
        fetch_wide(url, '{__name__="x"}', start=utc(T0), end=utc(T0 + MIN))
    assert url in str(err.value) and '{__name__="x"}[' in str(err.value)
    with pytest.raises(CollectorError, match="rate"):
        fetch_range(url, "rate(x[5m])", start=utc(T0), end=utc(T0 + MIN), step_s=15)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"start": utc(T0 + MIN), "end": utc(T0)}, "before", id="end before start"),
        pytest.param({"start": utc(T0), "end": utc(T0 + MIN), "chunk_s": 0}, "chunk_s", id="a zero chunk"),
        pytest.param({"start": utc(T0), "end": utc(T0 + MIN), "selector": "rate(x[5m])"}, "selector",
                     id="an expression instead of a selector"),
    ],
)
def test_bad_arguments_raise_before_any_request(kwargs: dict[str, object], message: str) -> None:
    args = {"selector": "x", **kwargs}
    with pytest.raises(CollectorError, match=message):
        fetch_wide("http://127.0.0.1:9", args.pop("selector"), **args)  # type: ignore[arg-type]


@pytest.mark.realserver
def test_source_collect_normalises_every_job(backend: Server) -> None:
    got = PromApiSource(backend.url).collect(utc(T0), utc(END))
    assert set(got.gpu["gpu_uuid"]) == {"GPU-1", "GPU-2"}
    assert got.engine.height > 0
    assert set(got.engine["tenant"]) == {"t1"} and set(got.engine["model"]) == {"m"}


@pytest.mark.parametrize(
    "selector",
    ['x or vector(1)', 'rate(x[5m])', 'x[5m]', 'x offset 5m', 'sum(x)', '{__name__=~".*"}', ''],
)
def test_fetch_wide_refuses_anything_but_one_plain_vector_selector_before_asking(selector: str) -> None:
    # Port 9 on loopback: nothing listens, so reaching the network would be a different error.
    with pytest.raises(CollectorError, match="is not a plain series selector"):
        fetch_wide("http://127.0.0.1:9", selector, start=datetime(2025, 1, 1, tzinfo=UTC),
                   end=datetime(2025, 1, 1, 0, 5, tzinfo=UTC))
