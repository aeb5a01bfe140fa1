"""Kayenta's metric classifier: NetflixACAJudge's per-metric comparison, label for label.

Follows spinnaker/kayenta ``kayenta-judge`` (``NetflixACAJudge.scala`` ``classifyMetric``,
``classifiers/metric/MannWhitneyClassifier.scala``, ``MeanInequalityClassifier.scala``,
``stats/EffectSizes.scala``, ``preprocessing/Transforms.scala``, ``detectors/IQRDetector.scala``), and is
checked against its ClassifierSuite (``tests/fixtures/upstream/kayenta/classifier_cases.json``). The
judge compares the canary (experiment) with the baseline (control) in this order: NaNs removed or
replaced, outliers optionally removed; an empty side is ``Nodata`` (``NodataFailMetric`` when the metric
must have data and is not critical; ``Pass`` under the replace strategy); identical samples, or one
value overall, ``Pass``; otherwise the Mann-Whitney interval of experiment - control
(:mod:`analytics.canary.kayenta_mannwhitney`) is ``High`` when its lower end exceeds
``tolerance * |estimate|`` and the effect size reaches ``allowed_increase``, ``Low`` mirrored, else
``Pass``. The band scales with the estimate, so a wide interval passes a large shift
(spinnaker/spinnaker#6278): this mode is kept for comparison with Kayenta, not as the gate's rule.

One deliberate difference: when both samples are constant Kayenta adds unseeded Gaussian noise (sd =
value * 1e-5) to break the ties; here the generator is seeded (``noise_seed``) so a verdict repeats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from scipy.stats import mannwhitneyu, rankdata

from analytics.canary.kayenta_config import (
    EffectMeasure,
    KayentaMetricConfig,
    NanStrategy,
    OutlierStrategy,
)
from analytics.canary.kayenta_mannwhitney import compute_shift_interval
from analytics.canary.policy import BadDirection
from analytics.errors import CanaryError

JUDGE_TOLERANCE = 0.25  # NetflixACAJudge hard-codes both; its configuration properties are never read
JUDGE_CONF_LEVEL = 0.98
DEFAULT_CONFIG = KayentaMetricConfig()  # NetflixACAJudge's defaults for a metric that sets nothing
_NOISE_SCALE = 1e-5
_NAN = math.nan


class KayentaLabel(StrEnum):
    """A metric's classification, spelled as Kayenta's ``MetricClassificationLabel``."""

    PASS = "Pass"
    HIGH = "High"
    LOW = "Low"
    NODATA_FAIL_METRIC = "NodataFailMetric"
    NODATA = "Nodata"
    ERROR = "Error"


@dataclass(frozen=True, slots=True)
class MetricComparison:
    """One metric's verdict and every number behind it (NaN where the judge did not compute it)."""

    name: str
    classification: KayentaLabel
    critical: bool  # a critical metric's failure: the scorer fails the whole canary on it
    reason: str | None
    n_control: int  # after NaN and outlier handling
    n_experiment: int
    mean_control: float = _NAN
    mean_experiment: float = _NAN
    estimate: float = _NAN  # Hodges-Lehmann shift, experiment - control
    lower: float = _NAN
    upper: float = _NAN
    conf_level: float = _NAN
    bound: float = _NAN  # tolerance * |estimate|: the interval must clear it
    p_value: float = _NAN  # two-sided Mann-Whitney U, normal approximation with continuity correction
    effect_size: float = _NAN  # in effect_measure
    effect_measure: EffectMeasure = EffectMeasure.MEAN_RATIO
    deviation: float = 1.0  # mean ratio experiment/control, Kayenta's ``resultMetadata.ratio``
    noise_added: bool = False  # both samples were constant: seeded noise broke the ties


