"""Reading a canary policy file (YAML): every value checked, every error naming the file, key and line.

The file's shape (documented in docs/canary-policy.md, example in examples/canary-policy.yaml)::

    method: sequential          # or kayenta
    alpha: 0.05
    min_requests: 50
    step_limit_s: 1800
    warmup_s: 120
    pass_score: 95
    marginal_score: 75
    metrics:
      - {name: ttft_p95, signal: ttft, quantile: 0.95, bad: increase, weight: 2, threshold_rel: 0.2}

Without ``metrics`` the default metric set applies (``analytics.canary.policy.default_metrics``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from analytics.canary.policy import (
    LATENCY_SIGNALS,
    BadDirection,
    CanaryMethod,
    CanaryPolicy,
    CanarySignal,
    MetricPolicy,
    default_metrics,
)
from fleetlens.config_values import ValueChecker, join
from fleetlens.config_yaml import read_yaml

POLICY_KEYS = ("method", "alpha", "min_requests", "step_limit_s", "warmup_s", "pass_score", "marginal_score",
               "metrics")
METRIC_KEYS = ("name", "signal", "quantile", "bad", "critical", "weight", "threshold_abs", "threshold_rel")


def load_canary_policy(path: str | Path) -> CanaryPolicy:
    """Read and check the canary policy file at ``path``."""
    p = Path(path)
    raw, lines = read_yaml(p)
    return parse_canary_policy({} if raw is None else raw, source=str(p), lines=lines)


def parse_canary_policy(mapping: Any, *, source: str = "policy", lines: Mapping[str, int] | None = None) -> CanaryPolicy:
    """Check an already-parsed policy mapping."""
    c = _PolicyChecker(source, None, lines or {})
    m = c.mapping(mapping, "", POLICY_KEYS)
    defaults = CanaryPolicy(metrics=())
    alpha = c.fraction(m["alpha"], "alpha", open_ends=True) if "alpha" in m else defaults.alpha
    pass_score = c.score(m.get("pass_score", defaults.pass_score), "pass_score")
    marginal = c.score(m.get("marginal_score", defaults.marginal_score), "marginal_score")
    if marginal > pass_score:
        raise c.error("marginal_score", f"{marginal:g} is above pass_score {pass_score:g}")
    metrics = c.metrics(m["metrics"], "metrics") if "metrics" in m else default_metrics()
    return CanaryPolicy(
        metrics=metrics,
        method=c.choice(m["method"], "method", CanaryMethod) if "method" in m else defaults.method,
        alpha=alpha,
        min_requests=c.integer(m["min_requests"], "min_requests", minimum=1) if "min_requests" in m
        else defaults.min_requests,
        step_limit_s=c.number(m["step_limit_s"], "step_limit_s", positive=True) if "step_limit_s" in m
        else defaults.step_limit_s,
        warmup_s=c.non_negative(m["warmup_s"], "warmup_s") if "warmup_s" in m else defaults.warmup_s,
        pass_score=pass_score,
        marginal_score=marginal,
    )


class _PolicyChecker(ValueChecker):
    """The value checks of a canary policy on top of the configuration's."""

    def metrics(self, value: Any, key: str) -> tuple[MetricPolicy, ...]:
        items = self.sequence(value, key)
        if not items:
            raise self.error(key, "is empty: name at least one metric, or leave the key out for the defaults")
        out: list[MetricPolicy] = []
        seen: dict[str, str] = {}
        for i, item in enumerate(items):
            metric = self.metric(item, f"{key}[{i}]")
            if metric.name in seen:
                raise self.error(f"{key}[{i}].name", f"{metric.name!r} is already {seen[metric.name]}")
            seen[metric.name] = f"{key}[{i}]"
            out.append(metric)
        return tuple(out)

    def metric(self, value: Any, key: str) -> MetricPolicy:
        m = self.mapping(value, key, METRIC_KEYS)
        for required in ("name", "signal"):
            if required not in m:
                raise self.error(join(key, required), "missing (every metric needs a name and a signal)")
        signal = self.choice(m["signal"], join(key, "signal"), CanarySignal)
        quantile = self.fraction(m["quantile"], join(key, "quantile"), open_ends=True) if "quantile" in m else None
        if signal in LATENCY_SIGNALS and quantile is None:
            raise self.error(join(key, "quantile"), f"missing: a {signal} latency is compared at a quantile (0.5, 0.99)")
        if signal not in LATENCY_SIGNALS and quantile is not None:
            raise self.error(join(key, "quantile"), f"{signal} is not a latency: it has no quantile")
        return MetricPolicy(
            name=self.string(m["name"], join(key, "name")),
            signal=signal,
            quantile=quantile,
            bad=self.choice(m["bad"], join(key, "bad"), BadDirection) if "bad" in m else BadDirection.INCREASE,
            critical=self.flag(m.get("critical", False), join(key, "critical")),
            weight=self.non_negative(m["weight"], join(key, "weight")) if "weight" in m else 1.0,
            threshold_abs=self.non_negative(m["threshold_abs"], join(key, "threshold_abs"))
            if "threshold_abs" in m else None,
            threshold_rel=self.non_negative(m["threshold_rel"], join(key, "threshold_rel"))
            if "threshold_rel" in m else None,
        )

    def choice(self, value: Any, key: str, enum: type[Any]) -> Any:
        """One of a StrEnum's values."""
        text = self.string(value, key)
        try:
            return enum(text)
        except ValueError:
            raise self.error(key, f"{text!r} is not one of {', '.join(enum)}") from None

    def fraction(self, value: Any, key: str, *, open_ends: bool) -> float:
        """A number strictly between 0 and 1."""
        x = self.number(value, key, positive=True)
        if open_ends and not 0 < x < 1:
            raise self.error(key, f"expected a number between 0 and 1 (exclusive), got {x:g}")
        return x

    def non_negative(self, value: Any, key: str) -> float:
        """A finite number >= 0."""
        x = self.number(value, key, positive=False)
        if x < 0:
            raise self.error(key, f"expected a number >= 0, got {x:g}")
        return x

    def score(self, value: Any, key: str) -> float:
        """A score between 0 and 100."""
        x = self.number(value, key, positive=False)
        if not 0 <= x <= 100:
            raise self.error(key, f"expected a score between 0 and 100, got {x:g}")
        return x

    def flag(self, value: Any, key: str) -> bool:
        """A YAML boolean."""
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {value!r}")
        return value

