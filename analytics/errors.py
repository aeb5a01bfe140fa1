"""The one error root of fleetlens and a subclass per concern.

Every error raised on purpose by fleetlens derives from ``FleetlensError``; the CLI is the only place
that turns them into messages and exit codes. Errors about input name their source and, where there
is one, the line or list item. Input that is bad but not fatal (a dropped line, a skipped item, rows
not written) is reported, not raised, as a ``Problem``: the non-raising twin of ``InputError``.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from enum import StrEnum


class FleetlensError(Exception):
    """Root of every error fleetlens raises on purpose."""


class SchemaError(FleetlensError):
    """A frame does not fit its declared data set (missing, extra or mistyped column, bad value)."""

    def __init__(self, dataset: str, column: str | None, message: str) -> None:
        self.dataset = dataset
        self.column = column
        where = f"{dataset}.{column}" if column else dataset
        super().__init__(f"{where}: {message}")


class ProblemCode(StrEnum):
    """What kind of problem, where callers branch on it (most problems need only their reason)."""

    UNMATCHED = "unmatched"  # a scrape target whose host:port is no pod's
    AMBIGUOUS = "ambiguous"  # a scrape target that several pods could be
    INVALID_TENANT = "invalid_tenant"  # a namespace that cannot be a tenant (a path, a label value)
    BAD_URL = "bad_url"  # a scrape target URL without a usable host and port


@dataclass(frozen=True, slots=True)
class Problem:
    """One bad line, list item or group of rows, skipped or kept in part: what ``InputError`` raises."""

    source: str  # the file, URL, target or data set
    reason: str
    _: KW_ONLY
    line: int | None = None  # 1-based line of a text input
    item: int | None = None  # index in a JSON list (``items[i]``)
    name: str | None = None  # the object: ``namespace/name``, a tenant
    code: ProblemCode | None = None
    text: str | None = None  # the offending line as read
    rows: int | None = None  # rows not written

    def __str__(self) -> str:
        """One line, ``source:line: items[3] (ns/name): code: reason``, without the parts it lacks."""
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        what = f"items[{self.item}]" if self.item is not None else self.name
        extra = [self.name] if self.item is not None and self.name else []
        extra += [f"{self.rows} rows"] if self.rows is not None else []
        if extra:
            what = f"{what} ({', '.join(extra)})" if what else f"({', '.join(extra)})"
        return ": ".join(p for p in (where, what, self.code and str(self.code), self.reason) if p)

    def error(self, cls: type[InputError] | None = None) -> InputError:
        """This problem raised: an ``InputError`` (or subclass ``cls``) whose ``problem`` equals it."""
        return (cls or InputError)(self.source, self.line, self.reason, item=self.item, name=self.name,
                                   code=self.code, text=self.text, rows=self.rows)


class InputError(FleetlensError):
    """Malformed input (exposition text, JSON, YAML, events): names the source and the line or item."""

    def __init__(self, source: str, line: int | None, message: str, *, item: int | None = None,
                 name: str | None = None, code: ProblemCode | None = None, text: str | None = None,
                 rows: int | None = None) -> None:
        self.source = source
        self.line = line
        self.reason = message
        self.problem = Problem(source, message, line=line, item=item, name=name, code=code, text=text, rows=rows)
        super().__init__(str(self.problem))


class ItemError(InputError):
    """One list item (a pod, node, event) is unusable: its reader reports it as a Problem and reads on."""

    def __init__(self, message: str) -> None:
        super().__init__("", None, message)  # the reader that catches it knows the source and index


class ExpositionError(InputError):
    """A line of Prometheus / OpenMetrics exposition text that cannot be read."""


class ConfigError(FleetlensError):
    """Configuration that cannot be used: names the key (dotted path) and the file."""

    def __init__(self, key: str, message: str, *, source: str = "config") -> None:
        self.key = key
        self.source = source
        super().__init__(f"{source}: {key}: {message}")


class UsageError(FleetlensError):
    """A command-line option (or combination of options) that cannot be used: names the option."""

    def __init__(self, option: str, message: str) -> None:
        self.option = option
        super().__init__(f"{option}: {message}")


class NameValidationError(FleetlensError):
    """A tenant, model or other name that may not become a path or a PromQL label value."""


class CollectorError(FleetlensError):
    """A source could not be read (target down, timeout, HTTP error, Prometheus-API error)."""


class StoreError(FleetlensError):
    """A data set could not be written or read."""


class PromQLError(FleetlensError):
    """A PromQL-compatible computation got input it cannot evaluate."""


class CanaryError(FleetlensError):
    """A canary comparison got samples it cannot evaluate (empty, NaN, all tied)."""
