"""The model version of engine rows is the serving pod's revision, on every engine and every path.

Precedence: target label ``model_version`` > ``rollouts_pod_template_hash`` > ``pod_template_hash`` >
the hash in the pod's name; never an engine's own label (Triton's repository ``version``).
"""

from __future__ import annotations

import polars as pl
import pytest

from collectors.kube.pod_model import SAFE_ALPHABET, template_hash_from_name
from collectors.metrics.prom_api import DEFAULT_TARGET_LABELS
from collectors.normalise.dispatch import normalise
from collectors.normalise.revision import REVISION_LABELS, model_version, pod_name_hash
from collectors.samples import SourceFormat
from tests.collectors.normalise.test_normalise import wide

NAMES = [
    # Deployment pods: <deployment>-<pod-template-hash>-<suffix>.
    pytest.param("chat-7b4f9c8d6f-x2k9p", "7b4f9c8d6f", id="deployment, 10-char hash"),
    pytest.param("chat-5d8f9c7b4-x2k9p", "5d8f9c7b4", id="deployment, 9-char hash"),
    pytest.param("chat-5d8f9c7b-x2k9p", "5d8f9c7b", id="deployment, 8-char hash"),
    # Argo Rollouts pods: <rollout>-<rollouts-pod-template-hash>-<suffix>, dashes in the rollout's name.
    pytest.param("llama-3-1-8b-instruct-sgh8srl954-179ab", "sgh8srl954", id="rollout, dashes and digits"),
    pytest.param("qwen2-5-0-5b-instruct-rpqsmvqhtt-3f1a9", "rpqsmvqhtt", id="rollout, digit-dash-digit name"),
    pytest.param("a-bcdfghjk-zzzzz", "bcdfghjk", id="one-letter workload"),
    # No hash in these names: never a guess.
    pytest.param("vllm-0", None, id="statefulset"),
    pytest.param("web-12", None, id="statefulset, two-digit ordinal"),
    pytest.param("llama-70b-bcdfghjk-0", None, id="statefulset named like a hash"),
    pytest.param("lws-llama-0-1", None, id="leaderworkerset worker"),
    pytest.param("nvidia-dcgm-exporter-b962f", None, id="daemonset"),
    pytest.param("kube-proxy-x7k2p", None, id="daemonset, short name"),
    pytest.param("backup-28924566-x2k9p", None, id="cronjob job: minutes since epoch"),
    pytest.param("chat-7d9f-abcde", None, id="hash too short (4)"),
    pytest.param("chat-5d8f9c7-x2k9p", None, id="hash too short (7)"),
    pytest.param("chat-7b4f9c8d6fb-x2k9p", None, id="hash too long (11)"),
    pytest.param("chat-7b4f0c8d6f-x2k9p", None, id="0 is not in the alphabet"),
    pytest.param("chat-7b4f9c8a6f-x2k9p", None, id="vowels are not in the alphabet"),
    pytest.param("chat-7B4F9C8D6F-x2k9p", None, id="upper case"),
    pytest.param("chat-7b4f9c8d6f-x2k9", None, id="suffix too short"),
    pytest.param("chat-7b4f9c8d6f-x2k9pq", None, id="suffix too long"),
    pytest.param("7b4f9c8d6f-x2k9p", None, id="no workload name"),
    pytest.param("-7b4f9c8d6f-x2k9p", None, id="empty workload name"),
    pytest.param("my--chat-7b4f9c8d6f-x2k9p", "7b4f9c8d6f", id="double dash inside the workload"),
    pytest.param("chat--7b4f9c8d6f-x2k9p", None, id="a workload name cannot end in a dash"),
    pytest.param("", None, id="empty"),
    pytest.param(None, None, id="absent"),
]


@pytest.mark.parametrize(("pod", "expected"), NAMES)
def test_template_hash_from_the_pods_name(pod: str | None, expected: str | None) -> None:
    assert template_hash_from_name(pod) == expected


def test_the_expression_reads_names_as_the_function_does() -> None:
    pods = [p.values[0] for p in NAMES]
    got = pl.DataFrame({"pod": pods}, schema={"pod": pl.Utf8}).select(pod_name_hash(pl.col("pod")))
    assert got.to_series().to_list() == [template_hash_from_name(p) for p in pods]


def test_the_alphabet_is_kubernetes_safe_encoding() -> None:
    # k8s.io/apimachinery/pkg/util/rand: "bcdfghjklmnpqrstvwxz2456789" (no vowels, no 0, 1, 3).
    assert SAFE_ALPHABET == "bcdfghjklmnpqrstvwxz2456789"


POD = "chat-7b4f9c8d6f-x2k9p"
PRECEDENCE = [
    pytest.param({"model_version": "mv", "rollouts_pod_template_hash": "r", "pod_template_hash": "p", "pod": POD},
                 "mv", id="model_version first"),
    pytest.param({"model_version": "", "rollouts_pod_template_hash": "r", "pod_template_hash": "p", "pod": POD},
                 "r", id="an empty label is an absent one"),
    pytest.param({"rollouts_pod_template_hash": "r", "pod_template_hash": "p", "pod": POD}, "r",
                 id="rollouts hash before pod-template-hash"),
    pytest.param({"pod_template_hash": "p", "pod": POD}, "p", id="pod-template-hash before the pod's name"),
    pytest.param({"pod": POD}, "7b4f9c8d6f", id="the pod's name last"),
    pytest.param({"pod": "chat-0"}, None, id="else null"),
    pytest.param({"version": "3", "pod": "chat-0"}, None, id="an engine's own version never"),
]


@pytest.mark.parametrize(("labels", "expected"), PRECEDENCE)
def test_precedence(labels: dict[str, str], expected: str | None) -> None:
    frame = wide([("x", labels, 1.0)])
    assert frame.select(model_version(frame)).to_series().to_list() == [expected]


# One minimal sample per engine; TGI's model is a target label (it exposes none).
ENGINES = {
    SourceFormat.VLLM: ("vllm:num_requests_running", {"model_name": "m"}),
    SourceFormat.TRITON: ("nv_inference_pending_request_count", {"model": "m", "version": "3"}),
    SourceFormat.SGLANG: ("sglang:num_running_reqs", {"model_name": "m"}),
    SourceFormat.TGI: ("tgi_queue_size", {"model_name": "m"}),
}


@pytest.mark.parametrize("fmt", list(ENGINES), ids=str)
@pytest.mark.parametrize(("labels", "expected"), PRECEDENCE)
def test_every_engine_keys_rows_on_the_pods_revision(fmt: SourceFormat, labels: dict[str, str],
                                                     expected: str | None) -> None:
    name, own = ENGINES[fmt]
    frame = wide([(name, {**own, **labels, "namespace": "team-a"}, 1.0)])
    engine = normalise(frame, fmt).engine
    assert engine["model_version"].to_list() == [expected]
    if fmt is SourceFormat.TRITON:
        assert engine["replica"].to_list() == ["3"]  # the repository version, beside the key


def test_the_prometheus_api_reader_knows_the_revision_labels_are_target_labels() -> None:
    assert set(REVISION_LABELS) <= set(DEFAULT_TARGET_LABELS)
