"""Kayenta's canary score: weighted pass share per group, critical and no-data overrides, Pass/Marginal/Fail.

Follows spinnaker/kayenta ``kayenta-judge`` (``scorers/WeightedSumScorer.scala``, ``ScoringHelper.scala``,
``classifiers/score/ThresholdScoreClassifier.scala``) and is checked against its ScorerSuite
(``tests/fixtures/upstream/kayenta/scorer_cases.json``):

- muted metrics are left out;
- a group scores 100 * Pass / (Pass + High + Low + NodataFailMetric); ``Nodata`` and ``Error`` are not
  counted, and a group with none of the counted labels has no data: it scores 0 but counts as 100;
- groups without a configured weight share ``100 - sum(weights)`` equally; the summary is
  sum(score * weight / 100), rounded half-up to 2 decimals;
- the summary is 0 when a critical metric is not ``Pass``, or when 50 % or more of the metrics are
  ``Nodata``;
- summary >= ``pass_threshold`` is Pass, >= ``marginal_threshold`` Marginal, anything lower Fail.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from analytics.canary.kayenta_classifier import KayentaLabel

NODATA_THRESHOLD_PERCENT = 50.0
_COUNTED = (KayentaLabel.PASS, KayentaLabel.HIGH, KayentaLabel.LOW, KayentaLabel.NODATA_FAIL_METRIC)


class ScoreClassification(StrEnum):
    """The canary's overall classification, spelled as Kayenta's ``ScoreClassificationLabel``."""

    PASS = "Pass"
    MARGINAL = "Marginal"
    FAIL = "Fail"


@dataclass(frozen=True, slots=True)
class ScoredMetric:
    """What the scorer needs of one classified metric."""

    name: str
    classification: KayentaLabel
    groups: tuple[str, ...]
    critical: bool = False
    muted: bool = False
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class GroupScore:
    """One group's pass share (0-100), whether it had no counted metric, and its label counts."""

    name: str
    score: float
    no_data: bool
    weight: float
    label_counts: tuple[tuple[KayentaLabel, int], ...]
    n_metrics: int


@dataclass(frozen=True, slots=True)
class KayentaScore:
    """The summary score, its classification and the group scores and reason behind it."""

    score: float
    classification: ScoreClassification
    group_scores: tuple[GroupScore, ...]
    n_metrics: int  # metrics scored: the muted ones are not
    reason: str | None


def compute_kayenta_score(
    metrics: Sequence[ScoredMetric], *, group_weights: Mapping[str, float] | None = None,
    pass_threshold: float, marginal_threshold: float,
) -> KayentaScore:
    """Kayenta's ``ScoringHelper.score``: classified metrics and group weights -> score and classification."""
    scored = [m for m in metrics if not m.muted]
    weights = dict(group_weights or {})
    groups = _group_scores(scored, weights)
    critical = [m for m in scored if m.critical and m.classification is not KayentaLabel.PASS]
    n_nodata = sum(1 for m in scored if m.classification is KayentaLabel.NODATA)
    if critical:
        score, reason = 0.0, f"Canary Failed: {critical[0].reason}"
    elif scored and 100.0 * n_nodata / len(scored) >= NODATA_THRESHOLD_PERCENT:
        score = 0.0
        reason = f"Canary Failed: {NODATA_THRESHOLD_PERCENT:g}% or more metrics returned NODATA"
    else:
        total = sum((100.0 if g.no_data else g.score) * (g.weight / 100) for g in groups)
        score, reason = compute_half_up(total, 2), None
    if score >= pass_threshold:
        classification = ScoreClassification.PASS
    elif score >= marginal_threshold:
        classification = ScoreClassification.MARGINAL
    else:
        classification = ScoreClassification.FAIL
    return KayentaScore(score=score, classification=classification, group_scores=groups,
                        n_metrics=len(scored), reason=reason)


def compute_half_up(value: float, places: int) -> float:
    """commons-math ``Precision.round(value, places)``: decimal rounding, halves away from zero."""
    return float(Decimal(repr(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def _group_scores(metrics: Sequence[ScoredMetric], weights: Mapping[str, float]) -> tuple[GroupScore, ...]:
    """Each group's score in order of first appearance, with its configured or shared weight."""
    labels: dict[str, list[KayentaLabel]] = {}
    for metric in metrics:
        for group in metric.groups:
            labels.setdefault(group, []).append(metric.classification)
    unweighted = [g for g in labels if g not in weights]
    shared = (100.0 - sum(weights.values())) / len(unweighted) if unweighted else 0.0
    result = []
    for group, group_labels in labels.items():
        counts = Counter(group_labels)
        counted = sum(counts[label] for label in _COUNTED)
        score = 0.0 if counted == 0 else counts[KayentaLabel.PASS] / counted * 100
        result.append(GroupScore(name=group, score=score, no_data=counted == 0,
                                 weight=weights.get(group, shared), label_counts=tuple(sorted(counts.items())),
                                 n_metrics=len(group_labels)))
    return tuple(result)
