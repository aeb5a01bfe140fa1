"""Per-tenant quotas from ResourceQuota objects, a Kueue setup and Run:ai queues."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from analytics.errors import InputError
from analytics.schema import QUOTAS
from collectors.kube.quotas import parse_quotas

FIXTURES = Path(__file__).parents[2] / "fixtures"
SETUP: dict[str, Any] = json.loads((FIXTURES / "kube/kueue-and-resourcequotas.json").read_text())
RUNAI: dict[str, Any] = json.loads((FIXTURES / "kube/runai-queues.json").read_text())
UPSTREAM_QUOTA: dict[str, Any] = json.loads(
    (FIXTURES / "upstream/kubernetes/core.v1.ResourceQuota.json").read_text()
)
TS = datetime(2025, 6, 2, 8, 10, tzinfo=UTC)
GI = 2**30


def rows(batch_frame: Any, source: str) -> dict[tuple[str, str, str], tuple[float | None, float | None]]:
    return {
        (r["tenant"], r["name"], r["resource"]): (r["hard"], r["used"])
        for r in batch_frame.iter_rows(named=True)
        if r["source"] == source
    }


def test_resource_quotas_give_hard_and_used_per_tenant_with_exact_quantities() -> None:
    batch = parse_quotas(SETUP, source="q.json", ts=TS, cluster="c")
    assert batch.frame.schema == QUOTAS.schema
    got = rows(batch.frame, "resourcequota")
    assert got == {
        ("team-chat", "gpu-quota", "requests.nvidia.com/gpu"): (4.0, 3.0),
        ("team-chat", "gpu-quota", "requests.nvidia.com/mig-1g.10gb"): (2.0, 0.0),
        ("team-chat", "gpu-quota", "count/pods"): (20.0, 7.0),
        ("team-chat", "gpu-quota", "requests.memory"): (64.0 * GI, 48.0 * GI),
        ("team-chat", "gpu-quota", "requests.cpu"): (7.91, 2.5),
        ("team-search", "gpu-quota", "requests.nvidia.com/gpu"): (8.0, None),  # no status yet: used unknown
    }


def test_kueue_quotas_reach_tenants_through_their_local_queues() -> None:
    batch = parse_quotas(SETUP, source="q.json", ts=TS, cluster="c")
    got = rows(batch.frame, "kueue")
    cq = SETUP["items"][1]
    nominal = {
        (f["name"], r["name"]): r["nominalQuota"]
        for g in cq["spec"]["resourceGroups"]
        for f in g["flavors"]
        for r in f["resources"]
    }
    assert {k[0] for k in got} == {"team-chat", "team-search"}  # team-code's LocalQueue points nowhere
    assert len(got) == 2 * len(nominal)
    assert got[("team-chat", "inference/h100", "nvidia.com/gpu")] == (8.0, 4.0)
    assert got[("team-search", "inference/h100", "nvidia.com/gpu")] == (8.0, 2.0)
    assert got[("team-chat", "inference/h100", "memory")] == (512.0 * GI, 256.0 * GI)
    assert got[("team-search", "inference/a100", "nvidia.com/gpu")] == (4.0, None)  # no usage reported
    assert got[("team-chat", "inference/a100", "cpu")] == (48.0, None)
    # The tenants' usage adds up to the ClusterQueue's own status.
    cq_gpu = next(
        r for f in cq["status"]["flavorsUsage"] for r in f["resources"] if r["name"] == "nvidia.com/gpu"
    )
    assert sum(u for (t, n, r), (_, u) in got.items() if r == "nvidia.com/gpu" and u) == float(
        cq_gpu["total"]
    )


def test_unusable_quota_objects_are_reported_and_the_rest_kept() -> None:
    batch = parse_quotas(SETUP, source="q.json", ts=TS, cluster="c")
    where = {i.item: str(i) for i in batch.issues}
    assert set(where) == {4, 7, 8}
    assert "ClusterQueue 'no-such-queue' is not in the document" in where[4]
    assert "tenant 'Team_Bad' is not an RFC 1123 label" in where[7]
    assert "'four' is not a quantity" in where[8] and where[8].startswith(
        "q.json: items[8] (team-code/broken)"
    )


def test_the_upstream_resource_quota_shape_parses_and_its_placeholders_are_reported() -> None:
    doc = {"apiVersion": "v1", "kind": "ResourceQuotaList", "items": [copy.deepcopy(UPSTREAM_QUOTA)]}
    batch = parse_quotas(doc, source="rq.json", ts=TS, cluster="c")
    assert batch.frame.height == 0
    (issue,) = batch.issues
    assert (issue.item, issue.name) == (0, "namespaceValue/nameValue") and "RFC 1123" in issue.reason
    fixed = copy.deepcopy(UPSTREAM_QUOTA)
    fixed["metadata"]["namespace"] = "team-a"
    (row,) = parse_quotas({**doc, "items": [fixed]}, source="rq.json", ts=TS, cluster="c").frame.iter_rows(
        named=True
    )
    # status.hard wins over spec.hard; the placeholder used key names another resource, so used is unknown.
    assert (row["tenant"], row["name"], row["resource"], row["hard"], row["used"]) == (
        "team-a",
        UPSTREAM_QUOTA["metadata"]["name"],
        "hardKey",
        0.0,
        None,
    )


def test_runai_queue_gpu_quotas_reach_the_namespaces_of_their_pods() -> None:
    batch = parse_quotas(RUNAI, source="runai.json", ts=TS, cluster="c")
    assert rows(batch.frame, "runai") == {
        ("team-chat", "test", "gpu"): (2.5, None),
        ("test", "test", "gpu"): (2.5, None),
    }
    assert batch.issues == ()


def test_an_unlimited_runai_quota_is_null() -> None:
    doc = copy.deepcopy(RUNAI)
    doc["items"][3]["metadata"]["labels"]["runai/queue"] = "default-parent-queue"
    got = rows(parse_quotas(doc, source="runai.json", ts=TS, cluster="c").frame, "runai")
    assert got[("team-chat", "default-parent-queue", "gpu")] == (None, None)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        pytest.param("[", "q.json:1: not JSON", id="not JSON"),
        pytest.param({"kind": "ResourceQuota"}, "expected kind List", id="a single object"),
    ],
)
def test_a_bad_document_raises(doc: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_quotas(doc, source="q.json", ts=TS, cluster="c")
