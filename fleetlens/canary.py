"""``fleetlens canary judge``: a canary verdict from the stored data sets, with every number behind it."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import polars as pl

from analytics.canary.evidence import compute_canary_evidence
from analytics.canary.policy import CanaryPolicy, default_policy
from analytics.canary.samples import build_arm_samples, compute_ttft_settled_at, compute_warmup_intervals
from analytics.canary.verdict import VerdictResult, compute_verdict
from analytics.errors import CanaryError
from analytics.names import validate_model, validate_tenant
from analytics.schema import DEPLOYMENTS, REQUESTS
from analytics.timeline import build_version_timeline
from collectors.store.datasets import read_dataset
from fleetlens.canary_policy import load_canary_policy
from fleetlens.commands import console, load_optional_config, print_frame, resolve_data_dir


def judge_stored_canary(root: Path, *, tenant: str, model: str, baseline: str, canary: str, start: datetime,
                        end: datetime, policy: CanaryPolicy) -> tuple[VerdictResult, list[tuple[datetime, datetime]]]:
    """The verdict for ``canary`` against ``baseline`` over ``[start, end)``, and the warm-up left out."""
    validate_tenant(tenant)
    validate_model(model)
    if baseline == canary:
        raise CanaryError(f"baseline and canary are the same version {baseline!r}")
    requests = read_dataset(root, REQUESTS, tenants=[tenant], start=start, end=end).filter(
        pl.col("model") == model).collect()
    deployments = read_dataset(root, DEPLOYMENTS, tenants=[tenant]).filter(pl.col("model") == model).collect()
    exclude = compute_warmup_intervals(build_version_timeline(deployments), tenant=tenant, model=model,
                                       canary_version=canary, warmup_s=policy.warmup_s) if deployments.height else []
    if not exclude:
        # No rollout event speaks of this canary: its warm-up is where its TTFT had not settled yet.
        mine = requests.filter((pl.col("model_version") == canary) & pl.col("ttft_s").is_not_null())
        settled = compute_ttft_settled_at(mine.get_column("ts").to_list(), mine.get_column("ttft_s").to_list())
        exclude = [(start, end if settled is None else settled)]
    arms = [build_arm_samples(requests, tenant=tenant, model=model, version=v, window=(start, end), exclude=exclude)
            for v in (baseline, canary)]
    evidence = compute_canary_evidence(policy, *arms)
    return compute_verdict(policy, evidence, elapsed_s=(end - start).total_seconds()), exclude


def verdict_document(result: VerdictResult, excluded: list[tuple[datetime, datetime]]) -> dict[str, object]:
    """The verdict as JSON-ready data (the shape the gate API answers with)."""
    def number(x: object) -> object:
        return None if isinstance(x, float) and not math.isfinite(x) else x

    metrics = []
    for o in result.metrics:
        ev = {k: number(v) for k, v in asdict(o.evidence).items()}
        metrics.append({"name": o.policy.name, "signal": str(o.policy.signal), "quantile": o.policy.quantile,
                        "bad": str(o.policy.bad), "critical": o.policy.critical, "weight": o.policy.weight,
                        "tolerance": o.tolerance, "classification": str(o.classification), "reason": o.reason,
                        **{k: v for k, v in ev.items() if k != "name"}})
    return {"verdict": str(result.verdict), "score": round(result.score, 3), "final": result.final,
            "reasons": list(result.reasons), "metrics": metrics,
            "warmup_excluded": [[a.isoformat(), b.isoformat()] for a, b in excluded]}


def verdict_json(result: VerdictResult, excluded: list[tuple[datetime, datetime]]) -> str:
    """The verdict document as indented JSON."""
    return json.dumps(verdict_document(result, excluded), indent=2)


def canary_judge(*, config_path: Path | None, data_dir: Path | None, tenant: str, model: str, baseline: str,
                 canary: str, start: datetime, end: datetime, policy_path: Path | None, fmt: str) -> int:
    """``fleetlens canary judge``: print the verdict; exit 0 whatever it is (a verdict is not an error)."""
    root = resolve_data_dir(load_optional_config(config_path), data_dir)
    policy = load_canary_policy(policy_path) if policy_path is not None else default_policy()
    result, excluded = judge_stored_canary(root, tenant=tenant, model=model, baseline=baseline, canary=canary,
                                           start=start, end=end, policy=policy)
    if fmt == "json":
        print(verdict_json(result, excluded))
        return 0
    console.print(f"[bold]{result.verdict}[/bold]  score {result.score:.1f}  ({result.reasons[0]})")
    doc = verdict_document(result, excluded)
    cols = ["name", "classification", "n_baseline", "n_canary", "baseline", "canary", "lower", "upper",
            "tolerance", "p_value", "requests_needed"]
    print_frame(f"{tenant}/{model}: {canary} against {baseline}",
                 pl.DataFrame([{k: m[k] for k in cols} for m in doc["metrics"]],  # type: ignore[union-attr]
                              infer_schema_length=None))
    return 0
