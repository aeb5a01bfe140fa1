"""Tests of the pod-list parser and of target attribution to pods."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from analytics.errors import InputError, ProblemCode
from collectors.kube.pod_model import Pod
from collectors.kube.pods import parse_pod_list
from collectors.kube.target_attribution import attribute_targets, attribute_targets_report
from collectors.samples import SourceFormat
from collectors.targets import Target

FIXTURE = Path(__file__).parents[2] / "fixtures" / "upstream" / "kubernetes" / "core.v1.Pod.json"
UPSTREAM_POD: dict[str, Any] = json.loads(FIXTURE.read_text())


def pod_item(ns: str, name: str, ip: str | None, *, ports: dict[str, list[int]] | None = None,
             labels: dict[str, str] | None = None, node: str = "gpu-node-1", phase: str = "Running",
             host_ports: bool = False) -> dict[str, Any]:
    """A pod item in the upstream shape, with the identifying fields set (everything else upstream's)."""
    item = copy.deepcopy(UPSTREAM_POD)
    item["metadata"].update(namespace=ns, name=name, labels=labels or {}, annotations={})
    item["spec"]["nodeName"] = node
    template = item["spec"]["containers"][0]
    containers = []
    for cname, cports in (ports or {"main": []}).items():
        c = copy.deepcopy(template)
        c["name"] = cname
        c["ports"] = [
            {"name": f"p{p}", "containerPort": p, "protocol": "TCP", **({"hostPort": p} if host_ports else {})}
            for p in cports
        ]
        containers.append(c)
    item["spec"]["containers"] = containers
    item["status"].update(phase=phase, podIP=ip, podIPs=[{"ip": ip}] if ip else [])
    return item


def pod_list(*items: dict[str, Any], kind: str = "List") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": kind, "items": list(items)}


def test_the_upstream_pod_shape_is_read_with_every_identifying_field() -> None:
    item = copy.deepcopy(UPSTREAM_POD)
    item["metadata"]["labels"].update({"rollouts-pod-template-hash": "6b9f7c", "pod-template-hash": "111",
                                       "leaderworkerset.sigs.k8s.io/group-key": "g1"})
    item["metadata"]["annotations"]["rollout.argoproj.io/revision"] = "4"
    index = parse_pod_list(pod_list(item), source="pods.json")
    (pod,) = index.pods
    meta, spec = UPSTREAM_POD["metadata"], UPSTREAM_POD["spec"]
    assert (pod.namespace, pod.name, pod.node, pod.uid, pod.phase) == (
        meta["namespace"], meta["name"], spec["nodeName"], meta["uid"], UPSTREAM_POD["status"]["phase"])
    upstream_port = spec["containers"][0]["ports"][0]
    assert [(p.container, p.port, p.host_port, p.name) for p in pod.ports] == [
        (spec["containers"][0]["name"], upstream_port["containerPort"], upstream_port["hostPort"],
         upstream_port["name"])]
    assert [(o.kind, o.name, o.controller) for o in pod.owners] == [
        (o["kind"], o["name"], o["controller"]) for o in meta["ownerReferences"]]
    assert pod.model_version == "6b9f7c"
    assert pod.revision == "4"
    assert pod.group == "g1"
    # Only the labels attribution uses are kept; the placeholder label is not one of them.
    assert "labelsKey" not in pod.labels


def test_a_placeholder_pod_ip_is_reported_and_the_pod_kept() -> None:
    index = parse_pod_list(pod_list(copy.deepcopy(UPSTREAM_POD)), source="pods.json")
    assert len(index.pods) == 1 and index.pods[0].pod_ips == ()
    assert any("podIPValue" in str(i) and "pods.json: items[0]" in str(i) for i in index.issues)


def test_a_pod_list_given_as_json_text_is_read() -> None:
    text = json.dumps(pod_list(pod_item("team-a", "vllm-0", "10.0.0.5"), kind="PodList"))
    index = parse_pod_list(text, source="kubectl")
    assert [(p.namespace, p.name, p.pod_ips) for p in index.pods] == [("team-a", "vllm-0", ("10.0.0.5",))]


def test_a_rollout_hash_wins_over_the_replicaset_hash_and_the_replicaset_hash_is_the_fallback() -> None:
    both = pod_item("a", "p1", "10.0.0.1", labels={"rollouts-pod-template-hash": "r1", "pod-template-hash": "t1"})
    only = pod_item("a", "p2", "10.0.0.2", labels={"pod-template-hash": "t2"})
    none = pod_item("a", "p3", "10.0.0.3")
    pods = parse_pod_list(pod_list(both, only, none), source="s").pods
    assert [p.model_version for p in pods] == ["r1", "t2", None]


def test_dual_stack_pod_ips_are_all_kept_in_canonical_form() -> None:
    item = pod_item("a", "p", "10.0.0.9")
    item["status"]["podIPs"] = [{"ip": "10.0.0.9"}, {"ip": "FD00::0009"}]
    (pod,) = parse_pod_list(pod_list(item), source="s").pods
    assert pod.pod_ips == ("10.0.0.9", "fd00::9")


@pytest.mark.parametrize(
    "breakage, needle",
    [
        pytest.param(lambda it: it["metadata"].pop("namespace"), "metadata.namespace", id="a pod without a namespace"),
        pytest.param(lambda it: it["spec"]["containers"][0]["ports"].append({"containerPort": "http"}),
                     "containerPort", id="a port that is not a number"),
        pytest.param(lambda it: it["metadata"].update(labels={"a": 1}), "labels", id="a label that is not a string"),
        pytest.param(lambda it: it.update(kind="Service"), "Service", id="an item that is not a pod"),
        pytest.param(lambda it: it["spec"].update(containers="main"), "containers", id="containers not a list"),
    ],
)
def test_a_malformed_item_is_reported_with_source_and_index_and_the_rest_kept(breakage, needle: str) -> None:
    good1 = pod_item("a", "good-1", "10.0.0.1", ports={"main": [8000]})
    bad = pod_item("a", "bad", "10.0.0.2", ports={"main": [8000]})
    breakage(bad)
    good2 = pod_item("b", "good-2", "10.0.0.3")
    index = parse_pod_list(pod_list(good1, bad, good2), source="pods.json")
    assert [p.name for p in index.pods] == ["good-1", "good-2"]
    (issue,) = index.issues
    assert issue.item == 1 and issue.source == "pods.json"
    assert needle in issue.reason
    assert str(issue).startswith("pods.json: items[1]")


def test_an_item_that_is_not_an_object_is_reported() -> None:
    index = parse_pod_list(pod_list(pod_item("a", "p", "10.0.0.1"), 42), source="s")  # type: ignore[arg-type]
    assert len(index.pods) == 1
    assert index.issues[0].item == 1 and "not an object" in index.issues[0].reason


@pytest.mark.parametrize(
    "doc, needle",
    [
        pytest.param("{not json", "not JSON", id="text that is not JSON"),
        pytest.param("[]", "JSON object", id="a JSON array"),
        pytest.param({"kind": "Pod", "metadata": {}}, "List or PodList", id="a single pod"),
        pytest.param({"kind": "List", "items": {"a": 1}}, "'items' must be a list", id="items not a list"),
    ],
)
def test_a_bad_document_raises_an_input_error_naming_the_source(doc: Any, needle: str) -> None:
    with pytest.raises(InputError, match=needle) as err:
        parse_pod_list(doc, source="pods.json")
    assert err.value.source == "pods.json"


def test_json_syntax_errors_name_the_line() -> None:
    with pytest.raises(InputError) as err:
        parse_pod_list('{\n"kind": "List",\n"items": [,]}', source="pods.json")
    assert err.value.line == 3


def test_an_empty_list_is_no_pods_and_no_issues() -> None:
    index = parse_pod_list({"kind": "List", "apiVersion": "v1", "items": []}, source="s")
    assert index.pods == () and index.issues == ()


# --- attribution -------------------------------------------------------------------------------------

def index_of(*items: dict[str, Any]):
    return parse_pod_list(pod_list(*items), source="pods.json")


def test_a_target_on_a_pod_ip_and_declared_port_gets_the_pods_identity() -> None:
    pods = index_of(
        pod_item("team-a", "llama-7f-abc", "10.1.0.7", ports={"vllm": [8000], "sidecar": [9090]},
                 labels={"rollouts-pod-template-hash": "7f"}, node="gpu-3"),
        pod_item("team-b", "other", "10.1.0.8", ports={"vllm": [8000]}),
    )
    result = attribute_targets_report([Target(SourceFormat.VLLM, "http://10.1.0.7:8000/metrics")], pods)
    (t,) = result.targets
    assert dict(t.labels) == {"namespace": "team-a", "pod": "llama-7f-abc", "node": "gpu-3",
                              "container": "vllm", "model_version": "7f"}
    assert t.error is None and result.issues == ()


def test_the_port_picks_the_container() -> None:
    pods = index_of(pod_item("a", "p", "10.1.0.7", ports={"vllm": [8000], "sidecar": [9090]}))
    (t,) = attribute_targets([Target(SourceFormat.VLLM, "http://10.1.0.7:9090/metrics")], pods)
    assert t.labels["container"] == "sidecar"


def test_labels_given_in_config_win_over_discovered_ones() -> None:
    pods = index_of(pod_item("team-a", "p", "10.1.0.7", ports={"vllm": [8000]},
                             labels={"pod-template-hash": "discovered"}))
    target = Target(SourceFormat.VLLM, "http://10.1.0.7:8000/", {"model_version": "v2", "cluster": "east"})
    (t,) = attribute_targets([target], pods)
    assert t.labels["model_version"] == "v2" and t.labels["cluster"] == "east"
    assert t.labels["namespace"] == "team-a"


def test_an_unique_ip_without_the_port_declared_still_matches_and_fills_a_lone_container() -> None:
    pods = index_of(pod_item("a", "p", "10.1.0.7", ports={"server": []}))
    (t,) = attribute_targets([Target(SourceFormat.TGI, "http://10.1.0.7:9000/metrics")], pods)
    assert (t.labels["pod"], t.labels["container"]) == ("p", "server")


def test_a_pod_with_several_containers_and_no_matching_port_leaves_the_container_empty() -> None:
    pods = index_of(pod_item("a", "p", "10.1.0.7", ports={"one": [], "two": []}))
    (t,) = attribute_targets([Target(SourceFormat.TGI, "http://10.1.0.7:9000/metrics")], pods)
    assert t.labels["pod"] == "p" and "container" not in t.labels


def test_host_network_pods_sharing_the_node_ip_are_told_apart_by_port() -> None:
    pods = index_of(
        pod_item("gpu-operator", "dcgm-exporter-x", "192.0.2.10", ports={"exporter": [9400]}, host_ports=True),
        pod_item("kube-system", "node-exporter-y", "192.0.2.10", ports={"exporter": [9100]}, host_ports=True),
    )
    (dcgm,) = attribute_targets([Target(SourceFormat.DCGM, "http://192.0.2.10:9400/metrics")], pods)
    assert dcgm.labels["pod"] == "dcgm-exporter-x"
    result = attribute_targets_report([Target(SourceFormat.DCGM, "http://192.0.2.10:9999/metrics")], pods)
    assert result.issues[0].code == ProblemCode.AMBIGUOUS and "pod" not in result.targets[0].labels


def test_finished_pods_do_not_claim_a_reused_ip() -> None:
    pods = index_of(
        pod_item("old", "done", "10.1.0.7", ports={"m": [8000]}, phase="Succeeded"),
        pod_item("new", "live", "10.1.0.7", ports={"m": [8000]}),
    )
    (t,) = attribute_targets([Target(SourceFormat.VLLM, "http://10.1.0.7:8000/")], pods)
    assert t.labels["pod"] == "live"


def test_an_ipv6_target_matches_a_dual_stack_pod() -> None:
    item = pod_item("a", "p6", "10.0.0.9", ports={"m": [8000]})
    item["status"]["podIPs"].append({"ip": "fd00::9"})
    (t,) = attribute_targets([Target(SourceFormat.VLLM, "http://[FD00:0::9]:8000/metrics")], index_of(item))
    assert t.labels["pod"] == "p6"
    assert t.instance == "[fd00:0::9]:8000"  # as written in the URL, like Prometheus's __address__


@pytest.mark.parametrize(
    "url, needle",
    [
        pytest.param("http://10.9.9.9:8000/metrics", "no running pod has IP 10.9.9.9", id="an IP no pod holds"),
        pytest.param("http://vllm.team-a.svc:8000/metrics", "not an IP address", id="a DNS name"),
    ],
)
def test_a_target_that_matches_nothing_keeps_its_config_labels_and_is_reported(url: str, needle: str) -> None:
    pods = index_of(pod_item("a", "p", "10.1.0.7", ports={"m": [8000]}))
    target = Target(SourceFormat.VLLM, url, {"namespace": "team-a", "model_name": "m"})
    result = attribute_targets_report([target], pods)
    assert result.targets == [target]
    (issue,) = result.issues
    assert issue.code == ProblemCode.UNMATCHED and needle in issue.reason and issue.source == url


def test_an_invalid_namespace_makes_the_target_unusable_with_a_clear_error() -> None:
    pods = index_of(pod_item("Team_A", "p", "10.1.0.7", ports={"m": [8000]}),
                    pod_item("team-b", "q", "10.1.0.8", ports={"m": [8000]}))
    result = attribute_targets_report([Target(SourceFormat.VLLM, "http://10.1.0.7:8000/"), Target(SourceFormat.VLLM, "http://10.1.0.8:8000/")],
                              pods)
    bad, good = result.targets
    assert bad.error is not None and "Team_A" in bad.error and "RFC 1123" in bad.error
    assert good.error is None and good.labels["namespace"] == "team-b"
    assert [i.code for i in result.issues] == [ProblemCode.INVALID_TENANT]


def test_a_configured_invalid_namespace_is_caught_even_without_a_pod_match() -> None:
    result = attribute_targets_report([Target(SourceFormat.VLLM, "http://10.1.0.7:8000/", {"namespace": "../etc"})], [])
    assert result.targets[0].error is not None
    assert {i.code for i in result.issues} == {ProblemCode.UNMATCHED, ProblemCode.INVALID_TENANT}


def test_a_bad_url_is_reported_not_raised() -> None:
    result = attribute_targets_report([Target(SourceFormat.VLLM, "ftp://10.1.0.7/metrics")], [])
    assert result.issues[0].code == ProblemCode.BAD_URL


def test_attribute_accepts_a_plain_sequence_of_pods() -> None:
    pod = Pod(namespace="a", name="p", node=None, pod_ips=("10.0.0.1",), containers=("c",), ports=())
    (t,) = attribute_targets([Target(SourceFormat.SGLANG, "http://10.0.0.1:30000/metrics")], [pod])
    assert dict(t.labels) == {"namespace": "a", "pod": "p", "container": "c"}


def test_attribute_logs_what_it_could_not_attribute_and_the_pod_lists_issues(caplog: pytest.LogCaptureFixture) -> None:
    pods = index_of(pod_item("a", "p", "10.1.0.7", ports={"m": [8000]}), copy.deepcopy(UPSTREAM_POD))
    with caplog.at_level("WARNING", logger="collectors.kube.target_attribution"):
        attribute_targets([Target(SourceFormat.VLLM, "http://10.9.9.9:8000/")], pods)
    text = caplog.text
    assert "no running pod has IP 10.9.9.9" in text and "podIPValue" in text
