"""Tests of name validation (tenants, models) and PromQL label-value quoting, with promtool as oracle."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from analytics.errors import NameValidationError
from analytics.names import promql_label_value, validate_model, validate_tenant
from tests.servers import require_binary

# --- tenants: RFC 1123 labels ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("a", id="one letter is a tenant"),
        pytest.param("0", id="one digit is a tenant"),
        pytest.param("team-a", id="letters and a dash make a tenant"),
        pytest.param("a" * 63, id="63 characters is the longest tenant"),
        pytest.param("a-" * 31 + "b", id="63 characters with dashes is a tenant"),
        pytest.param("1team", id="a leading digit is allowed"),
        pytest.param("a--b", id="consecutive dashes inside are allowed"),
    ],
)
def test_valid_tenants_are_returned_unchanged(name: str) -> None:
    assert validate_tenant(name) == name


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("", id="an empty name is refused"),
        pytest.param("a" * 64, id="64 characters is refused"),
        pytest.param("-team", id="a leading dash is refused"),
        pytest.param("team-", id="a trailing dash is refused"),
        pytest.param("Team", id="uppercase is refused"),
        pytest.param("team_a", id="an underscore is refused"),
        pytest.param("team.a", id="a dot is refused (RFC 1123 subdomains are not labels)"),
        pytest.param("..", id="dot-dot is refused"),
        pytest.param("../x", id="a path traversal is refused"),
        pytest.param("a/b", id="a slash is refused"),
        pytest.param("_none", id="the no-tenant partition marker is refused"),
        pytest.param("téam", id="a non-ascii letter is refused"),
        pytest.param("team\n", id="a trailing newline is refused"),
        pytest.param("\nteam", id="a leading newline is refused"),
        pytest.param("team a", id="a space is refused"),
        pytest.param("tenant=a", id="an equals sign (a hive partition separator) is refused"),
        pytest.param("ａ", id="a full-width letter is refused"),
        pytest.param(None, id="None is refused"),
        pytest.param(7, id="a number is refused"),
    ],
)
def test_invalid_tenants_raise_naming_the_value(name: object) -> None:
    with pytest.raises(NameValidationError, match="RFC 1123") as err:
        validate_tenant(name)  # type: ignore[arg-type]
    assert repr(name) in str(err.value)


@given(st.text(max_size=70))
def test_an_accepted_tenant_is_always_a_safe_single_path_component(name: str) -> None:
    try:
        validate_tenant(name)
    except NameValidationError:
        return
    assert 1 <= len(name) <= 63 and name.isascii() and name == name.lower()
    assert (
        "/" not in name and "\\" not in name and not name.startswith((".", "-", "_")) and name.isprintable()
    )
    assert Path(name).name == name and name not in (".", "..")


# --- models ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("meta-llama/Llama-3.1-8B-Instruct", id="a hub id is a model"),
        pytest.param("llama-7b:v2@sha256+q4", id="tags, digests and plus signs are allowed"),
        pytest.param("m" * 253, id="253 characters is the longest model"),
    ],
)
def test_valid_model_names_are_returned_unchanged(name: str) -> None:
    assert validate_model(name) == name


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("/models/llama", id="a leading slash is refused"),
        pytest.param("llama..7b", id="dot-dot is refused"),
        pytest.param("a/../../etc", id="a path traversal is refused"),
        pytest.param("a" * 254, id="254 characters is refused"),
        pytest.param('llama"7b', id="a double quote is refused"),
        pytest.param("llama 7b", id="a space is refused"),
        pytest.param("llama\\7b", id="a backslash is refused"),
        pytest.param("llama\n", id="a trailing newline is refused"),
        pytest.param("", id="an empty model is refused"),
    ],
)
def test_invalid_model_names_are_refused(name: str) -> None:
    with pytest.raises(NameValidationError, match="not a valid model name"):
        validate_model(name)


# --- PromQL label values -----------------------------------------------------------------------------

TRICKY = [
    'a"b',
    "back\\slash",
    "trailing\\",
    "new\nline",
    "tab\there",
    "carriage\rreturn",
    "ünïcødé ✓",
    '"}) or vector(1) #',
    "{{ $labels }}",
    "'single'",
    "\\n literally",
    "",
]


@pytest.mark.parametrize(
    "value, quoted",
    [
        pytest.param("team-a", '"team-a"', id="a plain value is only quoted"),
        pytest.param('a"b', '"a\\"b"', id="a double quote is escaped"),
        pytest.param("a\\b", '"a\\\\b"', id="a backslash is doubled"),
        pytest.param("a\nb", '"a\\nb"', id="a newline becomes backslash-n"),
        pytest.param('\\"', '"\\\\\\""', id="a backslash before a quote escapes both"),
    ],
)
def test_promql_label_value_escapes(value: str, quoted: str) -> None:
    assert promql_label_value(value) == quoted


@given(st.text())
def test_a_quoted_value_never_ends_early(value: str) -> None:
    quoted = promql_label_value(value)
    inner = quoted[1:-1]
    assert quoted[0] == quoted[-1] == '"' and "\n" not in quoted
    # Every double quote inside is preceded by an odd number of backslashes (escaped).
    for i, ch in enumerate(inner):
        if ch == '"':
            run = len(inner[:i]) - len(inner[:i].rstrip("\\"))
            assert run % 2 == 1


def test_prometheus_reads_quoted_values_back_exactly(tmp_path: Path) -> None:
    """promtool's rule unit test: an alert selects each series by the quoted value and must carry the
    raw value (compared as plain YAML, not PromQL) in its labels and in a templated annotation."""
    promtool = require_binary("promtool")  # a missing promtool fails the test (tests/servers.py)
    rules, tests, series = [], [], []
    for i, value in enumerate(TRICKY):
        sel = f'probe{{case="{i}",v={promql_label_value(value)}}}'
        rules.append({"alert": f"Case{i}", "expr": f"{sel} == 1", "annotations": {"raw": "{{ $labels.v }}"}})
        series.append({"series": sel, "values": "1x5"})
        want_labels = {"case": str(i)} | ({"v": value} if value else {})  # an empty label is no label
        tests.append(
            {
                "alertname": f"Case{i}",
                "eval_time": "1m",
                "exp_alerts": [{"exp_labels": want_labels, "exp_annotations": {"raw": value}}],
            }
        )
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "quoting", "rules": rules}]}))
    (tmp_path / "test.yml").write_text(
        yaml.safe_dump(
            {
                "rule_files": ["rules.yml"],
                "evaluation_interval": "1m",
                "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": tests}],
            }
        )
    )
    run = subprocess.run(
        [promtool, "test", "rules", "test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
