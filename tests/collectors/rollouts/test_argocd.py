"""Argo CD Application events -> gitops rows."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import yaml

from analytics.timeline import build_version_timeline
from collectors.rollouts.argocd import classify_argocd_event
from collectors.rollouts.events import parse_k8s_events

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "events" / "flagger-argocd-deployment.yaml"
SHA = "4ebe26e6fa669901c6be8eaebe3083b9072af15a"


@pytest.mark.parametrize(("reason", "message", "expected"), [
    # Formats from argoproj/argo-cd controller/appcontroller.go (autoSync, setOperationState, persistAppStatus).
    pytest.param("OperationStarted", f"Initiated automated sync to '{SHA}'", ("sync_started", SHA), id="automated sync"),
    pytest.param("OperationCompleted", f"Sync operation to {SHA} succeeded", ("sync_succeeded", SHA), id="sync succeeded"),
    pytest.param("OperationCompleted", f"Partial sync operation to {SHA} succeeded", ("sync_succeeded", SHA), id="partial"),
    pytest.param("OperationCompleted", f"Sync operation to {SHA} failed: one or more objects failed to apply",
                 ("sync_failed", SHA), id="sync failed"),
    pytest.param("ResourceUpdated", "Updated health status: Healthy -> Progressing", None, id="status change"),
])
def test_argocd_events_map_to_actions(reason: str, message: str, expected: tuple[str, str] | None) -> None:
    got = classify_argocd_event(reason, message)
    assert (None if got is None else (got[0].value, got[1])) == expected


def test_application_events_go_to_the_destination_tenant_with_the_git_revision() -> None:
    batch = parse_k8s_events(yaml.safe_load(FIX.read_text()), source="fixture")
    rows = batch.deployments.filter(pl.col("source") == "gitops")
    assert rows.select("tenant", "workload", "action", "artifact_digest").rows() == [
        ("team-chat", "chat-app", "sync_started", SHA), ("team-chat", "chat-app", "sync_succeeded", SHA)]


def test_gitops_rows_do_not_change_the_version_timeline() -> None:
    rows = parse_k8s_events(yaml.safe_load(FIX.read_text()), source="fixture").deployments
    gitops = rows.filter(pl.col("source") == "gitops")
    assert build_version_timeline(gitops).is_empty()
    assert build_version_timeline(rows).equals(build_version_timeline(rows.filter(pl.col("source") != "gitops")))
