"""Real Prometheus and VictoriaMetrics servers on loopback, loaded with given samples, for tests.

Prometheus gets its data as TSDB blocks built by ``promtool tsdb create-blocks-from openmetrics``
(so timestamps can be anywhere in the past); VictoriaMetrics through ``/api/v1/import/prometheus``.
Both are started on 127.0.0.1 with a free port and stopped by the caller (``stop()``) or by the
factory fixtures in ``tests/conftest.py``. A missing binary fails the test, naming the Debian package
that provides it; ``FLEETLENS_ALLOW_MISSING_SERVERS=1`` turns that into a skip, for local runs only.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

PROMETHEUS_BIN = "/usr/bin/prometheus"
START_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class Series:
    """One time series: name, labels and its samples (ms timestamps, strictly increasing)."""

    name: str
    labels: tuple[tuple[str, str], ...]
    ts_ms: tuple[int, ...]
    values: tuple[float, ...]

    @staticmethod
    def of(name: str, labels: Mapping[str, str], ts_ms: Iterable[int], values: Iterable[float]) -> Series:
        """Build a series, checking the timestamps increase and the lengths match."""
        ts, vs = tuple(int(t) for t in ts_ms), tuple(float(v) for v in values)
        if len(ts) != len(vs) or any(b <= a for a, b in itertools.pairwise(ts)):
            raise ValueError(f"{name}{dict(labels)}: timestamps must increase and match the values")
        return Series(name, tuple(sorted(labels.items())), ts, vs)


# The Debian package that installs each executable the tests start (scripts/setup.sh installs them all).
DEBIAN_PACKAGE = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "victoria-metrics": "victoria-metrics",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
    "chromium": "chromium",
    "chromedriver": "chromium-driver",
    "initdb": "postgresql",
    "pg_ctl": "postgresql",
    "postgres": "postgresql",
}
ALLOW_MISSING_ENV = "FLEETLENS_ALLOW_MISSING_SERVERS"


def require_binary(name: str) -> str:
    """The path of an executable; a missing one fails the test (skips only with the explicit opt-out)."""
    path = name if os.path.isabs(name) and os.access(name, os.X_OK) else shutil.which(name)
    if path:
        return path
    base = os.path.basename(name)
    package = DEBIAN_PACKAGE.get(base, "see scripts/setup.sh")
    reason = (f"{name} is not installed: install the Debian package '{package}' "
              f"(`bash scripts/setup.sh` as root, or `apt-get install {package}`)")
    if os.environ.get(ALLOW_MISSING_ENV) == "1":
        pytest.skip(f"{reason}; skipped because {ALLOW_MISSING_ENV}=1")
    pytest.fail(f"{reason}. The real-server tests never skip; set {ALLOW_MISSING_ENV}=1 to skip them "
                "on a local machine without it", pytrace=False)
    raise AssertionError("unreachable")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def format_value(v: float) -> str:
    """A float as exposition text that Go's ParseFloat reads back bit for bit."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(v)


def _label_text(name: str, labels: Sequence[tuple[str, str]]) -> str:
    """``name{a="x",...}`` with exposition escaping."""
    if not labels:
        return name
    esc = (v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for _, v in labels)
    return name + "{" + ",".join(f'{k}="{v}"' for (k, _), v in zip(labels, esc, strict=True)) + "}"


def write_openmetrics(series: Sequence[Series], path: Path) -> None:
    """All samples as OpenMetrics text with second timestamps (ms precision), ``# EOF`` at the end."""
    with path.open("w") as f:
        # No # TYPE lines: every family is "unknown", which stores each sample as given (a histogram
        # TYPE would make the parser expect _count/_sum/+Inf groups we want to be free to break).
        for s in series:
            head = _label_text(s.name, s.labels)
            for t, v in zip(s.ts_ms, s.values, strict=True):
                f.write(f"{head} {format_value(v)} {t // 1000}.{t % 1000:03d}\n")
        f.write("# EOF\n")


def prometheus_text(series: Sequence[Series]) -> str:
    """All samples as Prometheus text with ms timestamps (VictoriaMetrics' import format)."""
    lines = []
    for s in series:
        head = _label_text(s.name, s.labels)
        lines.extend(f"{head} {format_value(v)} {t}" for t, v in zip(s.ts_ms, s.values, strict=True))
    return "\n".join(lines) + "\n"


def samples_frame(series: Sequence[Series]) -> pl.DataFrame:
    """The series as a long frame: ``__name__``, one Utf8 column per label, ``ts``, ``value``."""
    names = sorted({k for s in series for k, _ in s.labels})
    cols: dict[str, list[object]] = {"__name__": [], **{n: [] for n in names}, "ts": [], "value": []}
    for s in series:
        lab = dict(s.labels)
        k = len(s.ts_ms)
        cols["__name__"].extend([s.name] * k)
        for n in names:
            cols[n].extend([lab.get(n)] * k)
        cols["ts"].extend(s.ts_ms)
        cols["value"].extend(s.values)
    schema = {"__name__": pl.Utf8, **{n: pl.Utf8 for n in names}, "ts": pl.Int64, "value": pl.Float64}
    frame = pl.DataFrame(cols, schema=schema)
    return frame.with_columns(pl.col("ts").cast(pl.Datetime("ms")).dt.replace_time_zone("UTC"))


