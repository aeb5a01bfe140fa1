"""The version timeline per tenant x model, built from ``deployments`` rows, and version/variant assignment by time.

Rules (pure, order-independent: rows are deduplicated and put in one canonical order first):

- ``started`` V makes V the canary (weight 0 until a weight row says otherwise); with no version it
  resumes the last canary of that tenant x model (Argo's ``RolloutRetry``).
- ``weight`` (and ``step`` rows that state a weight) set the canary weight; ``paused`` pauses it, a
  later ``step`` resumes it. They apply to the active canary; with none active they are ignored.
- ``promoted`` makes the canary the stable version; ``aborted`` drops the canary (traffic back to
  stable); ``rolled_back`` V makes V stable and drops any canary.
- ``warmup_started`` / ``warmup_done`` track warm-up per version, whatever its role; a warm-up row of a
  version while the stable version is unknown reveals the serving version, which becomes stable.
- ``gitops`` rows (Argo CD syncs) carry no pod template hash and do not change version state.
- Rows at the same instant apply in a fixed order (started, scaled, warm-up, weight, step, paused,
  promoted, aborted, rolled_back), so only the state at the end of an instant is kept.

Clock skew: Argo, Flagger, our webhook receiver and the kubelets keep their own clocks. A row that
needs an active canary but finds none is held for ``SKEW_TOLERANCE_S`` seconds: if a ``started`` row of
the same tenant x model follows within that tolerance, the held row applies right after it, at the
start's time. Warm-up is tracked per version, so its ordering against the start never matters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from analytics.schema import DEPLOYMENTS, UTC_MS, DeployAction, DeploySource, Variant, conform

A = DeployAction
SKEW_TOLERANCE_S = 5.0
_PRIORITY = {a: i for i, a in enumerate((
    A.STARTED, A.SCALED, A.WARMUP_STARTED, A.WARMUP_DONE, A.WEIGHT, A.STEP, A.PAUSED,
    A.PROMOTED, A.ABORTED, A.ROLLED_BACK,
))}
_PROGRESS = frozenset({A.WEIGHT, A.STEP, A.PAUSED})  # held a moment when no canary is active

TIMELINE_SCHEMA = pl.Schema({
    "tenant": pl.Utf8,
    "model": pl.Utf8,
    "valid_from": UTC_MS,
    "valid_to": UTC_MS,  # exclusive; null: still in effect at the last row
    "stable_version": pl.Utf8,
    "canary_version": pl.Utf8,  # null with canary_active: a canary of unknown version
    "canary_active": pl.Boolean,
    "canary_weight_pct": pl.Float64,
    "canary_paused": pl.Boolean,
    "canary_warming": pl.Boolean,  # null: no warm-up row seen for the canary version
    "outcome": pl.Utf8,  # progressing | paused | promoted | aborted | rolled_back; null before any
})


@dataclass(frozen=True, slots=True)
class VersionState:
    """Which versions serve one tenant x model during one interval."""

    stable_version: str | None = None
    canary_version: str | None = None
    canary_active: bool = False
    canary_weight_pct: float | None = None
    canary_paused: bool = False
    canary_warming: bool | None = None
    outcome: str | None = None


@dataclass(slots=True)
class _Machine:
    """The mutable state of one tenant x model while rows are applied."""

    stable: str | None = None
    canary: str | None = None
    active: bool = False
    weight: float | None = None
    paused: bool = False
    outcome: str | None = None
    last_canary: str | None = None
    warm: dict[str, bool] = field(default_factory=dict)

    def snapshot(self) -> VersionState:
        warming = self.warm.get(self.canary) if self.active and self.canary else None
        return VersionState(self.stable, self.canary if self.active else None, self.active,
                            self.weight if self.active else None, self.paused if self.active else False,
                            warming, self.outcome)

    def apply(self, action: DeployAction, version: str | None, weight: float | None) -> bool:
        """Apply one row; False for a progress row while no canary is active (the caller may hold it)."""
        if action in _PROGRESS and not self.active:
            return False
        match action:
            case A.STARTED:
                version = version or (self.canary if self.active else self.last_canary)
                if version is not None and version == self.stable:
                    return True  # re-applying the stable spec starts nothing
                if not (self.active and (version is None or version == self.canary)):  # a repeat changes nothing
                    self.canary, self.active, self.paused = version, True, False
                    self.weight, self.outcome = (weight if weight is not None else 0.0), "progressing"
                    self.last_canary = version or self.last_canary
            case A.WEIGHT | A.STEP:
                if weight is not None:
                    self.weight = weight
                if action is A.STEP:
                    self.paused, self.outcome = False, "progressing"
            case A.PAUSED:
                self.paused, self.outcome = True, "paused"
            case A.PROMOTED:
                # A promotion naming its version states the stable version even when its start was not seen.
                if self.active and (version is None or self.canary is None or version == self.canary):
                    self.stable = self.canary if version is None else version
                    self._end("promoted")
                elif not self.active and version is not None and version != self.stable:
                    self.stable, self.outcome = version, "promoted"
            case A.ABORTED:
                if self.active and (version is None or self.canary is None or version == self.canary):
                    self._end("aborted")
            case A.ROLLED_BACK:
                self.stable = version or self.stable
                self._end("rolled_back")
            case A.WARMUP_STARTED | A.WARMUP_DONE:
                if version is not None:
                    self.warm[version] = action is A.WARMUP_STARTED
                    if self.stable is None and version != self.canary:
                        self.stable = version
        return True

    def _end(self, outcome: str) -> None:
        self.canary, self.active, self.weight, self.paused, self.outcome = None, False, None, False, outcome


def _canonical(deployments: pl.DataFrame) -> pl.DataFrame:
    """Deduplicated rows in one total order that does not depend on arrival order."""
    df = conform(deployments, DEPLOYMENTS).filter(pl.col("source") != DeploySource.GITOPS.value).unique()
    prio = pl.col("action").replace_strict(_PRIORITY, return_dtype=pl.Int32)
    return df.with_columns(_prio=prio).sort(
        ["tenant", "model", "ts", "_prio", "weight_pct", "model_version", "source", "workload", "message",
         "revision", "artifact_digest"], nulls_last=False,
    )


def _replay(rows: Sequence[Mapping[str, Any]]) -> list[tuple[datetime, VersionState]]:
    """(instant, state after it) for the rows of one tenant x model, in canonical order."""
    m = _Machine()
    out: list[tuple[datetime, VersionState]] = []
    held: list[Mapping[str, Any]] = []
    tol = timedelta(seconds=SKEW_TOLERANCE_S)
    for row in rows:
        ts, action = row["ts"], A(row["action"])
        held = [h for h in held if ts - h["ts"] <= tol]  # too old to be a skewed clock
        if not m.apply(action, row["model_version"], row["weight_pct"]):
            held.append(row)
        elif action is A.STARTED and held:
            for h in held:  # rows that only looked early because their clock runs behind
                m.apply(A(h["action"]), h["model_version"], h["weight_pct"])
            held = []
        if out and out[-1][0] == ts:
            out[-1] = (ts, m.snapshot())
        else:
            out.append((ts, m.snapshot()))
    return out


def build_version_timeline(deployments: pl.DataFrame) -> pl.DataFrame:
    """Intervals ``[valid_from, valid_to)`` per tenant x model with stable and canary versions, weight, warm-up, outcome."""
    rows: list[dict[str, Any]] = []
    df = _canonical(deployments)
    for (tenant, model), part in df.group_by(["tenant", "model"], maintain_order=True):
        steps = _replay(part.to_dicts())
        merged: list[tuple[datetime, VersionState]] = []
        for ts, state in steps:
            if not merged or merged[-1][1] != state:
                merged.append((ts, state))
        for i, (ts, state) in enumerate(merged):
            end = merged[i + 1][0] if i + 1 < len(merged) else None
            rows.append({"tenant": tenant, "model": model, "valid_from": ts, "valid_to": end,
                         **{f: getattr(state, f) for f in VersionState.__slots__}})
    return pl.DataFrame(rows, schema=TIMELINE_SCHEMA).sort(["tenant", "model", "valid_from"])


def version_at(timeline: pl.DataFrame, ts: datetime, tenant: str, model: str) -> VersionState | None:
    """The state of one tenant x model at ``ts``, or None before its first row."""
    hit = timeline.filter(
        (pl.col("tenant") == tenant) & (pl.col("model") == model) & (pl.col("valid_from") <= ts)
        & (pl.col("valid_to").is_null() | (pl.col("valid_to") > ts))
    )
    if hit.is_empty():
        return None
    row = hit.row(0, named=True)
    return replace(VersionState(), **{f: row[f] for f in VersionState.__slots__})


def assign_versions(frame: pl.DataFrame, timeline: pl.DataFrame, *, version_col: str = "model_version") -> pl.DataFrame:
    """Add ``model_version`` and ``variant`` to rows with ``ts``, ``tenant``, ``model`` (and maybe their pod's version).

    A row whose own version is known keeps it; its variant is canary / baseline when it matches the
    interval's canary / stable version during a canary (the one unknown side is the other version),
    else none. A row with no version gets the stable version when no canary runs, the one version
    that takes all traffic at weight 0 or 100, and otherwise null with variant none: never a guess.
    """
    own = pl.col(version_col) if version_col in frame.columns else pl.lit(None, dtype=pl.Utf8)
    base = frame.with_row_index("_row").with_columns(_own=own.cast(pl.Utf8), _ts=pl.col("ts").cast(UTC_MS))
    tl = timeline.select(
        pl.col("tenant"), pl.col("model"), pl.col("valid_from").alias("_ts"), "valid_to", "stable_version",
        "canary_version", "canary_active", "canary_weight_pct",
    ).sort("_ts")
    # Both sides are sorted on _ts, so each group is too (polars cannot check that with `by`).
    joined = base.sort("_ts").join_asof(tl, on="_ts", by=["tenant", "model"], strategy="backward",
                                        check_sortedness=False)
    inside = pl.col("valid_to").is_null() | (pl.col("_ts") < pl.col("valid_to"))
    stable = pl.when(inside).then(pl.col("stable_version"))
    canary = pl.when(inside).then(pl.col("canary_version"))
    active = pl.when(inside).then(pl.col("canary_active")).otherwise(False).fill_null(False)
    weight = pl.when(inside).then(pl.col("canary_weight_pct"))
    version = (
        pl.when(pl.col("_own").is_not_null()).then(pl.col("_own"))
        .when(~active).then(stable)
        .when(weight == 0).then(stable)
        .when(weight == 100).then(canary)
        .otherwise(None)
    )
    is_canary = (version == canary) | (canary.is_null() & stable.is_not_null() & (version != stable))
    is_base = (version == stable) | (stable.is_null() & canary.is_not_null() & (version != canary))
    variant = (
        pl.when(~active | version.is_null()).then(pl.lit(Variant.NONE.value))
        .when(is_canary.fill_null(False)).then(pl.lit(Variant.CANARY.value))
        .when(is_base.fill_null(False)).then(pl.lit(Variant.BASELINE.value))
        .otherwise(pl.lit(Variant.NONE.value))
    )
    out = joined.with_columns(_version=version, _variant=variant).sort("_row")
    keep = [c for c in frame.columns if c not in ("model_version", "variant")]
    return out.select(*keep, pl.col("_version").alias("model_version"), pl.col("_variant").alias("variant"))
