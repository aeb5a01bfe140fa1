"""GPU allocations and node inventory from pod and node lists: simulator, upstream, documented formats."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.errors import InputError
from analytics.schema import ALLOCATIONS, INVENTORY
from collectors.kube.allocations import parse_allocations
from collectors.kube.mig_profiles import MIG_GPUS
from collectors.kube.nodes import parse_inventory, parse_nodes
from simulator import Simulation
from simulator.config import MIG_MEMORY_MIB

FIXTURES = Path(__file__).parents[2] / "fixtures"
UPSTREAM_POD: dict[str, Any] = json.loads((FIXTURES / "upstream/kubernetes/core.v1.Pod.json").read_text())
UPSTREAM_NODE: dict[str, Any] = json.loads((FIXTURES / "upstream/kubernetes/core.v1.Node.json").read_text())
SHARING: dict[str, Any] = json.loads((FIXTURES / "kube/sharing-nodes-and-pods.json").read_text())
TS = datetime(2025, 6, 2, 8, 10, tzinfo=UTC)
MIB = 2**20
# A100/H100 GPUs have 7 MIG compute slices (NVIDIA MIG user guide); a "<C>g.<M>gb" profile takes C.
SLICES = 7


def doc_of(*items: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "items": list(items)}


def pod(
    name: str,
    node: str | None = "n1",
    *,
    ns: str = "team-a",
    limits: dict[str, str] | None = None,
    requests: dict[str, str] | None = None,
    phase: str = "Running",
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    init: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    res: dict[str, Any] = {}
    if limits is not None:
        res["limits"] = limits
    if requests is not None:
        res["requests"] = requests
    spec: dict[str, Any] = {"containers": [{"name": "main", "resources": res}]}
    if node:
        spec["nodeName"] = node
    if init is not None:
        spec["initContainers"] = init
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}, "annotations": annotations or {}},
        "spec": spec,
        "status": {"phase": phase},
    }


def node(
    name: str = "n1", *, labels: dict[str, str] | None = None, capacity: dict[str, str] | None = None
) -> dict[str, Any]:
    base = {
        "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
        "nvidia.com/gpu.count": "8",
        "nvidia.com/gpu.memory": "81559",
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {**base, **(labels or {})}},
        "status": {"capacity": capacity or {"cpu": "8", "nvidia.com/gpu": "8"}},
    }


def rows_by_pod(frame: pl.DataFrame) -> dict[str, dict[str, Any]]:
    return {r["pod"]: r for r in frame.iter_rows(named=True)}


# ----------------------------------------------------------------------------- the simulator


@pytest.fixture(scope="module")
def simulated() -> tuple[Simulation, dict[str, Any]]:
    with Simulation(manual=True) as sim:
        sim.advance_to(600)  # after the canary started
        pods, nodes = sim.pods_json(), sim.nodes_json()
        return sim, {**pods, "items": pods["items"] + nodes["items"]}


def test_simulated_allocations_match_the_simulated_placement_exactly(
    simulated: tuple[Simulation, dict],
) -> None:
    sim, doc = simulated
    batch = parse_allocations(doc, source="kube.json", ts=TS, cluster="sim")
    assert batch.issues == ()
    expected = set()
    for p in sim.fleet.engine_pods:
        if not sim.state.exists(p):
            continue
        g = p.grants[0]
        if g.mig_instance is not None:
            profile = g.gpu.mig_profiles[g.mig_instance]
            expected.add(
                (
                    p.node,
                    p.namespace,
                    p.name,
                    "mig",
                    profile,
                    Fraction(int(profile[0]), SLICES),
                    MIG_MEMORY_MIB[profile] * MIB,
                )
            )
        elif g.fraction is not None:
            expected.add(
                (
                    p.node,
                    p.namespace,
                    p.name,
                    "fraction",
                    None,
                    Fraction(str(g.fraction)),
                    g.fraction * g.gpu.product.memory_mib * MIB,
                )
            )
        else:
            expected.add(
                (
                    p.node,
                    p.namespace,
                    p.name,
                    "whole",
                    None,
                    Fraction(len(p.grants)),
                    len(p.grants) * g.gpu.product.memory_mib * MIB,
                )
            )
    got = {
        (
            r["node"],
            r["tenant"],
            r["pod"],
            r["kind"],
            r["mig_profile"],
            Fraction(r["gpu_fraction"]).limit_denominator(1000),
            r["gpu_memory_bytes"],
        )
        for r in batch.frame.iter_rows(named=True)
    }
    assert got == expected
    assert batch.frame.height == len(expected)
    assert batch.frame["gpu_uuid"].null_count() == batch.frame.height
    assert set(batch.frame["ts"].to_list()) == {TS} and set(batch.frame["cluster"]) == {"sim"}


def test_simulated_allocations_sum_to_the_gpus_each_pod_holds(simulated: tuple[Simulation, dict]) -> None:
    sim, doc = simulated
    frame = parse_allocations(doc, source="kube.json", ts=TS, cluster="sim").frame
    held = frame.group_by("pod").agg(pl.col("gpu_fraction").sum())
    by_pod = dict(held.iter_rows())
    seventy = next(p for p in sim.fleet.engine_pods if p.model and p.model.size_class == "70B")
    assert by_pod[seventy.name] == len(seventy.grants) == 4  # TP=4 on four whole GPUs
    # The shared A100 GPU (two 0.5 fractions) and the MIG GPU never exceed one GPU.
    shared = frame.filter(pl.col("kind") == "fraction")["gpu_fraction"].sum()
    mig = frame.filter(pl.col("kind") == "mig")["gpu_fraction"].sum()
    assert shared == pytest.approx(1.0) and 0 < mig <= 1


def test_simulated_inventory_lists_every_node_including_the_cpu_only_one(
    simulated: tuple[Simulation, dict],
) -> None:
    sim, doc = simulated
    inv = parse_inventory(doc, source="kube.json", ts=TS, cluster="sim")
    assert inv.schema == INVENTORY.schema
    rows = {r["node"]: r for r in inv.iter_rows(named=True)}
    assert set(rows) == {n.name for n in sim.spec.nodes}
    for spec in sim.spec.nodes:
        r = rows[spec.name]
        gpus = [g for g in sim.fleet.gpus if g.node == spec.name]
        assert r["gpu_count"] == spec.gpu_count == len(gpus)
        assert r["cpu_milli"] == spec.cpu * 1000
        if gpus:
            assert r["gpu_model"] == gpus[0].product.label
            assert r["gpu_memory_bytes"] == gpus[0].product.memory_mib * MIB
        else:
            assert r["gpu_model"] is None and r["gpu_memory_bytes"] is None
        counts: dict[str, int] = {}
        for g in gpus:
            for prof in g.mig_profiles:
                counts[prof] = counts.get(prof, 0) + 1
        layout = ",".join(f"{k}:{v}" for k, v in sorted(counts.items())) or None
        assert r["mig_layout"] == layout


@pytest.mark.parametrize(
    "drop_count_label",
    [
        pytest.param(False, id="from the gpu.count label"),
        pytest.param(True, id="from capacity when the label is missing"),
    ],
)
def test_a_mig_node_counts_its_physical_gpus(
    simulated: tuple[Simulation, dict], drop_count_label: bool
) -> None:
    sim, doc = simulated
    items = [copy.deepcopy(i) for i in doc["items"] if i["kind"] == "Node"]
    if drop_count_label:
        for i in items:
            i["metadata"]["labels"].pop("nvidia.com/gpu.count", None)
    index = parse_nodes(doc_of(*items), source="nodes.json")
    a100 = next(n for n in sim.spec.nodes if n.mig)
    assert index.nodes[a100.name].gpu_count == a100.gpu_count


# ----------------------------------------------------------------------------- documented formats


def test_time_slicing_mps_mig_single_and_runai_fractions_follow_their_documented_meaning() -> None:
    batch = parse_allocations(SHARING, source="sharing.json", ts=TS, cluster="c")
    rows = rows_by_pod(batch.frame)
    expect = {
        "ts-pod": ("timeslice", None, Fraction(1, 4), None),
        "shared-pod": ("timeslice", None, Fraction(1, 4), None),
        "mps-pod": ("fraction", None, Fraction(1, 4), 15360 / 4 * MIB),
        "mig-single-pod": ("mig", "1g.5gb", Fraction(2, SLICES), 2 * 5120 * MIB),
        "multi-fractional-pod-job": ("fraction", None, Fraction(1), 81559 * MIB),
        "gpu-memory-pod": ("fraction", None, Fraction(20000, 81559), 20000 * MIB),
    }
    assert set(rows) == set(expect)
    for name, (kind, profile, fraction, memory) in expect.items():
        r = rows[name]
        assert (r["kind"], r["mig_profile"]) == (kind, profile), name
        assert r["gpu_fraction"] == pytest.approx(float(fraction), rel=1e-12), name
        assert r["gpu_memory_bytes"] == (pytest.approx(memory) if memory is not None else None), name
    assert (rows["ts-pod"]["priority"], rows["ts-pod"]["queue"]) == (1000, "user-queue")
    assert rows["multi-fractional-pod-job"]["queue"] == "test"
    assert batch.pod_groups == {("test", "gpu-memory-pod"): "pg-gpu-memory-pod-1"}


def test_sharing_nodes_report_physical_gpus_pool_and_cost_class() -> None:
    inv = {
        r["node"]: r
        for r in parse_inventory(SHARING, source="s.json", ts=TS, cluster="c").iter_rows(named=True)
    }
    assert {n: (r["gpu_count"], r["gpu_model"]) for n, r in inv.items()} == {
        "t4-timeslice": (4, "Tesla-T4"),
        "t4-renamed": (4, "Tesla-T4"),
        "t4-mps": (4, "Tesla-T4"),
        "a100-mig-single": (8, "A100-SXM4-40GB"),
        "h100-runai": (8, "NVIDIA-H100-80GB-HBM3"),
    }
    assert (
        inv["t4-timeslice"]["pool"],
        inv["t4-timeslice"]["cost_class"],
        inv["t4-timeslice"]["cpu_milli"],
    ) == ("t4-shared", "g4dn.12xlarge", 47810)
    single = inv["a100-mig-single"]
    assert (single["pool"], single["cost_class"], single["mig_layout"]) == (
        "mig-pool",
        "reserved-a100",
        "1g.5gb:56",
    )
    assert single["gpu_memory_bytes"] == 8 * 5120 * MIB  # eight 5 GB memory slices of an A100-40GB
    assert inv["h100-runai"]["pool"] == "h100-pool"


def test_a_time_sliced_node_without_the_count_label_divides_capacity_by_replicas() -> None:
    item = copy.deepcopy(SHARING["items"][0])
    del item["metadata"]["labels"]["nvidia.com/gpu.count"]
    assert parse_nodes(doc_of(item), source="n.json").nodes["t4-timeslice"].gpu_count == 4


# ----------------------------------------------------------------------------- upstream shapes


def test_the_upstream_pod_shape_parses_and_its_placeholders_are_reported() -> None:
    item = copy.deepcopy(UPSTREAM_POD)
    as_is = parse_allocations(doc_of(copy.deepcopy(UPSTREAM_POD)), source="pods.json", ts=TS, cluster="c")
    assert as_is.frame.height == 0 and as_is.issues == ()  # phase "phaseValue" does not hold devices
    item["status"]["phase"] = "Running"
    item["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = "2"
    batch = parse_allocations(doc_of(item), source="pods.json", ts=TS, cluster="c")
    assert batch.frame.height == 0
    (issue,) = batch.issues
    assert (issue.source, issue.item, issue.name) == ("pods.json", 0, "namespaceValue/nameValue")
    assert "skipped: tenant 'namespaceValue' is not an RFC 1123 label" in str(issue)
    item["metadata"]["namespace"] = "team-a"
    (row,) = parse_allocations(doc_of(item), source="pods.json", ts=TS, cluster="c").frame.iter_rows(
        named=True
    )
    assert (row["pod"], row["node"], row["kind"], row["gpu_fraction"], row["priority"]) == (
        UPSTREAM_POD["metadata"]["name"],
        UPSTREAM_POD["spec"]["nodeName"],
        "whole",
        2.0,
        UPSTREAM_POD["spec"]["priority"],
    )


def test_the_upstream_node_shape_becomes_a_gpu_less_inventory_row() -> None:
    index = parse_nodes(doc_of(copy.deepcopy(UPSTREAM_NODE)), source="nodes.json")
    inv = parse_inventory(doc_of(copy.deepcopy(UPSTREAM_NODE)), source="nodes.json", ts=TS, cluster="c")
    (row,) = inv.iter_rows(named=True)
    assert (row["node"], row["gpu_count"], row["gpu_model"], row["cpu_milli"], row["mig_layout"]) == (
        UPSTREAM_NODE["metadata"]["name"],
        0,
        None,
        None,
        None,
    )
    assert index.issues == ()


# ----------------------------------------------------------------------------- Kubernetes resource rules


@pytest.mark.parametrize(
    ("resources", "gpus", "note"),
    [
        pytest.param({"limits": {"nvidia.com/gpu": "2"}}, 2, None, id="limits alone"),
        pytest.param({"requests": {"nvidia.com/gpu": "3"}}, 3, None, id="requests alone"),
        pytest.param(
            {"limits": {"nvidia.com/gpu": "2"}, "requests": {"nvidia.com/gpu": "1"}},
            2,
            "request 1 differs from limit 2; took the limit",
            id="unequal requests and limits take limits",
        ),
    ],
)
def test_extended_resources_take_limits_else_requests(resources: dict, gpus: int, note: str | None) -> None:
    p = pod("p", limits=resources.get("limits"), requests=resources.get("requests"))
    batch = parse_allocations(doc_of(node(), p), source="k.json", ts=TS, cluster="c")
    assert batch.frame["gpu_fraction"].to_list() == [gpus]
    assert [i.reason for i in batch.issues if note and note in i.reason] == (
        [] if note is None else [f"container 'main': nvidia.com/gpu {note}"]
    )


def test_init_containers_and_sidecars_count_by_the_effective_request_rule() -> None:
    init = [
        {"name": "sidecar", "restartPolicy": "Always", "resources": {"limits": {"nvidia.com/gpu": "1"}}},
        {"name": "warmup", "resources": {"limits": {"nvidia.com/gpu": "4"}}},
    ]
    p = pod("p", limits={"nvidia.com/gpu": "2"}, init=init)
    frame = parse_allocations(doc_of(node(), p), source="k.json", ts=TS, cluster="c").frame
    # max(app 2 + sidecar 1, warm-up 4 + the sidecar started before it 1) = 5
    assert frame["gpu_fraction"].to_list() == [5.0]


@pytest.mark.parametrize("phase", ["Pending", "Succeeded", "Failed"])
def test_pods_that_do_not_run_hold_nothing(phase: str) -> None:
    p = pod("p", limits={"nvidia.com/gpu": "1"}, phase=phase)
    batch = parse_allocations(doc_of(node(), p), source="k.json", ts=TS, cluster="c")
    assert batch.frame.height == 0 and batch.issues == ()


def test_a_pod_on_an_unlisted_node_is_kept_as_whole_gpus_and_noted() -> None:
    batch = parse_allocations(
        doc_of(node("n1"), pod("p", "elsewhere", limits={"nvidia.com/gpu": "1"})),
        source="k.json",
        ts=TS,
        cluster="c",
    )
    assert batch.frame["kind"].to_list() == ["whole"]
    assert any("node 'elsewhere' is not in the node list" in str(i) for i in batch.issues)


def test_a_pod_holding_two_mig_profiles_gets_a_row_per_profile() -> None:
    p = pod("p", limits={"nvidia.com/mig-1g.10gb": "2", "nvidia.com/mig-3g.40gb": "1"})
    n = node(
        labels={"nvidia.com/mig.strategy": "mixed", "nvidia.com/mig-1g.10gb.memory": "9984"},
        capacity={"nvidia.com/mig-1g.10gb": "7", "nvidia.com/mig-3g.40gb": "2"},
    )
    rows = parse_allocations(doc_of(n, p), source="k.json", ts=TS, cluster="c").frame.sort("mig_profile")
    assert rows.select("mig_profile", "kind").rows() == [("1g.10gb", "mig"), ("3g.40gb", "mig")]
    assert rows["gpu_fraction"].to_list() == pytest.approx([2 / 7, 3 / 7])
    assert rows["gpu_memory_bytes"][0] == 2 * 9984 * MIB
    assert rows["gpu_memory_bytes"][1] == pytest.approx(81559 * 4 / 8 * MIB)  # 4 of 8 memory slices


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        pytest.param("{not json", "k.json:1: not JSON", id="not JSON names the line"),
        pytest.param({"kind": "Pod", "items": []}, "expected kind List", id="a single object is not a list"),
        pytest.param({"kind": "List", "items": {}}, "'items' must be a list", id="items that are not a list"),
        pytest.param([], "expected a JSON object", id="a JSON array"),
    ],
)
def test_a_bad_document_raises_an_input_error_naming_the_source(doc: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_allocations(doc, source="k.json", ts=TS, cluster="c")


def test_malformed_items_are_reported_with_their_index_and_the_rest_kept() -> None:
    bad_quantity = pod("bad-qty", limits={"nvidia.com/gpu": "one"})
    bad_labels = pod("bad-labels", limits={"nvidia.com/gpu": "1"})
    bad_labels["metadata"]["labels"] = {"a": 1}
    no_node = pod("no-node", None, limits={"nvidia.com/gpu": "1"})
    bad_fraction = pod("bad-fraction", annotations={"gpu-fraction": "1.5"})
    items = [
        node(),
        "junk",
        bad_quantity,
        bad_labels,
        no_node,
        bad_fraction,
        pod("good", limits={"nvidia.com/gpu": "1"}),
    ]
    batch = parse_allocations(doc_of(*items), source="k.json", ts=TS, cluster="c")
    assert batch.frame["pod"].to_list() == ["good"]
    where = {i.item: i.reason for i in batch.issues}
    assert len(batch.issues) == len(where) == 5 and set(where) == {1, 2, 3, 4, 5}
    assert "not an object" in where[1]
    assert "'one' is not a quantity" in where[2]
    assert "metadata.labels must be an object of strings" in where[3]
    assert "no spec.nodeName" in where[4]
    assert "gpu-fraction='1.5' is not a number in (0, 1]" in where[5]
    assert all(str(i).startswith("k.json: ") for i in batch.issues)
    assert ALLOCATIONS.schema == batch.frame.schema


# ----------------------------------------------------------------- property: no GPU over-allocated

# product label -> (MIG table key, compute slices per GPU as NVIDIA documents them, memory MiB)
PRODUCTS = {
    "NVIDIA-A100-SXM4-80GB": ("A100-80GB", 7, 81920),
    "NVIDIA-A100-SXM4-40GB": ("A100-40GB", 7, 40960),
    "NVIDIA-H100-80GB-HBM3": ("H100-80GB", 7, 81559),
    "NVIDIA-H200": ("H200-141GB", 7, 143771),
    "NVIDIA-A30": ("A30-24GB", 4, 24576),
}


@st.composite
def placements(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, list[tuple[str, Fraction]]]]:
    """A valid cluster: nodes, running pods, and each pod's true (GPU, share) list."""
    items: list[dict[str, Any]] = []
    truth: dict[str, list[tuple[str, Fraction]]] = {}
    for n in range(draw(st.integers(1, 3))):
        product = draw(st.sampled_from(sorted(PRODUCTS)))
        key, slices, memory = PRODUCTS[product]
        count = draw(st.integers(1, 4))
        sharing = draw(st.sampled_from(["none", "time-slicing", "mps"]))
        replicas = draw(st.integers(2, 4)) if sharing != "none" else 1
        name = f"node-{n}"
        capacity: dict[str, int] = {"nvidia.com/gpu": 0}
        labels = {
            "nvidia.com/gpu.product": product,
            "nvidia.com/gpu.count": str(count),
            "nvidia.com/gpu.memory": str(memory),
        }
        if sharing != "none":
            labels.update(
                {"nvidia.com/gpu.replicas": str(replicas), "nvidia.com/gpu.sharing-strategy": sharing}
            )
        whole_free: list[str] = []
        pods: list[tuple[dict[str, Any], list[tuple[str, Fraction]]]] = []

        for g in range(count):
            gpu = f"{name}/gpu{g}"
            modes = ["mig", "shared"] if sharing != "none" else ["mig", "whole", "runai", "runai-memory"]
            mode = draw(st.sampled_from(modes))
            if mode == "mig":
                labels["nvidia.com/mig.strategy"] = "mixed"
                table = MIG_GPUS[key]
                used_c = used_m = 0
                taken: dict[str, int] = {}
                for prof in draw(st.lists(st.sampled_from(sorted(table.profiles)), max_size=8)):
                    p = table.profiles[prof]
                    if (
                        used_c + p.compute_slices > table.compute_slices
                        or used_m + p.memory_slices > table.memory_slices
                        or taken.get(prof, 0) >= p.max_instances
                    ):
                        continue  # would not fit on the GPU: a real MIG manager refuses it too
                    used_c, used_m = used_c + p.compute_slices, used_m + p.memory_slices
                    taken[prof] = taken.get(prof, 0) + 1
                    capacity[f"nvidia.com/mig-{prof}"] = capacity.get(f"nvidia.com/mig-{prof}", 0) + 1
                    if draw(st.booleans()):
                        c = int(prof.split("g.")[0])
                        pods.append(
                            (
                                pod(f"{name}-p{len(pods)}", name, limits={f"nvidia.com/mig-{prof}": "1"}),
                                [(gpu, Fraction(c, slices))],
                            )
                        )
            elif mode == "shared":
                capacity["nvidia.com/gpu"] += replicas
                for _ in range(draw(st.integers(0, replicas))):
                    pods.append(
                        (
                            pod(f"{name}-p{len(pods)}", name, limits={"nvidia.com/gpu": "1"}),
                            [(gpu, Fraction(1, replicas))],
                        )
                    )
            elif mode == "whole":
                capacity["nvidia.com/gpu"] += 1
                whole_free.append(gpu)
            elif mode == "runai":
                capacity["nvidia.com/gpu"] += 1
                parts = draw(st.lists(st.integers(1, 20), max_size=4))
                left = 20
                for k in parts:
                    if k <= left:
                        left -= k
                        pods.append(
                            (
                                pod(f"{name}-p{len(pods)}", name, annotations={"gpu-fraction": str(k / 20)}),
                                [(gpu, Fraction(k, 20))],
                            )
                        )
            else:
                capacity["nvidia.com/gpu"] += 1
                left = memory
                for mib in draw(st.lists(st.integers(1, memory), max_size=4)):
                    if mib <= left:
                        left -= mib
                        pods.append(
                            (
                                pod(f"{name}-p{len(pods)}", name, annotations={"gpu-memory": str(mib)}),
                                [(gpu, Fraction(mib, memory))],
                            )
                        )
        while whole_free:  # whole-GPU pods, some spanning several GPUs (tensor parallel)
            size = draw(st.integers(1, len(whole_free)))
            held, whole_free = whole_free[:size], whole_free[size:]
            if draw(st.booleans()):
                pods.append(
                    (
                        pod(f"{name}-p{len(pods)}", name, limits={"nvidia.com/gpu": str(size)}),
                        [(g, Fraction(1)) for g in held],
                    )
                )
        items.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "labels": labels},
                "status": {"capacity": {k: str(v) for k, v in capacity.items()}},
            }
        )
        for p, shares in pods:
            items.append(p)
            truth[p["metadata"]["name"]] = shares
    return items, truth


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(placements())
def test_no_physical_gpu_is_ever_more_than_fully_allocated(placement: tuple[list[dict], dict]) -> None:
    items, truth = placement
    batch = parse_allocations(doc_of(*items), source="gen.json", ts=TS, cluster="c")
    assert batch.issues == ()
    per_gpu: dict[str, Fraction] = {}
    seen = set()
    for r in batch.frame.iter_rows(named=True):
        shares = truth[r["pod"]]
        seen.add(r["pod"])
        # A row holds exactly the pod's true share of GPUs ...
        assert r["gpu_fraction"] == pytest.approx(float(sum(s for _, s in shares)), rel=1e-12)
        # ... spread over the GPUs it really sits on, as the join prorates it.
        for gpu, _ in shares:
            per_gpu[gpu] = per_gpu.get(gpu, Fraction(0)) + Fraction(r["gpu_fraction"]) / len(shares)
    assert seen == set(truth)
    assert all(total <= 1 + 1e-9 for total in per_gpu.values()), per_gpu


def test_under_rename_by_default_plain_gpus_stay_whole_and_shared_ones_are_replicas() -> None:
    n = node(
        labels={"nvidia.com/gpu.replicas": "4", "nvidia.com/gpu.sharing-strategy": "time-slicing"},
        capacity={"nvidia.com/gpu": "2", "nvidia.com/gpu.shared": "24"},
    )
    whole = pod("whole", limits={"nvidia.com/gpu": "1"})
    shared = pod("shared", limits={"nvidia.com/gpu.shared": "2"})
    rows = rows_by_pod(parse_allocations(doc_of(n, whole, shared), source="k.json", ts=TS, cluster="c").frame)
    assert (rows["whole"]["kind"], rows["whole"]["gpu_fraction"]) == ("whole", 1.0)
    assert (rows["shared"]["kind"], rows["shared"]["gpu_fraction"]) == ("timeslice", 0.5)
