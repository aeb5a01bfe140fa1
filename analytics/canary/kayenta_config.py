"""A Kayenta canary-config metric's judge settings (``analysisConfigurations.canary``) and their defaults.

Read as ``NetflixACAJudge.classifyMetric`` reads them (spinnaker/kayenta ``kayenta-judge``): an unknown
``direction`` is ``either``, an unknown ``nanStrategy`` is ``remove``, an unknown outlier strategy is
``keep``; the effect-size thresholds default to 1.0 for ``meanRatio`` and 0.5 for ``cles``. Where the JVM
would throw a ``ClassCastException`` (a flag that is not a boolean, a threshold that is not a number)
this raises ``ConfigError`` naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from analytics.canary.policy import BadDirection
from analytics.errors import ConfigError

_SOURCE = "kayenta canary config"
E = TypeVar("E", bound=StrEnum)


class NanStrategy(StrEnum):
    """What the judge does with NaN values before comparing: drop them, or count them as 0."""

    REMOVE = "remove"
    REPLACE = "replace"


class OutlierStrategy(StrEnum):
    """Whether the judge drops values past the IQR fences (``IQRDetector``) before comparing."""

    KEEP = "keep"
    REMOVE = "remove"


class EffectMeasure(StrEnum):
    """The effect size the thresholds apply to, spelled as Kayenta's ``effectSize.measure``."""

    MEAN_RATIO = "meanRatio"  # mean(canary) / mean(baseline)
    CLES = "cles"  # common-language effect size, P(canary > baseline)


@dataclass(frozen=True, slots=True)
class EffectSizeThresholds:
    """How large an effect must be to count (allowed_*) and to fail a critical metric (critical_*)."""

    measure: EffectMeasure = EffectMeasure.MEAN_RATIO
    allowed_increase: float = 1.0
    allowed_decrease: float = 1.0
    critical_increase: float = 1.0
    critical_decrease: float = 1.0


@dataclass(frozen=True, slots=True)
class KayentaMetricConfig:
    """One metric's judge settings; the defaults are NetflixACAJudge's."""

    direction: BadDirection = BadDirection.EITHER
    nan_strategy: NanStrategy = NanStrategy.REMOVE
    outlier_strategy: OutlierStrategy = OutlierStrategy.KEEP
    outlier_factor: float = 3.0
    critical: bool = False
    must_have_data: bool = False
    muted: bool = False
    effect: EffectSizeThresholds = field(default_factory=EffectSizeThresholds)

    def __post_init__(self) -> None:
        """The IQR detector's own check: its factor must be positive."""
        if not self.outlier_factor > 0:
            raise ValueError(f"outlier_factor must be greater than zero, got {self.outlier_factor!r}")


def parse_kayenta_metric_config(analysis_configurations: Mapping[str, object]) -> KayentaMetricConfig:
    """A metric's ``analysisConfigurations`` (the ``canary`` key inside) as NetflixACAJudge reads it."""
    canary = analysis_configurations.get("canary", {})
    if not isinstance(canary, Mapping):
        raise ConfigError("canary", f"expected a mapping, got {type(canary).__name__}", source=_SOURCE)
    effect = _mapping(canary, "effectSize")
    outliers = _mapping(canary, "outliers")
    measure = EffectMeasure.CLES if str(effect.get("measure", "meanRatio")) == "cles" else EffectMeasure.MEAN_RATIO
    default = 0.5 if measure is EffectMeasure.CLES else 1.0
    return KayentaMetricConfig(
        direction=_choice(BadDirection, canary.get("direction"), BadDirection.EITHER),
        nan_strategy=_choice(NanStrategy, canary.get("nanStrategy"), NanStrategy.REMOVE),
        outlier_strategy=_choice(OutlierStrategy, outliers.get("strategy"), OutlierStrategy.KEEP),
        outlier_factor=_number(outliers, "outlierFactor", 3.0, "canary.outliers"),
        critical=_flag(canary, "critical"),
        must_have_data=_flag(canary, "mustHaveData"),
        muted=_flag(canary, "muted"),
        effect=EffectSizeThresholds(
            measure=measure,
            allowed_increase=_number(effect, "allowedIncrease", default, "canary.effectSize"),
            allowed_decrease=_number(effect, "allowedDecrease", default, "canary.effectSize"),
            critical_increase=_number(effect, "criticalIncrease", default, "canary.effectSize"),
            critical_decrease=_number(effect, "criticalDecrease", default, "canary.effectSize"),
        ),
    )


def _choice(enum: type[E], value: object, default: E) -> E:
    """``value`` as a member of ``enum``, or ``default`` when absent or unknown (Kayenta's ``parse``)."""
    try:
        return enum(str(value))
    except ValueError:
        return default


def _mapping(parent: Mapping[str, object], key: str) -> Mapping[str, object]:
    """A nested mapping, empty when absent."""
    value = parent.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"canary.{key}", f"expected a mapping, got {type(value).__name__}", source=_SOURCE)
    return value


def _flag(parent: Mapping[str, object], key: str) -> bool:
    """A boolean setting, False when absent."""
    value = parent.get(key, False)
    if not isinstance(value, bool):
        raise ConfigError(f"canary.{key}", f"expected true or false, got {value!r}", source=_SOURCE)
    return value


def _number(parent: Mapping[str, object], key: str, default: float, where: str) -> float:
    """A numeric setting, ``default`` when absent."""
    value = parent.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}.{key}", f"expected a number, got {value!r}", source=_SOURCE)
    return float(value)