def compute_metric_comparison(
    control: np.ndarray, experiment: np.ndarray, *, config: KayentaMetricConfig = DEFAULT_CONFIG,
    name: str = "metric", tolerance: float = JUDGE_TOLERANCE, conf_level: float = JUDGE_CONF_LEVEL,
    noise_seed: int = 0,
) -> MetricComparison:
    """NetflixACAJudge's ``classifyMetric`` with MannWhitneyClassifier: baseline vs canary values."""
    control = compute_transformed(control, config)
    experiment = compute_transformed(experiment, config)
    early = _early_classification(control, experiment, config, name)
    if early is not None:
        return early
    noise_added = len(np.unique(experiment)) == 1 and len(np.unique(control)) == 1
    if noise_added:
        rng = np.random.default_rng(noise_seed)
        experiment = experiment + rng.standard_normal(experiment.size) * (experiment[0] * _NOISE_SCALE)
        control = control + rng.standard_normal(control.size) * (control[0] * _NOISE_SCALE)
    common = {"name": name, "n_control": control.size, "n_experiment": experiment.size,
              "mean_control": float(np.mean(control)), "mean_experiment": float(np.mean(experiment)),
              "conf_level": conf_level, "effect_measure": config.effect.measure,
              "deviation": compute_mean_ratio(control, experiment), "noise_added": noise_added}
    try:
        interval = compute_shift_interval(experiment, control, conf_level=conf_level)
    except CanaryError as exc:  # Kayenta's judge turns any failure of the test into the Error label
        return MetricComparison(classification=KayentaLabel.ERROR, critical=False,
                                reason=f"Metric Classification Failed: {exc}", **common)
    effect = (compute_cles(control, experiment) if config.effect.measure is EffectMeasure.CLES
              else compute_mean_ratio(control, experiment))
    bound = tolerance * abs(interval.estimate)
    thresholds = config.effect
    label = KayentaLabel.PASS
    if (config.direction in (BadDirection.INCREASE, BadDirection.EITHER) and interval.lower > bound
            and (math.isnan(effect) or effect >= thresholds.allowed_increase)):
        label = KayentaLabel.HIGH
    elif (config.direction in (BadDirection.DECREASE, BadDirection.EITHER) and interval.upper < -bound
            and (math.isnan(effect) or effect <= thresholds.allowed_decrease)):
        label = KayentaLabel.LOW
    # A NaN effect (a zero mean) counts as reaching the critical threshold, as upstream.
    critical = config.critical and (
        (label is KayentaLabel.HIGH and (math.isnan(effect) or effect >= thresholds.critical_increase))
        or (label is KayentaLabel.LOW and (math.isnan(effect) or effect <= thresholds.critical_decrease)))
    reason = None
    if label is not KayentaLabel.PASS:
        reason = (f"The metric {name} was classified as {label} (Critical)" if critical
                  else f"{name} was classified as {label}")
    p_value = float(mannwhitneyu(experiment, control, alternative="two-sided", method="asymptotic",
                                 use_continuity=True).pvalue)
    return MetricComparison(classification=label, critical=critical, reason=reason, estimate=interval.estimate,
                            lower=interval.lower, upper=interval.upper, bound=bound, p_value=p_value,
                            effect_size=effect, **common)


def compute_mean_inequality_comparison(
    control: np.ndarray, experiment: np.ndarray, *, config: KayentaMetricConfig = DEFAULT_CONFIG,
    name: str = "metric",
) -> MetricComparison:
    """Kayenta's MeanInequalityClassifier (a benchmark baseline): High/Low by the sign of the mean change."""
    control = compute_transformed(control, config)
    experiment = compute_transformed(experiment, config)
    if control.size == 0 or experiment.size == 0:
        return _nodata(control, experiment, config, name, deviation=0.0)
    mean_c, mean_e = float(np.mean(control)), float(np.mean(experiment))
    common = {"name": name, "n_control": control.size, "n_experiment": experiment.size,
              "mean_control": mean_c, "mean_experiment": mean_e}
    with np.errstate(divide="ignore", invalid="ignore"):  # x/0 is +-inf or NaN, as on the JVM
        ratio = float(np.float64(mean_e) / np.float64(mean_c))
    if config.direction in (BadDirection.INCREASE, BadDirection.EITHER) and mean_e > mean_c:
        return MetricComparison(classification=KayentaLabel.HIGH, critical=config.critical, deviation=ratio,
                                reason="The Canary mean was greater than the Baseline mean", **common)
    if config.direction in (BadDirection.DECREASE, BadDirection.EITHER) and mean_e < mean_c:
        return MetricComparison(classification=KayentaLabel.LOW, critical=config.critical, deviation=ratio,
                                reason="The Canary mean was less than the Baseline mean", **common)
    return MetricComparison(classification=KayentaLabel.PASS, critical=False, reason=None, **common)


