"""The fleetlens YAML configuration: one file -> a tree of frozen dataclasses, checked key by key.

Every key is documented in ``docs/config.md``. Unknown keys are errors (with a "did you mean"),
``${env:NAME}`` in a string value is replaced by that environment variable (``$${`` is a literal
``${``), and every error is a ``ConfigError`` naming the file and the dotted key, plus the line.
Relative paths are resolved against the directory of the configuration file.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import re
import typing
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from analytics.errors import ConfigError, NameValidationError
from analytics.names import validate_tenant
from collectors.targets import Job, Target
from fleetlens import env

# Prometheus label names; names starting with "__" are reserved for Prometheus's own use.
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_CLUSTER = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?")
_SUBST = re.compile(r"\$\$\{|\$\{env:([^}]*)\}")
# Target labels whose value is a tenant (a Kubernetes namespace), so must be an RFC 1123 label.
TENANT_LABELS = ("namespace",)
_NOT_YAML = {"yaml": False}  # dataclass field metadata: not a key of the file
DEFAULT_CLUSTER = "default"
DEFAULT_DATA_DIR = Path("fleetlens-data")


@dataclass(frozen=True, slots=True)
class KubernetesConfig:
    """Where target attribution (pod -> namespace, model version) comes from."""

    pod_list: Path | None = None


@dataclass(frozen=True, slots=True)
class CollectConfig:
    """The scraper: how often, how patiently, and what."""

    interval_s: float = 15.0
    timeout_s: float = 5.0
    retries: int = 2
    concurrency: int = 16
    kubernetes: KubernetesConfig = field(default_factory=KubernetesConfig)
    targets: tuple[Target, ...] = ()


@dataclass(frozen=True, slots=True)
class PrometheusConfig:
    """A Prometheus-API backend (Prometheus, VictoriaMetrics, Thanos, Mimir) to read series from."""

    url: str
    bearer_token: str | None = None
    chunk_s: float = 3600.0
    selectors: Mapping[Job, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class TenantConfig:
    """One tenant (a Kubernetes namespace)."""

    name: str


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration."""

    source: str = field(default="config", metadata=_NOT_YAML)
    cluster: str = DEFAULT_CLUSTER
    data_dir: Path = DEFAULT_DATA_DIR
    collect: CollectConfig = field(default_factory=CollectConfig)
    prometheus: PrometheusConfig | None = None
    simulator: Mapping[str, Any] | None = None
    tenants: tuple[TenantConfig, ...] = ()


# The YAML keys of each section, in documented order: the parser accepts exactly these, and
# ``field_keys`` (docs/config.md is tested against it) walks them.
YAML_KEYS: Mapping[type, tuple[str, ...]] = MappingProxyType(
    {
        Config: ("cluster", "data_dir", "collect", "prometheus", "simulator", "tenants"),
        CollectConfig: ("interval_s", "timeout_s", "retries", "concurrency", "kubernetes", "targets"),
        KubernetesConfig: ("pod_list",),
        Target: ("job", "url", "labels"),
        PrometheusConfig: ("url", "bearer_token", "chunk_s", "selectors"),
        TenantConfig: ("name",),
    }
)


class _Substituted(str):
    """A string that came from ``${env:...}``: numeric keys may parse it as a number."""

    __slots__ = ()


