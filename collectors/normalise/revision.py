"""The model version of an engine's samples: the serving pod's revision, from the scrape target's labels.

The model version is the key GPU samples, engine samples, requests and rollout events join on, so
every engine takes it from the same place, the pod, never from the engine's own labels. The first
present, non-empty one of these wins:

1. ``model_version``: fleetlens's own target label (configured, or set from a pod list by target
   attribution, ``collectors.kube.target_attribution``);
2. ``rollouts_pod_template_hash``: an Argo Rollouts pod's ``rollouts-pod-template-hash`` label, as
   Kubernetes service-discovery relabelling names it
   (``__meta_kubernetes_pod_label_rollouts_pod_template_hash``, see docs/prometheus-relabel.md);
3. ``pod_template_hash``: a Deployment pod's ``pod-template-hash`` label
   (``__meta_kubernetes_pod_label_pod_template_hash``);
4. the hash in the target's ``pod`` name, ``<workload>-<hash>-<suffix>``
   (``collectors.kube.pod_model.template_hash_from_name``; a StatefulSet, DaemonSet or Job pod has none).

Otherwise the version is null. An engine's own version label (Triton's model-repository ``version``)
is never the model version: it stays beside it (Triton and its vLLM backend keep it in ``replica``).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from collectors.kube.pod_model import POD_NAME_HASH_PATTERN
from collectors.samples import label

# Target labels that carry the pod's revision, first wins.
REVISION_LABELS = ("model_version", "rollouts_pod_template_hash", "pod_template_hash")


def pod_name_hash(pod: pl.Expr) -> pl.Expr:
    """The template hash in a ReplicaSet pod's name, else null: ``template_hash_from_name``, vectorised."""
    found = pod.str.extract(POD_NAME_HASH_PATTERN, 1)
    return pl.when(found.str.contains(r"^[0-9]+$")).then(pl.lit(None, pl.Utf8)).otherwise(found)


def model_version(frame: pl.DataFrame, labels: Sequence[str] = REVISION_LABELS) -> pl.Expr:
    """The serving pod's revision: the first of ``labels`` present, else the hash in the ``pod`` label."""
    return pl.coalesce(label(frame, *labels), pod_name_hash(label(frame, "pod")))


def own_label(frame: pl.DataFrame, name: str) -> pl.Expr:
    """A label the page itself exposed: ``exported_<name>`` where a target label of the name displaced it.

    With ``honor_labels: false`` (Prometheus, and fleetlens's scraper) a target label wins a name
    collision and the page's own value moves to ``exported_<name>``; a pod label such as Istio's
    ``version``, mapped onto the target, would otherwise hide Triton's repository ``version``.
    """
    return label(frame, f"exported_{name}", name)
