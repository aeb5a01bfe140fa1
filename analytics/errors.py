"""The one error root of fleetlens and a subclass per concern.

Every error raised on purpose by fleetlens derives from ``FleetlensError``; the CLI is the only place
that turns them into messages and exit codes. Errors about input name their source and, where there
is one, the line.
"""

from __future__ import annotations


class FleetlensError(Exception):
    """Root of every error fleetlens raises on purpose."""


class SchemaError(FleetlensError):
    """A frame does not fit its declared data set (missing, extra or mistyped column, bad value)."""

    def __init__(self, dataset: str, column: str | None, message: str) -> None:
        self.dataset = dataset
        self.column = column
        where = f"{dataset}.{column}" if column else dataset
        super().__init__(f"{where}: {message}")


class InputError(FleetlensError):
    """Malformed input (exposition text, JSON, YAML, events): names the source and the line."""

    def __init__(self, source: str, line: int | None, message: str) -> None:
        self.source = source
        self.line = line
        self.reason = message
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {message}")


class ExpositionError(InputError):
    """A line of Prometheus / OpenMetrics exposition text that cannot be read."""


class ConfigError(FleetlensError):
    """Configuration that cannot be used: names the key (dotted path) and the file."""

    def __init__(self, key: str, message: str, *, source: str = "config") -> None:
        self.key = key
        self.source = source
        super().__init__(f"{source}: {key}: {message}")


class NameValidationError(FleetlensError):
    """A tenant, model or other name that may not become a path or a PromQL label value."""


class CollectorError(FleetlensError):
    """A source could not be read (target down, timeout, HTTP error, Prometheus-API error)."""


class StoreError(FleetlensError):
    """A data set could not be written or read."""


class PromQLError(FleetlensError):
    """A PromQL-compatible computation got input it cannot evaluate."""
