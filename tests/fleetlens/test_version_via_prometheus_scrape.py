"""One version key on every path: a real Prometheus *scrapes* the simulated fleet through the relabel
rules of docs/prometheus-relabel.md, and `fleetlens collect --prometheus`, without any pod list, keys
every engine row on the serving pod's revision, exactly as a direct scrape attributed with the pod list.

Debian's Prometheus has no Kubernetes service discovery, so each target is a static one carrying the
``__meta_kubernetes_*`` labels pod discovery would give it; the documented ``relabel_configs`` run on
them unchanged (only the ``cluster`` replacement is set to the simulated cluster's name).
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from analytics.schema import ENGINE_SAMPLES, GPU_SAMPLES
from collectors.kube.pod_model import template_hash_from_name
from collectors.store.datasets import read_dataset
from fleetlens.cli import main
from fleetlens.config import load_config
from simulator import Simulation, build_fleet_spec, default_fleet_spec
from simulator.config import EngineKind
from simulator.fleet import Pod
from tests.prometheus_scrape import (
    StaticTarget,
    global_section,
    start_scraping_prometheus,
    static_config,
    wait_for_scrapes,
)
from tests.servers import require_binary

pytestmark = pytest.mark.realserver

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "prometheus-relabel.md"
EXAMPLE = ROOT / "examples" / "prometheus-simulated.yml"
SCRAPES = 3
# How each engine pod's revision reaches Prometheus, cycled per engine kind so every kind sees several:
# the Argo Rollouts hash label, the Deployment hash label, or nothing but the pod's name.
MODES = ("name", "rollouts_pod_template_hash", "pod_template_hash")
INFERENCE_JOB, DCGM_JOB = "inference-pods", "dcgm-exporter"


@dataclass(frozen=True)
class Paths:
    """What both collections stored, and the simulated fleet they came from."""

    via_prometheus: Path
    direct: Path
    pods: dict[str, tuple[str, str, str | None]]  # pod name -> (namespace, template hash, engine kind)
    modes: dict[str, str]  # engine pod name -> how its revision was given to Prometheus
    canary: tuple[str, str, str]  # (model, baseline hash, canary hash)
    relabelled: list[dict[str, str]]  # each target's labels after Prometheus ran the documented rules
    expected_labels: list[dict[str, str]]  # each target's labels as relabelled() says they are


def doc_jobs() -> dict[str, dict[str, Any]]:
    """The scrape jobs of docs/prometheus-relabel.md, by name."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    return {job["job_name"]: job for job in yaml.safe_load("".join(blocks))["scrape_configs"]}


def discovered(pod: Pod, port: int, mode: str | None) -> dict[str, str]:
    """The ``__meta_kubernetes_*`` labels Kubernetes pod discovery gives the pod's metrics port."""
    meta = {
        "__meta_kubernetes_namespace": pod.namespace,
        "__meta_kubernetes_pod_name": pod.name,
        "__meta_kubernetes_pod_container_name": pod.container,
        "__meta_kubernetes_pod_node_name": pod.node,
        "__meta_kubernetes_pod_container_port_name": "metrics",
        "__meta_kubernetes_pod_container_port_number": str(port),
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": pod.app,
    }
    if pod.engine is not None:
        meta["__meta_kubernetes_pod_annotation_prometheus_io_scrape"] = "true"
        meta["__meta_kubernetes_pod_annotation_prometheus_io_port"] = str(port)
        if mode is not None and mode != "name":
            meta[f"__meta_kubernetes_pod_label_{mode}"] = pod.template_hash
    return meta


def documented_config(sim: Simulation, modes: Callable[[Pod], str], *, interval_s: float) -> dict[str, Any]:
    """The documented scrape jobs, discovering the simulator's live targets as static ones."""
    jobs = doc_jobs()
    static: dict[str, list[dict[str, Any]]] = {INFERENCE_JOB: [], DCGM_JOB: []}
    for tid in sim.target_ids():
        pod, port = sim.pods[tid], sim.ports[tid]
        job = DCGM_JOB if pod.engine is None else INFERENCE_JOB
        static[job].append({"targets": [f"127.0.0.1:{port}"],
                            "labels": discovered(pod, port, modes(pod) if pod.engine else None)})
    scrape_configs = []
    for name, configs in static.items():
        job = {k: v for k, v in jobs[name].items() if k != "kubernetes_sd_configs"}
        job["static_configs"] = configs
        job["relabel_configs"] = [{**r, "replacement": sim.spec.cluster} if r.get("target_label") == "cluster" else r
                                  for r in job["relabel_configs"]]
        scrape_configs.append(job)
    return {"global": global_section(interval_s), "scrape_configs": scrape_configs}


