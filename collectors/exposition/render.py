"""Write samples back out as Prometheus text 0.0.4 or OpenMetrics 1.0 exposition text.

The inverse of ``collectors.exposition.parse_text``: used by the simulator-style tests and by the
round-trip property tests (render -> parse gives back the same samples).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

import polars as pl

from collectors.exposition import Family, MetricType, ParsedPage

_NO_TYPE_LINE = {MetricType.UNTYPED}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def escape_label_value(value: str) -> str:
    """A label value with ``\\``, ``"`` and newline escaped, as both formats require."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str, *, openmetrics: bool = False) -> str:
    """HELP text: ``\\`` and newline escaped (and ``"`` in OpenMetrics)."""
    out = text.replace("\\", "\\\\").replace("\n", "\\n")
    return out.replace('"', '\\"') if openmetrics else out


def format_value(value: float) -> str:
    """A float as exposition text: shortest round-trip repr, ``NaN``, ``+Inf``, ``-Inf``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def format_ts(ts: datetime | int, *, openmetrics: bool = False) -> str:
    """A timestamp: integer ms in text 0.0.4, exact decimal seconds in OpenMetrics."""
    ms = ts if isinstance(ts, int) else (ts - _EPOCH) // timedelta(milliseconds=1)  # exact, no float
    if not openmetrics:
        return str(ms)
    sign = "-" if ms < 0 else ""
    sec, rem = divmod(abs(ms), 1000)
    return f"{sign}{sec}.{rem:03d}" if rem else f"{sign}{sec}"


def _labels(pairs: Iterable[Mapping[str, str]]) -> str:
    body = ",".join(f'{p["name"]}="{escape_label_value(p["value"])}"' for p in pairs)
    return "{" + body + "}" if body else ""


def render_text(
    families: Mapping[str, Family] | Iterable[Family],
    samples: pl.DataFrame,
    *,
    openmetrics: bool = False,
) -> str:
    """Render long-form samples (``parse_text``'s ``samples`` columns) grouped by family.

    Families are written in order of their first sample, each with its HELP/TYPE (and UNIT in
    OpenMetrics) lines when known. A sample whose value is null (missing) has no text form and is
    left out. OpenMetrics output ends with ``# EOF``.
    """
    known = dict(families) if isinstance(families, Mapping) else {f.name: f for f in families}
    out: list[str] = []
    rows = samples.select("__name__", "__family__", "__value__", "__ts__", "__labels__").iter_rows()
    current: str | None = None
    for name, family, value, ts, labels in rows:
        family = family or name
        if family != current:
            current = family
            out.extend(_header(known.get(family), family, openmetrics))
        if value is None:
            continue
        line = f"{name}{_labels(labels or ())} {format_value(value)}"
        if ts is not None:
            line += " " + format_ts(ts, openmetrics=openmetrics)
        out.append(line)
    if openmetrics:
        out.append("# EOF")
    return "\n".join(out) + "\n" if out else ""


def _header(fam: Family | None, name: str, openmetrics: bool) -> list[str]:
    if fam is None:
        return []
    lines = []
    if fam.help is not None:
        lines.append(f"# HELP {name} {escape_help(fam.help, openmetrics=openmetrics)}")
    allowed_here = openmetrics or fam.type not in {
        MetricType.INFO,
        MetricType.STATESET,
        MetricType.GAUGEHISTOGRAM,
        MetricType.UNKNOWN,
    }
    if fam.type not in _NO_TYPE_LINE and allowed_here:
        lines.append(f"# TYPE {name} {fam.type}")
    if openmetrics and fam.unit:
        lines.append(f"# UNIT {name} {fam.unit}")
    return lines


def render_page(page: ParsedPage, *, openmetrics: bool | None = None) -> str:
    """Render a parsed page back to text (in the page's own format unless told otherwise)."""
    om = page.openmetrics if openmetrics is None else openmetrics
    return render_text(page.families, page.samples, openmetrics=om)
