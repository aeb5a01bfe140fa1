"""Read Prometheus text format 0.0.4 and OpenMetrics 1.0 exposition text into a long sample frame.

``parse_text`` returns a :class:`ParsedPage`. Its ``samples`` frame has one row per sample:

- ``line`` (UInt32): the 1-based line number in the page;
- ``__name__``, ``__family__``, ``__type__`` (Utf8): the sample name, its family and the family's
  type, all from ``# TYPE`` lines (a sample no TYPE covers is its own ``untyped`` family);
- ``__value__`` (Float64): NaN and +/-Inf kept; null only for the DCGM blank sentinel (missing);
- ``__ts__`` (Datetime ms UTC): the sample's own timestamp, null when it has none;
- ``__labels__`` (List(Struct(name: Utf8, value: Utf8))): the labels in text order, unescaped.

``ParsedPage.wide()`` gives the same samples as a wide sample frame (``collectors/samples.py``).
The work is split: ``_exposition_match``/``_exposition_fast`` handle well-formed lines in polars, ``_exposition_slow``
reads the rest line by line and names the fault of every bad line. Each line skipped (``dropped``) or
kept but suspect (``warnings``) is a ``Problem`` with its source, line, the line's text and the reason.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import polars as pl

from analytics.errors import ExpositionError, Problem
from collectors.exposition.build import build
from collectors.exposition.fast import fast_stage
from collectors.exposition.match import after_eof, split_and_match, split_only
from collectors.exposition.slow import METRIC_NAME_RE, LineError, Pairs, parse_sample, unescape_help
from collectors.samples import META_COLUMNS

LABELS = "__labels__"  # the labels column of ``ParsedPage.samples``
_Fault = tuple[int, str, str]  # (line, text, reason) of a line dropped or warned about


class MetricType(StrEnum):
    """The type a ``# TYPE`` line gives a family (text 0.0.4 and OpenMetrics spellings)."""

    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"
    SUMMARY = "summary"
    UNTYPED = "untyped"
    INFO = "info"
    STATESET = "stateset"
    GAUGEHISTOGRAM = "gaugehistogram"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Family:
    """A metric family: name, type and the HELP and UNIT text given for it (None when absent)."""

    name: str
    type: MetricType
    help: str | None = None
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class Exemplar:
    """An OpenMetrics exemplar attached to the sample on ``line`` (timestamp in UTC ms)."""

    line: int
    labels: Pairs
    value: float
    ts_ms: int | None


@dataclass(frozen=True, slots=True, eq=False)
class ParsedPage:
    """One page of exposition text, read: families, the long sample frame and what was skipped."""

    source: str
    families: Mapping[str, Family]
    samples: pl.DataFrame
    dropped: tuple[Problem, ...]
    warnings: tuple[Problem, ...]
    blank_count: int
    openmetrics: bool = False
    exemplars: tuple[Exemplar, ...] = ()
    # Row i of ``samples`` has label set ``_lsid[i]``, whose pairs are the rows of ``_flat``
    # (``bid``, ``name``, ``value``) with that ``bid``: ``wide`` pivots the sets it needs.
    _lsid: pl.Series = field(default_factory=lambda: pl.Series("bid", [], pl.UInt32), repr=False)
    _flat: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(schema={"bid": pl.UInt32, "name": pl.Utf8, "value": pl.Utf8}),
        repr=False,
    )

    def wide(self, names: Iterable[str] | None = None) -> pl.DataFrame:
        """The samples (only those whose ``__name__`` or ``__family__`` is in ``names``) as a wide frame."""
        meta, lsid = self.samples.select(META_COLUMNS), self._lsid
        if names is not None:
            wanted = pl.Series(list(dict.fromkeys(names)), dtype=pl.Utf8).implode()
            keep = self.samples.select(
                pl.col("__name__").is_in(wanted) | pl.col("__family__").is_in(wanted)
            ).to_series()
            meta, lsid = meta.filter(keep), lsid.filter(keep)
        if not len(lsid):
            return meta
        # Pivot only the label sets in use (one row each), then gather a row per sample.
        used = lsid.unique().sort()
        pairs = self._flat if names is None else self._flat.filter(pl.col("bid").is_in(used.implode()))
        if not len(pairs):
            return meta
        table = pl.DataFrame({"bid": used}).join(
            pairs.pivot(on="name", index="bid", values="value"), on="bid", how="left", maintain_order="left"
        )
        dense = np.zeros(int(used[-1]) + 1, dtype=np.uint32)
        dense[used.to_numpy()] = np.arange(len(used), dtype=np.uint32)
        labels = table.drop("bid")[pl.Series(dense[lsid.to_numpy()])]
        return pl.concat([meta, labels], how="horizontal")


