"""The fleetlens YAML configuration: one file -> a tree of frozen dataclasses, checked key by key.

Every key is documented in ``docs/config.md``. Unknown keys are errors (with a "did you mean"),
``${env:NAME}`` in a string value is replaced by that environment variable (``$${`` is a literal
``${``), and every error is a ``ConfigError`` naming the file and the dotted key, plus the line.
Relative paths are resolved against the directory of the configuration file.
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from collectors.samples import SourceFormat
from collectors.targets import Target
from fleetlens.config_values import TENANT_LABELS, ValueChecker, join, kind
from fleetlens.config_yaml import read_yaml

__all__ = [
    "DEFAULT_CLUSTER",
    "DEFAULT_DATA_DIR",
    "TENANT_LABELS",
    "YAML_KEYS",
    "CollectConfig",
    "Config",
    "KubernetesConfig",
    "PrometheusConfig",
    "TenantConfig",
    "field_keys",
    "load_config",
    "parse_config",
]

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
    bearer_token: str | None = field(default=None, repr=False)  # a secret: never in a repr or a log
    chunk_s: float = 3600.0
    selectors: Mapping[SourceFormat, str] = field(default_factory=lambda: MappingProxyType({}))


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
        Target: ("format", "url", "labels"),
        PrometheusConfig: ("url", "bearer_token", "chunk_s", "selectors"),
        TenantConfig: ("name",),
    }
)


def load_config(path: str | Path) -> Config:
    """Read and check the YAML configuration file at ``path``."""
    p = Path(path)
    raw, lines = read_yaml(p)
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


class _Parser(ValueChecker):
    """Converts one configuration mapping section by section, on top of the value checks."""

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
            for required in ("format", "url"):
                if required not in m:
                    raise self.error(f"{k}.{required}", "missing (every target needs a format and a url)")
            url = self.url(m["url"], f"{k}.url")
            if url in seen:
                raise self.error(f"{k}.url", f"{url} is already the target {seen[url]}")
            seen[url] = k
            fmt, labels = self.source_format(m["format"], f"{k}.format"), self.labels(m.get("labels"), f"{k}.labels")
            out.append(Target(format=fmt, url=url, labels=labels))
        return tuple(out)

    def prometheus(self, value: Any, key: str) -> PrometheusConfig:
        m = self.mapping(value, key, YAML_KEYS[PrometheusConfig])
        if "url" not in m:
            raise self.error(f"{key}.url", "missing (the base URL of the Prometheus HTTP API)")
        token = m.get("bearer_token")
        selectors = {}
        for job, sel in self.mapping(
            m.get("selectors") or {}, f"{key}.selectors", tuple(j.value for j in SourceFormat)
        ).items():
            selectors[SourceFormat(job)] = self.selector(sel, f"{key}.selectors.{job}")
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
            raise self.error(key, f"expected a mapping, got {kind(value)}")
        return MappingProxyType(self.substitute_all(copy.deepcopy(dict(value)), key))

    # --- values -----------------------------------------------------------------------------------

def field_keys(cls: type = Config, prefix: str = "") -> list[str]:
    """Every YAML key under a config class, dotted (``collect.targets[].url``): for docs and tests."""
    out: list[str] = []
    hints = typing.get_type_hints(cls)
    for name in YAML_KEYS[cls]:
        key = join(prefix, name)
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
