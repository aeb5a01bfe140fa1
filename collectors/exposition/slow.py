"""The careful, per-line reader of exposition text: exact grammar and a precise reason for every error.

The vectorised fast path (``_exposition_fast``) handles the common well-formed lines; everything it
rejects comes here, so this module decides what is an error and says why.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

METRIC_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Go's ParseFloat forms that Prometheus writes and reads; no hex, no '_' digit separators.
VALUE_RE = re.compile(r"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|(?i:inf(?:inity)?|nan))")
INT_TS_RE = re.compile(r"-?[0-9]+")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
_BLANKS = " \t"
# DCGM's int64 "blank" value (DCGM_INT64_BLANK = 0x7ffffffffffffff0) and above: no reading.
BLANK_SENTINEL = 9223372036854775792.0
MAX_TS_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: anything later is not a timestamp
# Label names that would collide with the wide frame's meta columns.
RESERVED = frozenset({"__name__", "__family__", "__type__", "__value__", "__ts__"})

Pairs = tuple[tuple[str, str], ...]


class LineError(ValueError):
    """One line cannot be read; ``reason`` says why (the caller adds source and line)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class SampleLine:
    """One sample line, read: labels in text order, value and timestamp already converted."""

    name: str
    labels: Pairs
    value: float
    ts_ms: int | None
    exemplar: tuple[Pairs, float, int | None] | None


def _skip(line: str, pos: int) -> int:
    n = len(line)
    while pos < n and line[pos] in _BLANKS:
        pos += 1
    return pos


def _show(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def parse_labels(line: str, pos: int) -> tuple[Pairs, int]:
    """Read a label set whose ``{`` is at ``pos``; return the pairs and the index after ``}``."""
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    n = len(line)
    pos = _skip(line, pos + 1)
    while True:
        if pos >= n:
            raise LineError("label set not closed with '}'")
        if line[pos] == "}":
            return tuple(pairs), pos + 1
        m = LABEL_NAME_RE.match(line, pos)
        end = m.end() if m else pos
        if m is None or (end < n and line[end] not in "= \t"):
            stop = pos
            while stop < n and line[stop] not in '=,}" \t':
                stop += 1
            bad = line[pos:stop] or line[pos]
            if bad.startswith("..."):
                raise LineError("elision '...' inside the label set (a documentation placeholder)")
            raise LineError(f"invalid label name {_show(bad)}")
        name = m.group()
        pos = _skip(line, end)
        if pos >= n or line[pos] != "=":
            raise LineError(f"expected '=' after label name {name!r}")
        pos = _skip(line, pos + 1)
        if pos >= n or line[pos] != '"':
            raise LineError(f"label {name!r}: value must be a double-quoted string")
        value, pos = _quoted(line, pos, name)
        if name in seen:
            raise LineError(f"duplicate label name {name!r}")
        if name in RESERVED:
            raise LineError(f"reserved label name {name!r}")
        seen.add(name)
        pairs.append((name, value))
        pos = _skip(line, pos)
        if pos < n and line[pos] == ",":
            pos = _skip(line, pos + 1)
        elif pos < n and line[pos] != "}":
            raise LineError(f"expected ',' or '}}' after label {name!r}, got {_show(line[pos:])}")


_QUOTED_RE = re.compile(r'"((?:[^"\\]|\\.)*)"', re.DOTALL)
_ESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)


def _quoted(line: str, pos: int, name: str) -> tuple[str, int]:
    """Read the quoted label value starting at ``pos`` (a ``"``); unescape ``\\\\``, ``\\"``, ``\\n``."""
    m = _QUOTED_RE.match(line, pos)
    if m is None:
        raise LineError(f"label {name!r}: unterminated quoted value")
    raw = m.group(1)
    # Like Prometheus: only these three are escapes; any other pair is kept verbatim.
    value = _ESCAPE_RE.sub(lambda e: _ESCAPES.get(e.group(1), e.group(0)), raw) if "\\" in raw else raw
    return value, m.end()


def parse_value(token: str) -> float:
    """A sample value (the DCGM blank sentinel is turned into missing later, for both paths)."""
    if not VALUE_RE.fullmatch(token):
        raise LineError(f"invalid value {_show(token)}")
    return float(token)