def load_config(path: str | Path) -> Config:
    """Read and check the YAML configuration file at ``path``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("<file>", f"cannot read: {exc.strerror or exc}", source=str(p)) from exc
    try:
        lines = _key_lines(yaml.compose(text, Loader=yaml.SafeLoader), str(p))
        raw = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError("<yaml>", f"{where}{exc.problem or exc}", source=str(p)) from exc
    except yaml.YAMLError as exc:
        raise ConfigError("<yaml>", str(exc), source=str(p)) from exc
    return parse_config({} if raw is None else raw, source=str(p), base_dir=p.parent, _lines=lines)


def parse_config(
    mapping: Mapping[str, Any],
    *,
    source: str = "config",
    base_dir: Path | None = None,
    _lines: Mapping[str, int] | None = None,
) -> Config:
    """Check an already-parsed configuration mapping; relative paths resolve against ``base_dir``."""
    p = _Parser(source, base_dir, _lines or {})
    m = p.mapping(mapping, "", YAML_KEYS[Config])
    data_dir = p.path(m["data_dir"], "data_dir") if "data_dir" in m else p.resolve(DEFAULT_DATA_DIR)
    return Config(
        source=source,
        cluster=p.cluster(m["cluster"], "cluster") if "cluster" in m else DEFAULT_CLUSTER,
        data_dir=data_dir,
        collect=p.collect(m.get("collect"), "collect"),
        prometheus=None if m.get("prometheus") is None else p.prometheus(m["prometheus"], "prometheus"),
        simulator=None if m.get("simulator") is None else p.raw_mapping(m["simulator"], "simulator"),
        tenants=p.tenants(m.get("tenants"), "tenants"),
    )


class _Parser:
    """Converts one configuration mapping; every method names the dotted key it is checking."""

    def __init__(self, source: str, base_dir: Path | None, lines: Mapping[str, int]) -> None:
        self.source, self.base_dir, self.lines = source, base_dir, lines

    def error(self, key: str, message: str) -> ConfigError:
        line = self.lines.get(key)
        return ConfigError(key or "<root>", message + (f" (line {line})" if line else ""), source=self.source)

    # --- sections ---------------------------------------------------------------------------------

    def collect(self, value: Any, key: str) -> CollectConfig:
        if value is None:
            return CollectConfig()
        m = self.mapping(value, key, YAML_KEYS[CollectConfig])
        d = CollectConfig()
        interval = self.number(m.get("interval_s", d.interval_s), f"{key}.interval_s", positive=True)
        timeout = self.number(m.get("timeout_s", d.timeout_s), f"{key}.timeout_s", positive=True)
        if timeout > interval:
            # Prometheus refuses scrape_timeout > scrape_interval for the same reason: rounds would overlap.
            raise self.error(f"{key}.timeout_s", f"{timeout} is longer than interval_s {interval}")
        k8s = self.mapping(m.get("kubernetes") or {}, f"{key}.kubernetes", YAML_KEYS[KubernetesConfig])
        pod_list = k8s.get("pod_list")
        return CollectConfig(
            interval_s=interval,
            timeout_s=timeout,
            retries=self.integer(m.get("retries", d.retries), f"{key}.retries", minimum=0),
            concurrency=self.integer(m.get("concurrency", d.concurrency), f"{key}.concurrency", minimum=1),
            kubernetes=KubernetesConfig(
                pod_list=None if pod_list is None else self.path(pod_list, f"{key}.kubernetes.pod_list")
            ),
            targets=self.targets(m.get("targets"), f"{key}.targets"),
        )

    def targets(self, value: Any, key: str) -> tuple[Target, ...]:
        out: list[Target] = []
        seen: dict[str, str] = {}
        for i, item in enumerate(self.sequence(value, key)):
            k = f"{key}[{i}]"
            m = self.mapping(item, k, YAML_KEYS[Target])
            for required in ("job", "url"):
                if required not in m:
                    raise self.error(f"{k}.{required}", "missing (every target needs a job and a url)")
            url = self.url(m["url"], f"{k}.url")
            if url in seen:
                raise self.error(f"{k}.url", f"{url} is already the target {seen[url]}")
            seen[url] = k
            job, labels = self.job(m["job"], f"{k}.job"), self.labels(m.get("labels"), f"{k}.labels")
            out.append(Target(job=job, url=url, labels=labels))
        return tuple(out)

    def prometheus(self, value: Any, key: str) -> PrometheusConfig:
        m = self.mapping(value, key, YAML_KEYS[PrometheusConfig])
        if "url" not in m:
            raise self.error(f"{key}.url", "missing (the base URL of the Prometheus HTTP API)")
        token = m.get("bearer_token")
        selectors = {}
        for job, sel in self.mapping(
            m.get("selectors") or {}, f"{key}.selectors", tuple(j.value for j in Job)
        ).items():
            selectors[Job(job)] = self.string(sel, f"{key}.selectors.{job}")
        return PrometheusConfig(
            url=self.url(m["url"], f"{key}.url"),
            bearer_token=None if token is None else self.string(token, f"{key}.bearer_token"),
            chunk_s=self.number(m.get("chunk_s", 3600.0), f"{key}.chunk_s", positive=True),
            selectors=MappingProxyType(selectors),
        )

    def tenants(self, value: Any, key: str) -> tuple[TenantConfig, ...]:
        out: list[TenantConfig] = []
        for i, item in enumerate(self.sequence(value, key)):
            m = self.mapping(item, f"{key}[{i}]", YAML_KEYS[TenantConfig])
            if "name" not in m:
                raise self.error(f"{key}[{i}].name", "missing")
            name = self.tenant(m["name"], f"{key}[{i}].name")
            if any(t.name == name for t in out):
                raise self.error(f"{key}[{i}].name", f"tenant {name!r} is listed twice")
            out.append(TenantConfig(name=name))
        return tuple(out)

    def raw_mapping(self, value: Any, key: str) -> Mapping[str, Any]:
        """A section kept as a mapping for its owner to check (env substitution still applies)."""
        if not isinstance(value, Mapping):
            raise self.error(key, f"expected a mapping, got {_kind(value)}")
        return MappingProxyType(self._substitute_all(copy.deepcopy(dict(value)), key))

    # --- values -----------------------------------------------------------------------------------

    def mapping(self, value: Any, key: str, allowed: Sequence[str]) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error(key, f"expected a mapping, got {_kind(value)}")
        for k in value:
            if not isinstance(k, str):
                raise self.error(key, f"key {k!r} is not a string")
            if k not in allowed:
                close = difflib.get_close_matches(k, allowed, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(allowed)})"
                raise self.error(_join(key, k), f"unknown key{hint}")
        return dict(value)

    def sequence(self, value: Any, key: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.error(key, f"expected a list, got {_kind(value)}")
        return value

    def string(self, value: Any, key: str) -> str:
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {_kind(value)} (quote it)")
        out = str(self.substitute(value, key))
        if not out.strip():
            raise self.error(key, "is empty")
        return out

    def number(self, value: Any, key: str, *, positive: bool) -> float:
        value = self.substitute(value, key) if isinstance(value, str) else value
        if isinstance(value, _Substituted):
            try:
                value = float(value)
            except ValueError:
                raise self.error(key, f"expected a number, the environment gave {str(value)!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"expected a number, got {_kind(value)}")
        if not math.isfinite(value) or (positive and value <= 0):
            raise self.error(key, f"expected a {'positive ' if positive else ''}finite number, got {value}")
        return float(value)

    def integer(self, value: Any, key: str, *, minimum: int) -> int:
        value = self.substitute(value, key) if isinstance(value, str) else value
        if isinstance(value, _Substituted):
            try:
                value = int(value)
            except ValueError:
                raise self.error(key, f"expected an integer, the environment gave {str(value)!r}") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected an integer, got {_kind(value)}")
        if value < minimum:
            raise self.error(key, f"must be at least {minimum}, got {value}")
        return value

    def url(self, value: Any, key: str) -> str:
        text = self.string(value, key)
        parts = urllib.parse.urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in text):
            raise self.error(key, f"{text!r} is not an http:// or https:// URL with a host")
        try:
            parts.port  # noqa: B018 - raises on a non-numeric or out-of-range port
        except ValueError as exc:
            raise self.error(key, f"{text!r}: {exc}") from None
        return text

    def path(self, value: Any, key: str) -> Path:
        return self.resolve(Path(self.string(value, key)).expanduser())

    def resolve(self, path: Path) -> Path:
        return path if path.is_absolute() or self.base_dir is None else self.base_dir / path

    def job(self, value: Any, key: str) -> Job:
        text = self.string(value, key)
        try:
            return Job(text)
        except ValueError:
            raise self.error(key, f"{text!r} is not a job (known: {', '.join(Job)})") from None

    def tenant(self, value: Any, key: str) -> str:
        text = self.string(value, key)
        try:
            return validate_tenant(text)
        except NameValidationError as exc:
            raise self.error(key, str(exc)) from exc

    def cluster(self, value: Any, key: str) -> str:
        text = self.string(value, key)
        if not _CLUSTER.fullmatch(text):
            raise self.error(key, f"{text!r} is not a cluster name (letters, digits, '.', '_', '-', 1-63)")
        return text

    def labels(self, value: Any, key: str) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.error(key, f"expected a mapping of label names to values, got {_kind(value)}")
        out: dict[str, str] = {}
        for name, val in value.items():
            k = _join(key, str(name))
            if not isinstance(name, str) or not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
                raise self.error(
                    k, f"{name!r} is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, no '__')"
                )
            out[name] = self.tenant(val, k) if name in TENANT_LABELS else self.string(val, k)
        return out

    # --- ${env:NAME} ------------------------------------------------------------------------------

    def substitute(self, value: str, key: str) -> str:
        """Replace every ``${env:NAME}``; the result is marked so numeric keys may parse it."""
        found = False

        def one(m: re.Match[str]) -> str:
            nonlocal found
            if m.group(0) == "$${":
                return "${"
            name = m.group(1)
            if not env.is_valid_name(name):
                raise self.error(key, f"${{env:{name}}}: {name!r} is not an environment variable name")
            got = env.substitution(name)
            if got is None:
                raise self.error(key, f"environment variable {name} is not set")
            found = True
            return got

        out = _SUBST.sub(one, value)
        return _Substituted(out) if found else out

    def _substitute_all(self, value: Any, key: str) -> Any:
        if isinstance(value, str):
            return str(self.substitute(value, key))
        if isinstance(value, dict):
            return {k: self._substitute_all(v, _join(key, str(k))) for k, v in value.items()}
        if isinstance(value, list):
            return [self._substitute_all(v, f"{key}[{i}]") for i, v in enumerate(value)]
        return value


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _key_lines(node: yaml.Node | None, source: str) -> dict[str, int]:
    """Dotted key -> 1-based line of every key in the document; refuses duplicate keys."""
    lines: dict[str, int] = {}

    def walk(n: yaml.Node, key: str) -> None:
        lines.setdefault(key, n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            seen: set[str] = set()
            for k, v in n.value:
                name = _join(key, str(k.value))
                if k.value in seen:
                    raise ConfigError(name, f"duplicate key (line {k.start_mark.line + 1})", source=source)
                seen.add(k.value)
                lines[name] = k.start_mark.line + 1
                walk(v, name)
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                walk(v, f"{key}[{i}]")

    if node is not None:
        walk(node, "")
    return lines


def field_keys(cls: type = Config, prefix: str = "") -> list[str]:
    """Every YAML key under a config class, dotted (``collect.targets[].url``): for docs and tests."""
    out: list[str] = []
    hints = typing.get_type_hints(cls)
    for name in YAML_KEYS[cls]:
        key = _join(prefix, name)
        out.append(key)
        inner = _dataclass_in(hints[name])
        if inner is not None:
            out.extend(field_keys(inner, key + "[]" if typing.get_origin(hints[name]) is tuple else key))
    return out


def _dataclass_in(tp: Any) -> type | None:
    if dataclasses.is_dataclass(tp):
        return tp  # type: ignore[return-value]
    for arg in typing.get_args(tp):
        if arg is not type(None) and arg is not Ellipsis and dataclasses.is_dataclass(arg):
            return arg  # type: ignore[return-value]
    return None