def relabelled(sim: Simulation, *, modes: Callable[[Pod], str], live: bool = True) -> list[StaticTarget]:
    """The simulator's targets (``live``: those whose pod exists now) with the labels the relabel rules of
    docs/prometheus-relabel.md give their pods; ``modes(pod)`` names the hash label an engine pod gets
    (``"name"``: none, its revision is only in its name)."""
    out = []
    live_ids = set(sim.target_ids())
    for tid, pod in sim.pods.items():
        if live and tid not in live_ids:
            continue
        labels = {"namespace": pod.namespace, "pod": pod.name, "container": pod.container, "node": pod.node,
                  "cluster": sim.spec.cluster}
        job = DCGM_JOB if pod.engine is None else INFERENCE_JOB
        if pod.engine is not None and (mode := modes(pod)) != "name":
            labels[mode] = pod.template_hash
        out.append(StaticTarget(f"127.0.0.1:{sim.ports[tid]}", job, labels))
    return out


def _cycled_modes() -> tuple[Callable[[Pod], str], dict[str, str]]:
    """A ``modes`` function cycling MODES per engine kind, and the record of what each pod got."""
    cycles = {kind: itertools.cycle(MODES) for kind in EngineKind}
    given: dict[str, str] = {}

    def mode(pod: Pod) -> str:
        assert pod.engine is not None
        given[pod.name] = given.get(pod.name) or next(cycles[pod.engine])
        return given[pod.name]

    return mode, given


def _active_target_labels(url: str) -> list[dict[str, str]]:
    with urllib.request.urlopen(f"{url}/api/v1/targets?state=active", timeout=5) as r:
        doc = json.loads(r.read())
    return [t["labels"] for t in doc["data"]["activeTargets"]]


def _by_instance(labels: list[dict[str, str]]) -> list[dict[str, str]]:
    return sorted(labels, key=lambda d: d.get("instance", ""))


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Paths]:
    spec = default_fleet_spec()
    assert spec.canary is not None
    tmp = tmp_path_factory.mktemp("version-keys")
    with Simulation(spec, manual=True) as sim:
        # Both revisions of the canary model serve from here on.
        sim.advance_to(spec.canary.start_s + 60)
        mode, modes = _cycled_modes()
        config = documented_config(sim, mode, interval_s=1.0)
        expected = [{**t.labels, "instance": t.address, "job": t.job} for t in relabelled(sim, modes=mode)]
        start = datetime.now(UTC) - timedelta(seconds=1)
        prometheus = start_scraping_prometheus(config, tmp / "prometheus")
        try:
            wait_for_scrapes(prometheus, len(expected), SCRAPES)
            end = datetime.now(UTC) + timedelta(seconds=1)
            target_labels = _active_target_labels(prometheus.url)
            via_prometheus = tmp / "via-prometheus"
            assert main(["collect", "--prometheus", prometheus.url, "--data-dir", str(via_prometheus),
                         "--start", start.isoformat(), "--end", end.isoformat()]) == 0
        finally:
            prometheus.stop()
        # The direct scrape of the same (unchanged, manual-clock) fleet, attributed with the pod list.
        sim.write_kubernetes(tmp / "kubernetes.json")
        direct_config = tmp / "direct.yaml"
        direct_config.write_text(json.dumps({
            "cluster": spec.cluster,
            "collect": {"targets": [{"format": str(t.format), "url": t.url} for t in sim.targets()]},
        }))
        direct = tmp / "direct"
        assert main(["collect", "--config", str(direct_config), "--pod-list", str(tmp / "kubernetes.json"),
                     "--rounds", "1", "--data-dir", str(direct)]) == 0
        pods = {p.name: (p.namespace, p.template_hash, p.engine.value if p.engine else None)
                for p in sim.pods.values()}
        hashes = {p.variant.value: p.template_hash for p in sim.pods.values()
                  if p.model is not None and p.model.name == spec.canary.model}
    yield Paths(via_prometheus, direct, pods, modes, (spec.canary.model, hashes["baseline"], hashes["canary"]),
                _by_instance(target_labels), _by_instance(expected))


