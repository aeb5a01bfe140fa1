"""Canary policy files: the example reads as documented, defaults apply, every bad value names its key and line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from analytics.canary.policy import BadDirection, CanaryMethod, CanarySignal, MetricPolicy, default_metrics
from analytics.errors import ConfigError
from fleetlens.canary_policy import METRIC_KEYS, POLICY_KEYS, load_canary_policy, parse_canary_policy

ROOT = Path(__file__).resolve().parents[2]


def test_the_example_policy_reads_with_every_key() -> None:
    policy = load_canary_policy(ROOT / "examples" / "canary-policy.yaml")
    assert policy.method is CanaryMethod.SEQUENTIAL and policy.alpha == 0.05
    assert (policy.min_requests, policy.step_limit_s, policy.warmup_s) == (50, 1800.0, 120.0)
    by_name = {m.name: m for m in policy.metrics}
    assert by_name["e2e_p99"] == MetricPolicy("e2e_p99", CanarySignal.E2E, 0.99, weight=2.0, threshold_rel=0.2)
    assert by_name["probe_pass_rate"].bad is BadDirection.DECREASE and by_name["probe_pass_rate"].critical
    assert by_name["error_ratio"].critical and by_name["error_ratio"].threshold_abs == 0.002


def test_the_docs_list_every_key() -> None:
    doc = (ROOT / "docs" / "canary-policy.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_.\[\]]+)` \|", doc, flags=re.MULTILINE))
    assert documented == {*POLICY_KEYS, *(f"metrics[].{k}" for k in METRIC_KEYS)}


def test_an_empty_policy_gets_the_defaults() -> None:
    policy = parse_canary_policy({})
    assert policy.metrics == default_metrics()
    assert {m.signal for m in policy.metrics} == set(CanarySignal), "the defaults cover every signal"


@pytest.mark.parametrize(
    ("baseline", "metric", "tolerance"),
    [
        (0.001, MetricPolicy("e", CanarySignal.ERROR_RATIO, threshold_abs=0.002, threshold_rel=0.5), 0.002),
        (0.1, MetricPolicy("e", CanarySignal.ERROR_RATIO, threshold_abs=0.002, threshold_rel=0.5), 0.05),
        (2.0, MetricPolicy("t", CanarySignal.TTFT, 0.95, threshold_rel=0.2), 0.4),
        (2.0, MetricPolicy("t", CanarySignal.TTFT, 0.95), 0.0),
    ],
)
def test_the_larger_of_the_two_thresholds_is_the_tolerance(baseline: float, metric: MetricPolicy,
                                                           tolerance: float) -> None:
    assert metric.tolerance(baseline) == pytest.approx(tolerance)


LATENCY = {"name": "t", "signal": "ttft", "quantile": 0.95}


@pytest.mark.parametrize(
    ("mapping", "key", "fragment"),
    [
        ({"method": "bayes"}, "method", "not one of sequential, kayenta"),
        ({"alpha": 1.5}, "alpha", "between 0 and 1"),
        ({"alpha": 0}, "alpha", "positive"),
        ({"min_requests": 0}, "min_requests", "at least 1"),
        ({"step_limit_s": -5}, "step_limit_s", "positive"),
        ({"warmup_s": -1}, "warmup_s", ">= 0"),
        ({"pass_score": 101}, "pass_score", "between 0 and 100"),
        ({"pass_score": 70, "marginal_score": 80}, "marginal_score", "above pass_score"),
        ({"metrics": []}, "metrics", "is empty"),
        ({"metrics": [{"signal": "ttft"}]}, "metrics[0].name", "missing"),
        ({"metrics": [{"name": "t", "signal": "latency"}]}, "metrics[0].signal", "not one of"),
        ({"metrics": [{"name": "t", "signal": "ttft"}]}, "metrics[0].quantile", "compared at a quantile"),
        ({"metrics": [{"name": "e", "signal": "error_ratio", "quantile": 0.5}]}, "metrics[0].quantile",
         "not a latency"),
        ({"metrics": [LATENCY | {"quantile": 1.0}]}, "metrics[0].quantile", "between 0 and 1"),
        ({"metrics": [LATENCY | {"bad": "up"}]}, "metrics[0].bad", "not one of increase, decrease, either"),
        ({"metrics": [LATENCY | {"critical": "yes"}]}, "metrics[0].critical", "true or false"),
        ({"metrics": [LATENCY | {"weight": -1}]}, "metrics[0].weight", ">= 0"),
        ({"metrics": [LATENCY | {"threshold_rel": float("nan")}]}, "metrics[0].threshold_rel", "finite"),
        ({"metrics": [LATENCY, LATENCY]}, "metrics[1].name", "already metrics[0]"),
        ({"metrics": [LATENCY | {"treshold_rel": 0.1}]}, "metrics[0].treshold_rel", "did you mean 'threshold_rel'"),
        ({"alhpa": 0.1}, "alhpa", "did you mean 'alpha'"),
    ],
)
def test_bad_values_name_their_key(mapping: dict, key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_canary_policy(mapping, source="p.yaml")
    assert info.value.key == key and fragment in str(info.value), str(info.value)
    assert "p.yaml" in str(info.value)


def test_an_error_in_a_file_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("alpha: 0.05\nmetrics:\n  - name: t\n    signal: ttft\n    quantile: 2\n")
    with pytest.raises(ConfigError, match=r"line 5"):
        load_canary_policy(path)