def compute_transformed(values: np.ndarray, config: KayentaMetricConfig) -> np.ndarray:
    """One side's values after the judge's NaN strategy (remove, or replace by 0) and outlier strategy."""
    values = np.asarray(values, dtype=np.float64)
    nan = np.isnan(values)
    values = values[~nan] if config.nan_strategy is NanStrategy.REMOVE else np.where(nan, 0.0, values)
    if config.outlier_strategy is OutlierStrategy.REMOVE and values.size:
        values = values[~compute_iqr_outliers(values, factor=config.outlier_factor)]
    return values


def compute_iqr_outliers(values: np.ndarray, *, factor: float) -> np.ndarray:
    """Kayenta's ``IQRDetector(factor, reduceSensitivity=true)``: True where a value lies past the fences."""
    # R-7 percentiles (commons-math EstimationType.R_7) are numpy's default, "linear".
    p01, p25, p75, p99 = np.percentile(values, [1, 25, 75, 99])
    iqr = p75 - p25
    lower, upper = min(p01, p25 - factor * iqr), max(p99, p75 + factor * iqr)
    return (values > upper) | (values < lower)


def compute_mean_ratio(control: np.ndarray, experiment: np.ndarray) -> float:
    """Kayenta's ``meanRatio`` effect size: mean(experiment) / mean(control), NaN if either mean is 0."""
    mean_c, mean_e = float(np.mean(control)), float(np.mean(experiment))
    return _NAN if mean_c == 0.0 or mean_e == 0.0 else mean_e / mean_c


def compute_cles(control: np.ndarray, experiment: np.ndarray) -> float:
    """Kayenta's CLES (Vargha-Delaney A): the share of pairs where the canary is higher, ties count half."""
    m, n = len(experiment), len(control)
    r1 = float(rankdata(np.concatenate([experiment, control]), method="average")[:m].sum())
    return (2 * r1 - m * (m + 1)) / (2 * n * m)


def _early_classification(control: np.ndarray, experiment: np.ndarray, config: KayentaMetricConfig,
                          name: str) -> MetricComparison | None:
    """The classifier's checks before the test: no data, identical samples, one value overall."""
    if control.size == 0 or experiment.size == 0:
        return _nodata(control, experiment, config, name, deviation=1.0)
    common = {"name": name, "n_control": control.size, "n_experiment": experiment.size,
              "mean_control": float(np.mean(control)), "mean_experiment": float(np.mean(experiment))}
    if control.size == experiment.size and np.array_equal(np.sort(control), np.sort(experiment)):
        return MetricComparison(classification=KayentaLabel.PASS, critical=False,
                                reason="The Canary and Baseline data are identical", **common)
    if np.unique(np.concatenate([control, experiment])).size == 1:
        return MetricComparison(classification=KayentaLabel.PASS, critical=False, reason=None, **common)
    return None


def _nodata(control: np.ndarray, experiment: np.ndarray, config: KayentaMetricConfig, name: str, *,
            deviation: float) -> MetricComparison:
    """An empty side: Nodata (NodataFailMetric if data are required), or Pass under NaN replacement."""
    counts = {"name": name, "n_control": control.size, "n_experiment": experiment.size}
    if config.nan_strategy is NanStrategy.REPLACE:
        return MetricComparison(classification=KayentaLabel.PASS, critical=False, reason=None, **counts)
    reason = f"Missing data for {name}"
    if config.must_have_data and not config.critical:
        return MetricComparison(classification=KayentaLabel.NODATA_FAIL_METRIC, critical=False, reason=reason,
                                **counts)
    return MetricComparison(classification=KayentaLabel.NODATA, critical=config.critical, reason=reason,
                            deviation=deviation, **counts)