def test_the_documented_relabel_rules_give_the_expected_target_labels(paths: Paths) -> None:
    assert paths.relabelled == paths.expected_labels


def _engine(root: Path) -> pl.DataFrame:
    return read_dataset(root, ENGINE_SAMPLES).collect()


def test_every_vllm_and_triton_row_carries_the_serving_pods_hash(paths: Paths) -> None:
    rows = _engine(paths.via_prometheus)
    assert set(rows["engine"].unique()) == {"vllm", "triton"}
    expected = pl.Series([paths.pods[p][1] for p in rows["pod"]], dtype=pl.Utf8)
    assert rows["model_version"].null_count() == 0
    assert (rows["model_version"] == expected).all(), rows.filter(rows["model_version"] != expected)
    # Every way of giving the revision was exercised, the pod's name alone included.
    served = set(rows["pod"])
    assert {paths.modes[p] for p in served} == set(MODES)
    assert all(template_hash_from_name(p) == paths.pods[p][1] for p in served)


def test_both_versions_of_the_canary_model_appear(paths: Paths) -> None:
    model, baseline, canary = paths.canary
    rows = _engine(paths.via_prometheus).filter(pl.col("model") == model)
    assert set(rows["model_version"]) == {baseline, canary}


def test_triton_rows_never_carry_the_repository_version(paths: Paths) -> None:
    triton = _engine(paths.via_prometheus).filter(pl.col("engine") == "triton")
    assert triton.height > 0
    repository = triton["replica"].str.split("/").list.first()
    assert set(repository) == {"1"}  # kept beside the key, in the replica
    assert not (triton["model_version"] == repository).any()
    assert set(triton["model_version"]) == {paths.pods[p][1] for p in triton["pod"]}


def test_gpu_rows_belong_to_the_pods_tenants(paths: Paths) -> None:
    gpu = read_dataset(paths.via_prometheus, GPU_SAMPLES).collect()
    held = gpu.filter(pl.col("pod").is_not_null())
    assert held.height > 0
    assert held["tenant"].to_list() == [paths.pods[p][0] for p in held["pod"]]
    assert "gpu-operator" not in set(gpu["tenant"].drop_nulls())  # the exporter's own namespace never
    keys = ["gpu_uuid", "mig_instance", "tenant", "pod", "container", "pod_share"]
    direct = read_dataset(paths.direct, GPU_SAMPLES).collect()
    assert gpu.select(keys).unique().sort(keys, nulls_last=True).equals(
        direct.select(keys).unique().sort(keys, nulls_last=True))


def test_the_same_keys_as_a_direct_scrape_with_the_pod_list(paths: Paths) -> None:
    keys = ["cluster", "tenant", "pod", "instance", "engine", "model", "model_version", "replica"]
    via = _engine(paths.via_prometheus).select(keys).unique().sort(keys)
    direct = _engine(paths.direct).select(keys).unique().sort(keys)
    assert via.select("tenant", "model", "model_version").unique().height >= 8
    assert via.equals(direct), (via, direct)


def test_the_simulated_example_is_what_the_relabel_rules_give_every_simulated_pod() -> None:
    """examples/prometheus-simulated.yml: the simulator's targets (canary included), each with the
    labels the documented rules give it (Argo Rollouts pods: the rollouts hash label), valid for promtool."""
    cfg = load_config(ROOT / "examples" / "simulated.yaml")
    assert cfg.simulator is not None
    sim = Simulation(build_fleet_spec(dict(cfg.simulator)))
    targets = relabelled(sim, modes=lambda _pod: "rollouts_pod_template_hash", live=False)
    assert yaml.safe_load(EXAMPLE.read_text()) == static_config(targets, interval_s=5.0)
    checked = subprocess.run([require_binary("promtool"), "check", "config", str(EXAMPLE)],
                             capture_output=True, text=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
