"""The README's quick tour runs as written: every command of its shell block, in order, in a fresh folder.

The folder gets what a fresh clone has after set-up (``.venv`` linked, ``tests/`` linked, ``examples/``
copied so that configs resolve their relative paths inside it). ``make demo`` runs the Makefile's own
demo recipe (set-up is a prerequisite there and has already run for this suite). The one address that
is the reader's, the Prometheus at ``127.0.0.1:9090``, is a real Prometheus started here on a free port
that scrapes the simulated targets of ``examples/simulated.yaml`` with the labels service discovery
would give them.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
import yaml

from analytics.schema import ENGINE_SAMPLES, GPU_SAMPLES, REQUESTS, ROLLUPS, SCRAPES
from collectors.store.datasets import read_dataset
from tests.servers import PROMETHEUS_BIN, Server, _spawn, _wait, free_port, require_binary

pytestmark = [pytest.mark.slow, pytest.mark.realserver]

ROOT = Path(__file__).resolve().parents[2]
README_PROMETHEUS = "http://127.0.0.1:9090"
COMMAND_TIMEOUT_S = 420


def tour_block(readme: str) -> str:
    """The first ``sh`` block after the README's "## Quick tour" heading."""
    section = readme.split("## Quick tour", 1)[1]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def tour_commands(block: str) -> list[str]:
    """The block's commands: continuation lines joined, comment-only lines dropped."""
    joined = re.sub(r"[ \t]*\\\n\s*", " ", block)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def demo_recipe(makefile: str) -> tuple[list[str], list[str]]:
    """The ``demo`` target's prerequisites and recipe lines."""
    m = re.search(r"^demo:([^\n]*)\n((?:\t[^\n]*\n)+)", makefile, flags=re.MULTILINE)
    assert m, "the Makefile has a demo target"
    return m.group(1).split(), [line.strip() for line in m.group(2).splitlines()]


def test_the_tour_block_is_read_as_the_shell_would() -> None:
    block = "a --x 1 \\\n    --y 2   # note\n# only a comment\nb &\n"
    assert tour_commands(block) == ["a --x 1 --y 2   # note", "b &"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder laid out like a fresh clone after set-up."""
    wd = tmp_path_factory.mktemp("tour")
    (wd / ".venv").symlink_to(ROOT / ".venv", target_is_directory=True)
    (wd / "tests").symlink_to(ROOT / "tests", target_is_directory=True)
    shutil.copytree(ROOT / "examples", wd / "examples")
    return wd


@pytest.fixture(scope="module")
def prometheus(workdir: Path) -> Iterator[Server]:
    """A real Prometheus scraping every target of examples/simulated.yaml each second, with its labels."""
    prom = require_binary(PROMETHEUS_BIN)
    targets = yaml.safe_load((workdir / "examples" / "simulated.yaml").read_text())["collect"]["targets"]
    jobs: dict[str, list[dict[str, object]]] = {}
    for t in targets:
        host = t["url"].split("//", 1)[1].split("/", 1)[0]
        jobs.setdefault(t["format"], []).append({"targets": [host], "labels": dict(t.get("labels", {}))})
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [{"job_name": job, "static_configs": static} for job, static in jobs.items()],
    }
    home = workdir.parent / f"{workdir.name}-prometheus"
    home.mkdir()
    (home / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    server = _spawn("prometheus", [
        prom, f"--config.file={home / 'prometheus.yml'}", f"--storage.tsdb.path={home / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ], home, f"http://127.0.0.1:{port}")
    try:
        _wait(server, f"{server.url}/-/ready", "ready")
        yield server
    finally:
        server.stop()


def _run(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT_S, check=False)


def test_every_quick_tour_command_runs_as_written(workdir: Path, prometheus: Server) -> None:
    prereqs, recipe = demo_recipe((ROOT / "Makefile").read_text())
    assert "setup" in prereqs, "make demo sets everything up first"
    commands = tour_commands(tour_block((ROOT / "README.md").read_text()))
    assert commands[0].split("#")[0].strip() == "make demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETLENS_")}
    background: list[subprocess.Popen[str]] = []
    ran: list[str] = []
    try:
        for command in [*recipe, *commands[1:]]:
            words = shlex.split(command, comments=True)
            command = command.replace(README_PROMETHEUS, prometheus.url)
            if words and words[-1] == "&":
                proc = subprocess.Popen(["bash", "-c", command.rsplit("&", 1)[0]], cwd=workdir, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                background.append(proc)
                _wait_for_line(proc, "serving on", command)
                ran.append(command)
                continue
            done = _run(command, workdir, env)
            assert done.returncode == 0, f"{command}\nexit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            assert "Traceback" not in done.stderr, f"{command}\n{done.stderr[-3000:]}"
            ran.append(command)
    finally:
        for proc in background:
            proc.terminate()
            proc.wait(timeout=30)
    assert len(ran) == len(recipe) + len(commands) - 1
    _check_what_the_tour_wrote(workdir)


def _wait_for_line(proc: subprocess.Popen[str], needle: str, command: str) -> None:
    deadline = time.monotonic() + 60
    seen: list[str] = []
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if needle in line:
            return
    pytest.fail(f"{command}: never printed {needle!r}:\n{''.join(seen)[-3000:]}")


def _check_what_the_tour_wrote(wd: Path) -> None:
    demo = wd / "demo-data"
    assert read_dataset(demo, REQUESTS).select(pl.len()).collect().item() > 10_000
    assert read_dataset(demo, ROLLUPS).select(pl.len()).collect().item() > 0
    short = read_dataset(wd / "demo-short", ENGINE_SAMPLES).collect()
    assert short.height > 0 and short.get_column("model_version").null_count() == 0
    scrapes = read_dataset(demo, SCRAPES).collect()
    tour = scrapes.filter(pl.col("target").str.contains("//127.0.0.1:194", literal=True) & pl.col("up"))
    assert tour.height >= 4 * 11, "4 rounds of the 11 targets of examples/simulated.yaml, all up"
    prom = wd / "prom-data"
    engine = read_dataset(prom, ENGINE_SAMPLES).collect()
    gpu = read_dataset(prom, GPU_SAMPLES).collect()
    assert engine.height > 0 and gpu.height > 0, "the Prometheus held what it scraped"
    assert engine.get_column("model_version").null_count() == 0, "version keys come back through Prometheus"