_COMMENT_RE = re.compile(r"[ \t]*#[ \t]+(HELP|TYPE|UNIT)(?:[ \t]+(\S+))?(?:[ \t](.*))?\Z", re.DOTALL)
_EOF_RE = re.compile(r"[ \t]*#[ \t]*EOF[ \t]*\Z")
_OM_ONLY = {MetricType.INFO, MetricType.STATESET, MetricType.GAUGEHISTOGRAM, MetricType.UNKNOWN}


@dataclass(slots=True)
class _Decl:
    """What HELP/TYPE/UNIT lines said about one family, with the line of the first declaration."""

    line: int
    type: MetricType | None = None
    type_line: int = 0
    help: str | None = None
    unit: str | None = None


# Below this many lines, reading every line in Python beats polars' fixed cost per operation.
SMALL_PAGE_LINES = 100


def parse_text(text: str, *, strict: bool = False, source: str = "<text>") -> ParsedPage:
    """Read exposition text (0.0.4 or OpenMetrics, detected); strict mode raises ExpositionError."""
    data, errors = _utf8(text)
    small = len(data) < 1 << 16 and data.count(b"\n") < SMALL_PAGE_LINES
    matched = split_only(data) if small else split_and_match(data)
    lines, cand, others = matched.lines, matched.cand, matched.others
    warnings: list[_Fault] = []
    decls: dict[str, _Decl] = {}
    raw_help: dict[str, str] = {}
    blank = 0
    eof_line: int | None = None
    om = False
    sample_lines: list[tuple[int, str]] = []
    for line_no, line in others:
        if eof_line is not None:
            if line.strip(" \t"):
                errors.append((line_no, line, "text after '# EOF'"))
            continue
        stripped = line.strip(" \t")
        if not stripped:
            blank += 1
        elif stripped.startswith("#"):
            if _EOF_RE.match(line):
                eof_line, om = line_no, True
                continue
            om |= _comment(line_no, line, decls, raw_help, errors, warnings)
        else:
            sample_lines.append((line_no, line))
    if eof_line is not None:
        errors.extend(after_eof(lines, cand, eof_line))
    part = fast_stage(matched, om, eof_line)
    slow: list[tuple[int, str, Pairs, float | None, int | None]] = []
    exemplars: list[Exemplar] = []
    sample_lines.extend(part.rejected)
    for line_no, line in sorted(sample_lines):
        try:
            s = parse_sample(line, om)
        except LineError as err:
            errors.append((line_no, line, err.reason))
            continue
        slow.append((line_no, s.name, s.labels, s.value, s.ts_ms))
        if s.exemplar is not None:
            exemplars.append(Exemplar(line_no, *s.exemplar))
    if strict and errors:
        line_no, line, reason = min(errors, key=lambda d: d[0])
        raise ExpositionError(source, line_no, reason, text=line)
    families = {
        name: Family(name, d.type or MetricType.UNTYPED, _help(raw_help, name, om), d.unit)
        for name, d in decls.items()
    }
    types_of = {name: d.type for name, d in decls.items() if d.type is not None}
    built = build(lines, part, slow, types_of)
    for name in built.family_types:
        if name not in families:
            families[name] = Family(name, MetricType(built.family_types[name]))
    for name, d in decls.items():
        first = built.first_line.get(name)
        if first is None:
            warnings.append((d.line, built.text_of(d.line), f"family {name!r} is declared but has no samples"))
        elif d.type_line and d.type_line > first:
            warnings.append((d.type_line, built.text_of(d.type_line), f"TYPE for {name!r} comes after its samples"))
    warnings.extend((n, built.text_of(n), reason) for n, reason in built.warnings)
    return ParsedPage(
        source=source,
        families=types.MappingProxyType(families),
        samples=built.samples,
        dropped=_problems(source, errors),
        warnings=_problems(source, warnings),
        blank_count=blank,
        openmetrics=om,
        exemplars=tuple(exemplars),
        _lsid=built.lsid,
        _flat=built.flat,
    )