def parse_ts(token: str, openmetrics: bool) -> int:
    """A timestamp as UTC ms: integer ms in text 0.0.4, float seconds in OpenMetrics."""
    if openmetrics:
        if not VALUE_RE.fullmatch(token):
            raise LineError(f"invalid timestamp {_show(token)}")
        v = float(token)
        if not math.isfinite(v) or abs(v) * 1000.0 > MAX_TS_MS:
            raise LineError(f"timestamp out of range {_show(token)}")
        return round(v * 1000.0)
    if not INT_TS_RE.fullmatch(token):
        raise LineError(f"invalid timestamp {_show(token)} (text format 0.0.4 wants integer milliseconds)")
    v = int(token)
    if abs(v) > MAX_TS_MS:
        raise LineError(f"timestamp out of range {_show(token)}")
    return v


def _token(line: str, pos: int) -> tuple[str, int]:
    end = pos
    n = len(line)
    while end < n and line[end] not in _BLANKS:
        end += 1
    return line[pos:end], end


def parse_sample(line: str, openmetrics: bool) -> SampleLine:
    """Read one sample line (``name{labels} value [ts] [# {exemplar} value [ts]]``)."""
    pos = _skip(line, 0)
    m = METRIC_NAME_RE.match(line, pos)
    if m is None:
        rest = line[pos:].strip()
        if rest.startswith("..."):
            raise LineError("elision '...' (a documentation placeholder, not a sample)")
        raise LineError(f"invalid metric name at {_show(rest)}")
    name = m.group()
    pos = m.end()
    labels: Pairs = ()
    gap = _skip(line, pos)
    if gap < len(line) and line[gap] == "{":
        labels, pos = parse_labels(line, gap)
        gap = _skip(line, pos)
    elif gap < len(line) and gap == pos:
        raise LineError(f"invalid character {line[pos]!r} in metric name {name!r}")
    if gap >= len(line):
        raise LineError("missing value")
    token, pos = _token(line, gap)
    if token.startswith("#"):
        raise LineError("missing value")
    value = parse_value(token)
    ts_ms: int | None = None
    exemplar = None
    pos = _skip(line, pos)
    if pos < len(line) and line[pos] != "#":
        token, pos = _token(line, pos)
        ts_ms = parse_ts(token, openmetrics)
        pos = _skip(line, pos)
    if pos < len(line) and line[pos] == "#":
        exemplar = _exemplar(line, pos, openmetrics)
        pos = len(line)
    if pos < len(line):
        raise LineError(f"unexpected text after the value: {_show(line[pos:])}")
    return SampleLine(name, labels, value, ts_ms, exemplar)


def _exemplar(line: str, pos: int, openmetrics: bool) -> tuple[Pairs, float, int | None]:
    """Read `` # {labels} value [ts]`` at ``pos`` (the ``#``); exemplar timestamps are seconds."""
    pos = _skip(line, pos + 1)
    if pos >= len(line) or line[pos] != "{":
        raise LineError(f"malformed exemplar {_show(line[pos:])}: expected '{{'")
    labels, pos = parse_labels(line, pos)
    gap = _skip(line, pos)
    if gap == pos or gap >= len(line):
        raise LineError("exemplar without a value")
    token, pos = _token(line, gap)
    if not VALUE_RE.fullmatch(token):
        raise LineError(f"invalid exemplar value {_show(token)}")
    value = float(token)
    ts: int | None = None
    pos = _skip(line, pos)
    if pos < len(line):
        token, pos = _token(line, pos)
        ts = parse_ts(token, True)
        if _skip(line, pos) < len(line):
            raise LineError(f"unexpected text after the exemplar: {_show(line[pos:])}")
    return labels, value, ts


def parse_label_body(body: str) -> Pairs:
    """Read the text between ``{`` and ``}`` of a label set (used to intern distinct label sets)."""
    text = "{" + body + "}"
    pairs, end = parse_labels(text, 0)
    if end != len(text):
        raise LineError(f"unexpected text after the label set: {_show(text[end:])}")
    return pairs


def unescape_help(text: str, openmetrics: bool) -> str:
    """HELP text: ``\\\\`` and ``\\n`` are escapes (and ``\\"`` in OpenMetrics); others stay verbatim."""
    if "\\" not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "\\" or nxt == "n" or (openmetrics and nxt == '"'):
                out.append(_ESCAPES[nxt])
                i += 2
                continue
        out.append(c)
        i += 1
    return "".join(out)
