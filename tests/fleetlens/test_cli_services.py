"""`fleetlens simulate` as a real process, and `fleetlens collect` scraping it with pod-list attribution."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import polars as pl
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from analytics.schema import ENGINE_SAMPLES, GPU_SAMPLES, SCRAPES
from collectors.store.datasets import read_dataset
from fleetlens.cli import main
from simulator import Simulation, build_fleet_spec

ROOT = Path(__file__).resolve().parents[2]
URL = re.compile(r"http://127\.0\.0\.1:\d+/metrics")


def test_simulate_serves_real_metrics_pages_and_stops_by_itself(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleetlens.cli", "simulate", "--duration", "4", "--speed", "600",
         "--write-files", str(tmp_path / "raw")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("serving on"):
                break
        urls = [m.group(0) for line in lines if (m := URL.search(line))]
        assert len(urls) >= 5, "".join(lines)
        for url in urls:
            page = httpx.get(url, timeout=5).text
            assert sum(1 for _ in text_string_to_metric_families(page)) > 0, url
        assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        proc.kill()
    assert (tmp_path / "raw" / "kubernetes.json").stat().st_size > 0


def test_collect_scrapes_configured_targets_and_attributes_them_from_the_pod_list(tmp_path: Path) -> None:
    spec = build_fleet_spec({"speed": 60})
    with Simulation(spec) as sim:
        sim.sync()
        pods = tmp_path / "pods.json"
        pods.write_text(json.dumps(sim.pods_json()))
        engines = [t for t in sim.targets() if t.format.value != "dcgm"]
        # Only URLs in the config: namespace, pod and version must come from the pod list.
        config = {
            "cluster": "lab",
            "data_dir": str(tmp_path / "data"),
            "collect": {
                "interval_s": 1, "timeout_s": 1,
                "kubernetes": {"pod_list": str(pods)},
                "targets": [{"format": t.format.value, "url": t.url} for t in engines]
                + [{"format": "dcgm", "url": t.url, "labels": {"node": t.labels["node"]}}
                   for t in sim.targets() if t.format.value == "dcgm"],
            },
        }
        path = tmp_path / "fleetlens.yaml"
        path.write_text(yaml.safe_dump(config))
        assert main(["collect", "--config", str(path), "--rounds", "2"]) == 0
    engine = read_dataset(tmp_path / "data", ENGINE_SAMPLES).collect()
    # The pod's revision is every engine's model_version (Triton's repository version goes to replica).
    want = {(t.labels["namespace"], t.labels["pod"], t.labels["model_version"]) for t in engines}
    got = set(engine.select("tenant", "pod", "model_version").unique().iter_rows())
    assert got == want
    assert set(engine.get_column("cluster").unique()) == {"lab"}
    scrapes = read_dataset(tmp_path / "data", SCRAPES).collect()
    assert scrapes.height == 2 * len(config["collect"]["targets"]) and scrapes.get_column("up").all()
    gpu = read_dataset(tmp_path / "data", GPU_SAMPLES).collect()
    assert gpu.filter(pl.col("tenant").is_not_null()).height > 0


def test_collect_reports_a_down_target_and_keeps_the_others(tmp_path: Path) -> None:
    with Simulation(build_fleet_spec({"speed": 60})) as sim:
        sim.sync()
        good = sim.targets()[0]
        config = {
            "data_dir": str(tmp_path / "data"),
            "collect": {"interval_s": 1, "timeout_s": 1, "retries": 0, "targets": [
                {"format": good.format.value, "url": good.url, "labels": dict(good.labels)},
                {"format": "vllm", "url": "http://127.0.0.1:9/metrics", "labels": {"namespace": "team-x"}},
            ]},
        }
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(config))
        assert main(["collect", "--config", str(path)]) == 0
    scrapes = read_dataset(tmp_path / "data", SCRAPES).collect().sort("up")
    assert scrapes.get_column("up").to_list() == [False, True]
    assert scrapes.get_column("error")[0]


@pytest.mark.parametrize("bad, key", [
    pytest.param({"collect": {"targets": [{"format": "vllm", "url": "ftp://x/metrics"}]}}, "collect.targets[0].url",
                 id="a non-http target URL names its key"),
    pytest.param({"collect": {"interval": 5}}, "collect.interval", id="a misspelt key is named"),
    pytest.param({"simulator": {"canary": {"weight_steps": [50, 10]}}}, "simulator.canary.weight_steps",
                 id="a bad simulator setting names its key"),
])
def test_bad_config_is_an_error_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               bad: dict, key: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(bad))
    command = ["demo", "--minutes", "0.1", "--data-dir", str(tmp_path / "d")] if "simulator" in bad else ["collect"]
    assert main([*command, "--config", str(path)]) == 2
    assert key in capsys.readouterr().err


def test_ingest_reads_every_file_stream_and_names_each_bad_line(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import timedelta

    from analytics.schema import ALLOCATIONS, DEPLOYMENTS, INVENTORY, REQUESTS
    from fleetlens.demo import write_sim_files

    spec = build_fleet_spec({})
    assert spec.canary is not None
    with Simulation(spec, manual=True) as sim:
        sim.advance_to(spec.canary.start_s + 120)
        write_sim_files(sim, tmp_path / "raw", spec.start, sim.now)
    log = tmp_path / "raw" / "requests.jsonl"
    good = sum(1 for _ in log.open())
    with log.open("a") as f:
        f.write('{"start_time": "not a time"\n')
    assert main(["ingest", "--data-dir", str(tmp_path / "data"), "--gateway-log", str(log),
                 "--otlp", str(tmp_path / "raw" / "traces.jsonl"), "--events", str(tmp_path / "raw" / "events.json"),
                 "--kubernetes", str(tmp_path / "raw" / "kubernetes.json"),
                 "--at", (spec.start + timedelta(minutes=7)).isoformat()]) == 0
    err = capsys.readouterr().err
    assert f"{log}:{good + 1}:" in err
    requests = read_dataset(tmp_path / "data", REQUESTS).collect()
    assert requests.height == good  # OTLP spans of the same requests merge into their gateway rows by id
    assert read_dataset(tmp_path / "data", ALLOCATIONS).collect().height > 0
    assert read_dataset(tmp_path / "data", INVENTORY).collect().height == len(spec.nodes)
    actions = set(read_dataset(tmp_path / "data", DEPLOYMENTS).collect().get_column("action"))
    assert {"started", "weight"} <= actions or {"started", "step"} <= actions
