"""Checking one configuration value at its dotted key: type, range, ``${env:NAME}``, errors with file, key and line."""

from __future__ import annotations

import difflib
import math
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from analytics.errors import ConfigError, NameValidationError
from analytics.names import validate_tenant
from analytics.selectors import vector_selector_problem
from collectors.samples import SourceFormat
from fleetlens import env

# Prometheus label names; names starting with "__" are reserved for Prometheus's own use.
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_CLUSTER = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?")
_SUBST = re.compile(r"\$\$\{|\$\{env:([^}]*)\}")
# Target labels whose value is a tenant (a Kubernetes namespace), so must be an RFC 1123 label.
TENANT_LABELS = ("namespace",)


class Substituted(str):
    """A string that came from ``${env:...}``: numeric keys may parse it as a number."""

    __slots__ = ()


class ValueChecker:
    """Checks values of one configuration; every method names the dotted key it is checking."""

    def __init__(self, source: str, base_dir: Path | None, lines: Mapping[str, int]) -> None:
        self.source, self.base_dir, self.lines = source, base_dir, lines

    def error(self, key: str, message: str) -> ConfigError:
        """A ConfigError naming the file, the key and (when known) its line."""
        line = self.lines.get(key)
        return ConfigError(key or "<root>", message + (f" (line {line})" if line else ""), source=self.source)

    def mapping(self, value: Any, key: str, allowed: Sequence[str]) -> dict[str, Any]:
        """A mapping whose keys are all among ``allowed`` (unknown ones get a "did you mean")."""
        if not isinstance(value, Mapping):
            raise self.error(key, f"expected a mapping, got {kind(value)}")
        for k in value:
            if not isinstance(k, str):
                raise self.error(key, f"key {k!r} is not a string")
            if k not in allowed:
                close = difflib.get_close_matches(k, allowed, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(allowed)})"
                raise self.error(join(key, k), f"unknown key{hint}")
        return dict(value)

    def sequence(self, value: Any, key: str) -> list[Any]:
        """A list ([] when absent)."""
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.error(key, f"expected a list, got {kind(value)}")
        return value

    def string(self, value: Any, key: str) -> str:
        """A non-empty string, ``${env:...}`` substituted."""
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {kind(value)} (quote it)")
        out = str(self.substitute(value, key))
        if not out.strip():
            raise self.error(key, "is empty")
        return out

    def number(self, value: Any, key: str, *, positive: bool) -> float:
        """A finite number (from the environment too), positive when asked."""
        value = self._from_env(value, key, float, "a number")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"expected a number, got {kind(value)}")
        if not math.isfinite(value) or (positive and value <= 0):
            raise self.error(key, f"expected a {'positive ' if positive else ''}finite number, got {value}")
        return float(value)

    def integer(self, value: Any, key: str, *, minimum: int) -> int:
        """An integer (from the environment too) of at least ``minimum``."""
        value = self._from_env(value, key, int, "an integer")
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected an integer, got {kind(value)}")
        if value < minimum:
            raise self.error(key, f"must be at least {minimum}, got {value}")
        return value

    def url(self, value: Any, key: str) -> str:
        """An http(s) URL with a host and a valid port."""
        text = self.string(value, key)
        problem = url_problem(text)
        if problem is not None:
            raise self.error(key, problem)
        return text

    def selector(self, value: Any, key: str) -> str:
        """One plain PromQL vector selector (no operator, function, range, offset or subquery)."""
        text = self.string(value, key)
        problem = vector_selector_problem(text)
        if problem is not None:
            raise self.error(key, f"{text!r} is not a plain vector selector: {problem}")
        return text.strip()

    def path(self, value: Any, key: str) -> Path:
        """A path, ``~`` expanded and resolved against the file's directory."""
        return self.resolve(Path(self.string(value, key)).expanduser())

    def resolve(self, path: Path) -> Path:
        """``path`` resolved against the configuration file's directory (when known)."""
        return path if path.is_absolute() or self.base_dir is None else self.base_dir / path

    def source_format(self, value: Any, key: str) -> SourceFormat:
        """One of the exposition formats fleetlens reads."""
        text = self.string(value, key)
        try:
            return SourceFormat(text)
        except ValueError:
            raise self.error(key, f"{text!r} is not a source format (known: {', '.join(SourceFormat)})") from None

    def tenant(self, value: Any, key: str) -> str:
        """A valid tenant name (an RFC 1123 label)."""
        text = self.string(value, key)
        try:
            return validate_tenant(text)
        except NameValidationError as exc:
            raise self.error(key, str(exc)) from exc

    def cluster(self, value: Any, key: str) -> str:
        """A cluster name: letters, digits, '.', '_', '-', 1-63 characters."""
        text = self.string(value, key)
        if not is_cluster_name(text):
            raise self.error(key, f"{text!r} is not a cluster name (letters, digits, '.', '_', '-', 1-63)")
        return text

    def labels(self, value: Any, key: str) -> dict[str, str]:
        """Prometheus target labels; a tenant label must hold a valid tenant."""
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.error(key, f"expected a mapping of label names to values, got {kind(value)}")
        out: dict[str, str] = {}
        for name, val in value.items():
            k = join(key, str(name))
            if not isinstance(name, str) or not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
                raise self.error(
                    k, f"{name!r} is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, no '__')"
                )
            out[name] = self.tenant(val, k) if name in TENANT_LABELS else self.string(val, k)
        return out

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
        return Substituted(out) if found else out

    def _from_env(self, value: Any, key: str, convert: type[int | float], what: str) -> Any:
        """``value`` with ``${env:...}`` substituted; text that came from the environment converted."""
        value = self.substitute(value, key) if isinstance(value, str) else value
        if isinstance(value, Substituted):
            try:
                return convert(value)
            except ValueError:
                raise self.error(key, f"expected {what}, the environment gave {str(value)!r}") from None
        return value

    def substitute_all(self, value: Any, key: str) -> Any:
        """Every string in a nested mapping / list with ``${env:...}`` substituted."""
        if isinstance(value, str):
            return str(self.substitute(value, key))
        if isinstance(value, dict):
            return {k: self.substitute_all(v, join(key, str(k))) for k, v in value.items()}
        if isinstance(value, list):
            return [self.substitute_all(v, f"{key}[{i}]") for i, v in enumerate(value)]
        return value


def url_problem(text: str) -> str | None:
    """What is wrong with ``text`` as an http(s) URL with a host and a valid port; None if nothing."""
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in text):
        return f"{text!r} is not an http:// or https:// URL with a host"
    try:
        parts.port  # noqa: B018 - raises on a non-numeric or out-of-range port
    except ValueError as exc:
        return f"{text!r}: {exc}"
    return None


def is_cluster_name(text: str) -> bool:
    """Whether ``text`` is a cluster name: letters, digits, '.', '_', '-', 1-63 characters."""
    return bool(_CLUSTER.fullmatch(text))


def join(key: str, name: str) -> str:
    """``key.name``, or ``name`` at the root."""
    return f"{key}.{name}" if key else name


def kind(value: Any) -> str:
    """What a value is, for an error message."""
    return "nothing" if value is None else type(value).__name__
