"""A real Prometheus that scrapes live /metrics endpoints on loopback (not loaded from blocks), for tests.

``start_scraping_prometheus`` writes a ``prometheus.yml`` (``static_config`` builds one with one
``static_configs`` entry per target, its labels what service-discovery relabelling would have given
it), starts ``/usr/bin/prometheus`` on 127.0.0.1 with a free port, and returns the running server;
``wait_for_scrapes`` blocks until every target was scraped successfully a number of times. The caller
stops the server (``Server.stop()``). ``tests/servers.py`` is the sibling for Prometheus and
VictoriaMetrics loaded with given samples.

Debian's Prometheus is built without Kubernetes service discovery (``kubernetes_sd_configs`` is an
unknown field there): to run Kubernetes relabel rules, give a static target the ``__meta_kubernetes_*``
labels discovery would have set; ``relabel_configs`` read them just the same.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.servers import PROMETHEUS_BIN, START_TIMEOUT_S, Server, free_port, require_binary


@dataclass(frozen=True, slots=True)
class StaticTarget:
    """One scrape target: ``host:port``, its job and the target labels it gets (``honor_labels: false``)."""

    address: str
    job: str
    labels: Mapping[str, str] = field(default_factory=dict)


def global_section(interval_s: float) -> dict[str, object]:
    """``global:`` scraping every ``interval_s`` (the timeout as long as the interval)."""
    ms = round(interval_s * 1000)
    interval = f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"
    return {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": "1m"}


def static_config(targets: Sequence[StaticTarget], *, interval_s: float) -> dict[str, object]:
    """A Prometheus configuration: one scrape job per distinct ``job``, one static_configs entry per target."""
    jobs: dict[str, list[dict[str, object]]] = {}
    for t in targets:
        jobs.setdefault(t.job, []).append({"targets": [t.address], "labels": dict(t.labels)})
    return {
        "global": global_section(interval_s),
        # honor_labels: false (the default): a page's own label colliding with a target label is
        # renamed exported_<name>, as for dcgm-exporter's workload namespace/pod/container.
        "scrape_configs": [
            {"job_name": job, "honor_labels": False, "metrics_path": "/metrics", "static_configs": configs}
            for job, configs in jobs.items()
        ],
    }


def start_scraping_prometheus(config: Mapping[str, object], workdir: Path) -> Server:
    """Start a real Prometheus with ``config`` (a prometheus.yml as a mapping); it is ready when this returns."""
    prom = require_binary(PROMETHEUS_BIN)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    port = free_port()
    log_path = workdir / "prometheus.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([
            prom, f"--config.file={path}", f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ], stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    server = Server("prometheus", f"http://127.0.0.1:{port}", workdir, proc, log_path)
    try:
        _wait_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def _get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def _query(server: Server, query: str) -> list[dict[str, object]]:
    """An instant query's result vector."""
    doc = _get_json(f"{server.url}/api/v1/query?{urllib.parse.urlencode({'query': query})}")
    return doc["data"]["result"]  # type: ignore[index,return-value]


def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"prometheus exited ({server.process.returncode}):\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"prometheus not ready within {START_TIMEOUT_S}s:\n{server.log_tail()}")


def wait_for_scrapes(server: Server, targets: int, scrapes: int, *, timeout_s: float = 30.0) -> None:
    """Wait until each of ``targets`` targets has been scraped up ``scrapes`` times (``up == 1`` samples)."""
    deadline = time.monotonic() + timeout_s
    counts: list[float] = []
    while time.monotonic() < deadline:
        # sum_over_time(up[...]) counts the successful scrapes of each target so far.
        result = _query(server, "sum_over_time(up[10m])")
        counts = [float(r["value"][1]) for r in result]  # type: ignore[index]
        if len(counts) == targets and min(counts) >= scrapes:
            return
        time.sleep(0.2)
    down = _get_json(f"{server.url}/api/v1/targets?state=active")
    errors = [t.get("lastError") for t in down["data"]["activeTargets"] if t.get("health") != "up"]  # type: ignore[index,union-attr]
    raise RuntimeError(f"{targets} targets x {scrapes} scrapes not reached in {timeout_s}s: up counts {counts}, "
                       f"errors {errors}\n{server.log_tail()}")