def _problems(source: str, bad: list[_Fault]) -> tuple[Problem, ...]:
    """The bad lines as Problems, in line order (lines with several faults keep theirs in order)."""
    return tuple(Problem(source, reason, line=n, text=text) for n, text, reason in sorted(bad, key=lambda d: d[0]))


def _utf8(text: str) -> tuple[bytes, list[_Fault]]:
    """The page as UTF-8; lines holding lone surrogates (not encodable) are blanked and dropped."""
    try:
        return text.encode("utf-8"), []
    except UnicodeEncodeError:
        pass
    out, bad = [], []
    for n, line in enumerate(text.split("\n"), start=1):
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:
            shown = line.encode("utf-8", "backslashreplace").decode("utf-8")
            bad.append((n, shown, "not valid Unicode text (a lone surrogate)"))
            line = "#"  # a comment keeps the line numbering and is otherwise ignored
        out.append(line)
    return "\n".join(out).encode("utf-8"), bad


def _help(raw_help: dict[str, str], name: str, om: bool) -> str | None:
    raw = raw_help.get(name)
    return None if raw is None else unescape_help(raw, om)


def _comment(
    line_no: int,
    line: str,
    decls: dict[str, _Decl],
    raw_help: dict[str, str],
    errors: list[_Fault],
    warnings: list[_Fault],
) -> bool:
    """Record one HELP/TYPE/UNIT line (other comments are ignored); True if it implies OpenMetrics."""
    m = _COMMENT_RE.match(line)
    if m is None:
        return False
    kind, name, rest = m.group(1), m.group(2), m.group(3)
    if name is None:
        errors.append((line_no, line, f"{kind} line without a metric name"))
        return False
    if not METRIC_NAME_RE.fullmatch(name):
        errors.append((line_no, line, f"invalid metric name {name!r} in {kind} line"))
        return False
    rest = (rest or "").lstrip(" \t")
    decl = decls.get(name)
    if kind == "TYPE":
        token = rest.rstrip(" \t")
        try:
            mtype = MetricType(token)
        except ValueError:
            reason = "TYPE line without a type" if not token else f"unknown metric type {token!r}"
            errors.append((line_no, line, reason))
            return False
        if decl is not None and decl.type is not None:
            if decl.type != mtype:
                errors.append((line_no, line, f"TYPE {mtype} conflicts with line {decl.type_line}"))
            else:
                warnings.append((line_no, line, f"repeated TYPE for {name!r} (first on line {decl.type_line})"))
            return False
        decl = decls.setdefault(name, _Decl(line_no))
        decl.type, decl.type_line = mtype, line_no
        return mtype in _OM_ONLY
    decl = decls.setdefault(name, _Decl(line_no))
    if kind == "HELP":
        if name in raw_help:
            warnings.append((line_no, line, f"repeated HELP for {name!r}"))
        else:
            raw_help[name] = rest
        return False
    decl.unit = rest.rstrip(" \t")
    return True
