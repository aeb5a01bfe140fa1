"""Scrape targets: what to scrape, which format it speaks, and the target labels it gets."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from urllib.parse import urlsplit

from analytics.errors import ConfigError
from collectors.samples import SourceFormat

# Target label keys fleetlens attaches; anything else in a target's labels is still attached as given.
TARGET_LABELS = ("cluster", "namespace", "pod", "container", "node", "instance", "model_version", "model_name",
                 "rollouts_pod_template_hash", "pod_template_hash")

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Target:
    """One /metrics endpoint and the target labels attached to its samples (Prometheus-style).

    Known target label keys: ``cluster``, ``namespace``, ``pod``, ``container``, ``node``,
    ``instance``, ``model_version`` (the pod's rollout revision / template hash), the pod's hash labels
    as service discovery names them (``rollouts_pod_template_hash``, ``pod_template_hash``: the model
    version when ``model_version`` is absent, see ``collectors.normalise.revision``) and, for TGI which
    exposes no model, ``model_name``.

    ``error`` is set (by attribution) when the target must not be scraped, e.g. its namespace is not
    a valid tenant name; a collection round reports it as a down scrape with that message.
    """

    format: SourceFormat
    url: str
    labels: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "format", SourceFormat(self.format))
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))

    @property
    def instance(self) -> str:
        """``host:port`` of the URL, as Prometheus's ``instance`` label (the default port filled in)."""
        host, port = host_port(self.url)
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def with_labels(self, discovered: Mapping[str, str]) -> Target:
        """A copy with ``discovered`` labels added; labels already on the target win."""
        merged = {k: v for k, v in discovered.items() if v}
        merged.update(self.labels)
        return replace(self, labels=merged)

    def unusable(self, error: str) -> Target:
        """A copy marked unusable with ``error`` (it is reported, never fetched)."""
        return replace(self, error=error)


def host_port(url: str) -> tuple[str, int]:
    """The host (IPv6 without brackets, lowercased) and port of an http(s) URL; ConfigError if unusable."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError("targets.url", f"{url!r} is not a valid URL: {exc}") from exc
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ConfigError("targets.url", f"{url!r} is not an http(s) URL with a host")
    return parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS[parts.scheme]


def ip_of(host: str) -> str | None:
    """The canonical text of ``host`` if it is an IP address literal, else None (a DNS name)."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None
