"""Tests of the YAML configuration: the example, every error naming its key, env substitution, docs."""

from __future__ import annotations

import ast
import dataclasses
import re
import textwrap
from pathlib import Path

import pytest
import yaml

from analytics.errors import ConfigError, InputError
from collectors.samples import SourceFormat
from collectors.targets import Target
from fleetlens import config_values as config_module
from fleetlens import env
from fleetlens.config import (
    YAML_KEYS,
    CollectConfig,
    Config,
    KubernetesConfig,
    PrometheusConfig,
    TenantConfig,
    field_keys,
    load_config,
    parse_config,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "fleetlens.yaml"
DOCS = REPO / "docs" / "config.md"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fleetlens.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def documented_keys() -> list[str]:
    """The first column of the key table in docs/config.md."""
    table = DOCS.read_text().split("## Keys", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([^`]+)` \|", table, flags=re.MULTILINE)


def yaml_keys(value: object, prefix: str = "") -> set[str]:
    """Dotted keys in a parsed YAML document, lists as ``[]`` (free-form mappings not descended)."""
    out: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            key = f"{prefix}.{k}" if prefix else k
            out.add(key)
            if key not in ("simulator", "prometheus.selectors") and not key.endswith("labels"):
                out |= yaml_keys(v, key)
    elif isinstance(value, list):
        for v in value:
            out |= yaml_keys(v, prefix + "[]")
    return out


# --- the example and the docs ----------------------------------------------------------------------


def test_the_example_loads_into_the_dataclass_tree(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FLEETLENS_PROM_TOKEN", "tok-123")
    cfg = load_config(EXAMPLE)
    assert cfg.source == str(EXAMPLE) and cfg.cluster == "prod-eu-1"
    assert cfg.data_dir == EXAMPLE.parent / "fleetlens-data"
    assert cfg.collect.kubernetes.pod_list == EXAMPLE.parent / "pods.json"
    assert [t.format for t in cfg.collect.targets] == [SourceFormat.DCGM, SourceFormat.VLLM, SourceFormat.TGI]
    assert all(isinstance(t, Target) for t in cfg.collect.targets)
    assert cfg.collect.targets[1].labels["model_version"] == "5d8f9c"
    assert cfg.prometheus is not None and cfg.prometheus.bearer_token == "tok-123"
    assert cfg.prometheus.selectors[SourceFormat.DCGM] == '{__name__=~"DCGM_FI_.*"}'
    assert [t.name for t in cfg.tenants] == ["team-a", "team-chat"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.cluster = "x"  # type: ignore[misc]


def test_the_example_simulator_section_is_accepted_by_the_simulator(monkeypatch) -> None:
    from simulator.config import build_fleet_spec

    monkeypatch.setenv("FLEETLENS_PROM_TOKEN", "t")
    spec = build_fleet_spec(load_config(EXAMPLE).simulator, key="simulator")
    assert spec.seed == yaml.safe_load(EXAMPLE.read_text())["simulator"]["seed"]


def test_every_documented_key_is_a_key_of_the_dataclasses_and_every_key_is_documented() -> None:
    documented = documented_keys()
    assert len(documented) == len(set(documented)), "a key is documented twice"
    assert documented == field_keys(Config)


def test_the_example_shows_every_documented_key() -> None:
    assert set(documented_keys()) <= yaml_keys(yaml.safe_load(EXAMPLE.read_text()))


@pytest.mark.parametrize("cls", [Config, CollectConfig, KubernetesConfig, PrometheusConfig, TenantConfig])
def test_every_field_of_a_config_dataclass_is_a_yaml_key(cls: type) -> None:
    fields = [f.name for f in dataclasses.fields(cls) if f.metadata.get("yaml", True)]
    assert list(YAML_KEYS[cls]) == fields


def test_target_keys_are_fields_of_target() -> None:
    assert set(YAML_KEYS[Target]) <= {f.name for f in dataclasses.fields(Target)}


# --- defaults --------------------------------------------------------------------------------------


def test_an_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, ""))
    assert cfg == Config(source=cfg.source, data_dir=tmp_path / "fleetlens-data")
    assert (cfg.collect.interval_s, cfg.collect.timeout_s, cfg.collect.retries, cfg.collect.concurrency) == (
        15.0,
        5.0,
        2,
        16,
    )
    assert cfg.prometheus is None and cfg.simulator is None and cfg.tenants == ()


def test_parse_config_without_a_base_dir_keeps_relative_paths() -> None:
    cfg = parse_config(
        {"data_dir": "d", "collect": {"kubernetes": {"pod_list": "/abs/pods.json"}}}, source="t"
    )
    assert cfg.data_dir == Path("d") and cfg.collect.kubernetes.pod_list == Path("/abs/pods.json")


# --- errors name the key and the file --------------------------------------------------------------

GOOD_TARGET = {"format": "dcgm", "url": "http://127.0.0.1:9400/metrics"}


@pytest.mark.parametrize(
    "mapping, key, message",
    [
        pytest.param(
            {"clustr": "x"}, "clustr", "did you mean 'cluster'", id="a misspelt top-level key is refused"
        ),
        pytest.param(
            {"collect": {"intervall_s": 1}},
            "collect.intervall_s",
            "did you mean 'interval_s'",
            id="a misspelt nested key is refused with a suggestion",
        ),
        pytest.param(
            {"collect": {"targets": [GOOD_TARGET, GOOD_TARGET | {"url": "http://b", "lables": {}}]}},
            "collect.targets[1].lables",
            "did you mean 'labels'",
            id="a misspelt target key names its index",
        ),
        pytest.param(
            {"collect": {"targets": [GOOD_TARGET, GOOD_TARGET, GOOD_TARGET | {"url": "ftp://x/m"}]}},
            "collect.targets[1].url",
            "already the target collect.targets[0]",
            id="a target listed twice is refused",
        ),
        pytest.param(
            {"collect": {"targets": [GOOD_TARGET | {"url": "ftp://host/metrics"}]}},
            "collect.targets[0].url",
            "http",
            id="a non-http url scheme is refused",
        ),
        pytest.param(
            {"collect": {"targets": [GOOD_TARGET | {"url": "http:///metrics"}]}},
            "collect.targets[0].url",
            "with a host",
            id="a url without a host is refused",
        ),
        pytest.param(
            {"collect": {"targets": [GOOD_TARGET | {"url": "http://h:99999/metrics"}]}},
            "collect.targets[0].url",
            "Port out of range",
            id="a url with an impossible port is refused",
        ),
        pytest.param(
            {"collect": {"targets": [GOOD_TARGET | {"format": "nvidia"}]}},
            "collect.targets[0].format",
            "not a source format",
            id="an unknown source format is refused",
        ),
        pytest.param(
            {"collect": {"targets": [{"format": "dcgm"}]}},
            "collect.targets[0].url",
            "missing",
            id="a target without a url is refused",
        ),
        pytest.param(
            {"collect": {"targets": [GOOD_TARGET | {"labels": {"bad-name": "x"}}]}},
            "collect.targets[0].labels.bad-name",
            "label name",
            id="an invalid label name is refused",
        ),
        pytest.param(
            {"collect": {"targets": [GOOD_TARGET | {"labels": {"__name__": "x"}}]}},
            "collect.targets[0].labels.__name__",
            "label name",
            id="a reserved label name is refused",
        ),
        pytest.param(
            {"collect": {"targets": [GOOD_TARGET | {"labels": {"namespace": "Team_A"}}]}},
            "collect.targets[0].labels.namespace",
            "RFC 1123",
            id="a namespace label that is not a tenant name is refused",
        ),
        pytest.param(
            {"collect": {"targets": [GOOD_TARGET | {"labels": {"model_version": 123456}}]}},
            "collect.targets[0].labels.model_version",
            "quote it",
            id="a numeric label value must be quoted",
        ),
        pytest.param(
            {"collect": {"interval_s": 0}}, "collect.interval_s", "positive", id="a zero interval is refused"
        ),
        pytest.param(
            {"collect": {"interval_s": "fast"}},
            "collect.interval_s",
            "number",
            id="a non-numeric interval is refused",
        ),
        pytest.param(
            {"collect": {"retries": True}},
            "collect.retries",
            "integer",
            id="a boolean retry count is refused",
        ),
        pytest.param(
            {"collect": {"retries": 1.5}},
            "collect.retries",
            "integer",
            id="a fractional retry count is refused",
        ),
        pytest.param(
            {"collect": {"concurrency": 0}},
            "collect.concurrency",
            "at least 1",
            id="zero concurrency is refused",
        ),
        pytest.param(
            {"collect": {"interval_s": 5, "timeout_s": 10}},
            "collect.timeout_s",
            "longer than interval_s",
            id="a timeout longer than the interval is refused",
        ),
        pytest.param(
            {"collect": {"targets": {"format": "dcgm"}}},
            "collect.targets",
            "expected a list",
            id="targets that are not a list are refused",
        ),
        pytest.param(
            {"prometheus": {"bearer_token": "x"}},
            "prometheus.url",
            "missing",
            id="a prometheus section without a url is refused",
        ),
        pytest.param(
            {"prometheus": {"url": "http://p:9090", "selectors": {"dgcm": "{}"}}},
            "prometheus.selectors.dgcm",
            "did you mean 'dcgm'",
            id="a selector for an unknown source format is refused",
        ),
        pytest.param(
            {"prometheus": {"url": "http://p:9090", "chunk_s": -1}},
            "prometheus.chunk_s",
            "positive",
            id="a negative chunk is refused",
        ),
        pytest.param(
            {"tenants": [{"name": "team-a"}, {"name": "../etc"}]},
            "tenants[1].name",
            "RFC 1123",
            id="a tenant that could escape a path is refused",
        ),
        pytest.param(
            {"tenants": [{"name": "a" * 64}]},
            "tenants[0].name",
            "RFC 1123",
            id="a 64-character tenant is refused",
        ),
        pytest.param(
            {"tenants": [{"name": "team-a"}, {"name": "team-a"}]},
            "tenants[1].name",
            "twice",
            id="a tenant listed twice is refused",
        ),
        pytest.param(
            {"cluster": "prod eu"}, "cluster", "cluster name", id="a cluster name with a space is refused"
        ),
        pytest.param(
            {"simulator": ["seed", 7]}, "simulator", "mapping", id="a simulator section must be a mapping"
        ),
        pytest.param({"data_dir": ""}, "data_dir", "empty", id="an empty data_dir is refused"),
    ],
)
def test_bad_values_raise_a_config_error_naming_the_key(mapping: dict, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(mapping, source="cfg.yaml")
    assert err.value.key == key and err.value.source == "cfg.yaml"
    assert message in str(err.value) and str(err.value).startswith(f"cfg.yaml: {key}: ")


def test_an_error_in_a_file_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        cluster: prod
        collect:
          targets:
            - format: dcgm
              url: http://a:9400/metrics
            - format: vllm
              url: gopher://b/metrics
    """,
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.key == "collect.targets[1].url" and err.value.source == str(path)
    assert "(line 8)" in str(err.value)


@pytest.mark.parametrize(
    "text, line",
    [
        pytest.param(
            "cluster: prod\ncollect:\n  interval_s: [1\n", 4, id="an unclosed flow list names its line"
        ),
        pytest.param("cluster: prod\n  data_dir: x\n", 2, id="a bad indentation names its line"),
        pytest.param("a: 'x\n", 2, id="an unterminated quote names its line"),
    ],
)
def test_a_yaml_syntax_error_names_the_line(tmp_path: Path, text: str, line: int) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.source == str(path) and f"line {line}," in str(err.value)
    assert isinstance(err.value.__cause__, yaml.YAMLError)


def test_a_duplicate_key_is_refused_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        collect:
          interval_s: 15
          interval_s: 30
    """,
    )
    with pytest.raises(ConfigError, match=r"collect\.interval_s: duplicate key \(line 4\)"):
        load_config(path)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")


def test_a_top_level_list_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


# --- ${env:NAME} -----------------------------------------------------------------------------------


def test_env_substitution_fills_strings_numbers_and_the_simulator_section(monkeypatch) -> None:
    monkeypatch.setenv("FL_TEST_HOST", "10.1.2.3")
    monkeypatch.setenv("FL_TEST_INTERVAL", "30")
    monkeypatch.setenv("FL_TEST_SEED", "11")
    cfg = parse_config(
        {
            "collect": {
                "interval_s": "${env:FL_TEST_INTERVAL}",
                "targets": [{"format": "vllm", "url": "http://${env:FL_TEST_HOST}:8000/metrics"}],
            },
            "simulator": {"nested": [{"note": "seed ${env:FL_TEST_SEED}"}]},
            "prometheus": {"url": "http://p:9090", "selectors": {"vllm": '{job="$${literal}"}'}},
        },
        source="t",
    )
    assert cfg.collect.interval_s == 30.0
    assert cfg.collect.targets[0].url == "http://10.1.2.3:8000/metrics"
    assert cfg.simulator == {"nested": [{"note": "seed 11"}]}
    assert cfg.prometheus is not None and cfg.prometheus.selectors[SourceFormat.VLLM] == '{job="${literal}"}'


@pytest.mark.parametrize(
    "value, message",
    [
        pytest.param(
            "${env:FL_TEST_SURELY_UNSET}",
            "FL_TEST_SURELY_UNSET is not set",
            id="an unset variable is an error",
        ),
        pytest.param(
            "${env:1BAD}", "not an environment variable name", id="an invalid variable name is an error"
        ),
    ],
)
def test_env_substitution_errors_name_the_key(monkeypatch, value: str, message: str) -> None:
    monkeypatch.delenv("FL_TEST_SURELY_UNSET", raising=False)
    with pytest.raises(ConfigError) as err:
        parse_config({"prometheus": {"url": "http://p", "bearer_token": value}}, source="t")
    assert err.value.key == "prometheus.bearer_token" and message in str(err.value)


def test_a_number_from_the_environment_must_be_a_number(monkeypatch) -> None:
    monkeypatch.setenv("FL_TEST_INTERVAL", "soon")
    with pytest.raises(
        ConfigError, match=r"collect\.interval_s: expected a number, the environment gave 'soon'"
    ):
        parse_config({"collect": {"interval_s": "${env:FL_TEST_INTERVAL}"}}, source="t")


def test_every_env_var_fleetlens_reads_is_documented() -> None:
    table = DOCS.read_text().split("## Environment variables", 1)[1]
    assert {v.name for v in env.KNOWN} == set(re.findall(r"^\| `([A-Z_]+)` \|", table, flags=re.MULTILINE))
    assert all(v.doc for v in env.KNOWN)


def test_no_module_but_fleetlens_env_reads_the_environment() -> None:
    """``os.environ`` / ``os.getenv`` appear only in fleetlens/env.py (tests and benchmarks excepted)."""
    offenders = []
    for pkg in ("analytics", "collectors", "dashboards", "alerts", "tokenomics", "fleetlens", "simulator"):
        for path in sorted((REPO / pkg).rglob("*.py")) if (REPO / pkg).is_dir() else ():
            if path == REPO / "fleetlens" / "env.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Attribute) and node.attr in (
                    "environ",
                    "getenv",
                    "environb",
                    "putenv",
                ):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offenders == []
    assert config_module.env is env


# --- bad input: non-UTF-8 files, selectors, the token, the simulated example ---------------------------


def test_a_non_utf8_file_is_an_input_error_naming_the_line_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "fleetlens.yaml"
    path.write_bytes(b"cluster: a\ntenants:\n  - name: caf\xe9\n")
    with pytest.raises(InputError, match=rf"^{path}:3: not UTF-8 text \(byte 0xe9 at offset 33\)$"):
        load_config(path)


SELECTORS_ACCEPTED = [
    pytest.param("DCGM_FI_DEV_GPU_UTIL", id="a metric name"),
    pytest.param("vllm:num_requests_running", id="a metric name with a colon"),
    pytest.param('vllm:num_requests_running{model_name="m", namespace!="x",}', id="a name with matchers"),
    pytest.param('{__name__=~"DCGM_FI_.*"}', id="a name regex"),
    pytest.param("""x{a='single', b=`raw\\d`}""", id="single-quoted and raw strings"),
    pytest.param('x{a="quote \\" and } or vector(1)"}', id="operators inside a quoted value are text"),
    pytest.param('  up{job="a"}  ', id="surrounding space"),
]
SELECTORS_REFUSED = [
    pytest.param("x or vector(1)", "an operator 'or' is not allowed", id="a binary operator"),
    pytest.param('x{a="b"} / y', "'/ y' after the selector is not allowed", id="arithmetic"),
    pytest.param("rate(x[5m])", "a function call", id="a function"),
    pytest.param("sum(x)", "a function call", id="an aggregation"),
    pytest.param("x[5m]", "a range or subquery '[5m]' is not allowed", id="a range"),
    pytest.param("x[5m:1m]", "a range or subquery", id="a subquery"),
    pytest.param("x offset 5m", "a modifier 'offset 5m' is not allowed", id="an offset"),
    pytest.param("x @ 1700000000", "a modifier '@ 1700000000' is not allowed", id="an @ modifier"),
    pytest.param("{}", "every matcher matches the empty string", id="empty braces"),
    pytest.param('{job=~".*"}', "every matcher matches the empty string", id="only empty-matching matchers"),
    pytest.param('x{a="b}', "unterminated quoted label value", id="an unterminated string"),
    pytest.param('x{a="\\q"}', "unknown escape", id="an unknown escape"),
    pytest.param('x{a=~"("}', "a=~: bad regular expression", id="a bad regex"),
    pytest.param("1", "expected a metric name or '{'", id="a number"),
    pytest.param("-x", "expected a metric name or '{'", id="a unary minus"),
    pytest.param("x{a b}", "expected =, !=, =~ or !~ after 'a'", id="a matcher without an operator"),
]


@pytest.mark.parametrize("selector", SELECTORS_ACCEPTED)
def test_a_plain_vector_selector_is_accepted(selector: str) -> None:
    cfg = parse_config({"prometheus": {"url": "http://p:9090", "selectors": {"vllm": selector}}})
    assert cfg.prometheus is not None and cfg.prometheus.selectors[SourceFormat.VLLM] == selector.strip()


@pytest.mark.parametrize(("selector", "message"), SELECTORS_REFUSED)
def test_anything_more_than_a_vector_selector_is_refused_naming_the_key(selector: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"^config: prometheus\.selectors\.dcgm: .*is not a plain vector selector: "
                       + re.escape(message)):
        parse_config({"prometheus": {"url": "http://p:9090", "selectors": {"dcgm": selector}}})


def test_the_bearer_token_is_not_in_the_repr_of_the_config(monkeypatch) -> None:
    monkeypatch.setenv("FLEETLENS_PROM_TOKEN", "tok-not-in-repr")
    cfg = load_config(EXAMPLE)
    assert cfg.prometheus is not None and cfg.prometheus.bearer_token == "tok-not-in-repr"
    assert "tok-not-in-repr" not in repr(cfg) and "tok-not-in-repr" not in str(cfg.prometheus)


def test_the_simulated_example_names_exactly_the_targets_the_simulator_serves() -> None:
    """examples/simulated.yaml is the README's quick tour: its targets must be what `simulate` serves."""
    from simulator import Simulation, build_fleet_spec

    cfg = load_config(REPO / "examples" / "simulated.yaml")
    assert cfg.simulator is not None
    sim = Simulation(build_fleet_spec(dict(cfg.simulator)))
    served = [(t.format, t.url, {k: v for k, v in t.labels.items() if k not in ("cluster", "instance")})
              for t in sim.targets()]
    assert [(t.format, t.url, dict(t.labels)) for t in cfg.collect.targets] == served
    assert cfg.cluster == sim.spec.cluster
