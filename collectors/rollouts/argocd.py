"""Argo CD Application events -> ``deployments`` actions (source gitops).

Argo CD records these as core/v1 Events on the Application (``util/argo/audit_logger.go``), in Argo
CD's namespace, with the destination namespace in the event's ``dest-namespace`` annotation:

| reason | message (``controller/appcontroller.go``) | action |
|---|---|---|
| ``OperationStarted`` | "Initiated automated sync to '<rev>'" (or a user's "initiated sync to <rev>") | sync_started |
| ``OperationCompleted`` | "[Partial ]Sync operation to <rev> succeeded" | sync_succeeded |
| ``OperationCompleted`` (Warning) | "[Partial ]Sync operation to <rev> failed: <msg>" | sync_failed |
| ``ResourceUpdated`` | "Updated sync status: a -> b", "Updated health status: a -> b" | none |

A sync is not a promotion: it applies manifests, and the Rollout / Deployment controller then rolls
the version out with its own events. Syncs therefore have actions of their own (``sync_*``), never
``promoted``; the git revision goes to ``artifact_digest``. The rows carry no pod
template hash, so the version timeline does not use them for version state.
"""

from __future__ import annotations

import re

from analytics.schema import DeployAction

_QUOTED = re.compile(r"sync to '([^']+)'")
_BARE = re.compile(r"\bto (\S+?)(?: succeeded$| failed:|$)")


def _revision(message: str) -> str | None:
    m = _QUOTED.search(message) or _BARE.search(message)
    return m.group(1) if m else None


def classify_argocd_event(reason: str, message: str) -> tuple[DeployAction, str | None] | None:
    """(action, git revision) of an Argo CD Application event, or None when it is not about a sync."""
    if reason == "OperationStarted":
        return DeployAction.SYNC_STARTED, _revision(message)
    if reason == "OperationCompleted":
        # The controller appends "succeeded", or "failed:" and the reason, to "Sync operation to <rev>".
        failed = " failed" in message and not message.rstrip().endswith("succeeded")
        return (DeployAction.SYNC_FAILED if failed else DeployAction.SYNC_SUCCEEDED), _revision(message)
    return None