def _get_json(url: str, timeout: float = 10.0) -> object:
    """GET a URL and decode its JSON body."""
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


@dataclass(slots=True)
class Server:
    """A running server process: its base URL, folder and log; ``stop()`` ends it."""

    kind: str
    url: str
    workdir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    extra: dict[str, object] = field(default_factory=dict)

    def log_tail(self, n: int = 30) -> str:
        """The last lines of the server's log, for failure messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Terminate the process (kill it if it does not exit) and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


def _spawn(kind: str, argv: list[str], workdir: Path, url: str) -> Server:
    """Start a server process logging into ``workdir``."""
    log_path = workdir / f"{kind}.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    log.close()
    return Server(kind, url, workdir, proc, log_path)


def _wait(server: Server, ready: str, what: str) -> None:
    """Poll ``ready`` until it answers 200; fail with the log tail if the process dies or time runs out."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.kind} exited ({server.process.returncode}) before {what}:\n"
                               f"{server.log_tail()}")
        try:
            with urllib.request.urlopen(ready, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{server.kind} not {what} within {START_TIMEOUT_S}s:\n{server.log_tail()}")


def start_prometheus(series: Sequence[Series], workdir: Path) -> Server:
    """Build TSDB blocks from ``series`` with promtool and serve them with a real Prometheus."""
    prom, promtool = require_binary(PROMETHEUS_BIN), require_binary("promtool")
    workdir.mkdir(parents=True, exist_ok=True)
    data, om = workdir / "data", workdir / "samples.om"
    write_openmetrics(series, om)
    built = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(om), str(data)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    if built.returncode != 0:
        raise RuntimeError(f"promtool failed: {built.stdout}\n{built.stderr}")
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\nscrape_configs: []\n")
    port = free_port()
    server = _spawn("prometheus", [
        prom, f"--config.file={config}", f"--storage.tsdb.path={data}",
        f"--web.listen-address=127.0.0.1:{port}",
        # The samples are old (fixed, seeded dates): keep every block instead of deleting it at start.
        "--storage.tsdb.retention.time=100y",
    ], workdir, f"http://127.0.0.1:{port}")
    with _stopped_on_error(server):
        _wait(server, f"{server.url}/-/ready", "ready")
        _check_loaded(server, series)
    return server


def start_victoria(series: Sequence[Series], workdir: Path) -> Server:
    """Start a real VictoriaMetrics and import ``series`` through ``/api/v1/import/prometheus``."""
    vm = require_binary("victoria-metrics")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = _spawn("victoria-metrics", [
        vm, f"-httpListenAddr=127.0.0.1:{port}", f"-storageDataPath={workdir / 'data'}",
        "-retentionPeriod=100y", "-search.disableCache", "-loggerLevel=ERROR",
    ], workdir, f"http://127.0.0.1:{port}")
    with _stopped_on_error(server):
        _wait(server, f"{server.url}/health", "healthy")
        body = prometheus_text(series).encode()
        req = urllib.request.Request(f"{server.url}/api/v1/import/prometheus", data=body, method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            if r.status // 100 != 2:
                raise RuntimeError(f"VictoriaMetrics import answered {r.status}")
        with urllib.request.urlopen(f"{server.url}/internal/force_flush", timeout=30):
            pass
        _check_loaded(server, series)
    return server


@contextlib.contextmanager
def _stopped_on_error(server: Server) -> Iterator[None]:
    """A server whose start-up fails is stopped here: its caller never gets it to stop later."""
    try:
        yield
    except BaseException:
        server.stop()
        raise


def _check_loaded(server: Server, series: Sequence[Series]) -> None:
    """Wait until the server returns every loaded sample through the export/query API."""
    want = sum(len(s.ts_ms) for s in series)
    lo = min(s.ts_ms[0] for s in series)
    hi = max(s.ts_ms[-1] for s in series)
    span_ms = hi - lo + 1
    # The raw range selector, counted here: count_over_time() would drop the names and make series
    # that differ only by name collide ("vector cannot contain metrics with the same labelset").
    query = urllib.parse.urlencode({"query": f'{{__name__=~".+"}}[{span_ms}ms]', "time": f"{hi / 1000:.3f}"})
    deadline = time.monotonic() + START_TIMEOUT_S
    got = -1
    while time.monotonic() < deadline:
        doc = _get_json(f"{server.url}/api/v1/query?{query}")
        result = doc["data"]["result"]  # type: ignore[index]
        got = sum(len(r["values"]) for r in result)
        if got == want:
            return
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"{server.kind} holds {got} of {want} samples after loading:\n{server.log_tail()}")


def utc(ms: int) -> datetime:
    """A UTC datetime from epoch milliseconds."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
