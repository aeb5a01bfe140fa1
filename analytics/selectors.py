"""Checking that PromQL text is one plain vector selector: ``metric``, ``metric{l="v",...}``, ``{__name__=~"..."}``.

Where fleetlens takes a selector it appends a range (``<selector>[<chunk>]``), so anything more than a
vector selector (an operator, a function, a range, ``offset``/``@``, a subquery) would change the query.
The check is a small tokenizer over PromQL's lexical rules (quoted strings with escapes, backquoted
raw strings), not a PromQL parser, and it follows Prometheus in refusing a selector whose every matcher
matches the empty string (``{}``, ``{job=~".*"}``).
"""

from __future__ import annotations

import re

_METRIC = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_OPS = ("=~", "!~", "!=", "=")
# A bare word PromQL reads as a keyword or a number, not as a metric name.
_KEYWORDS = frozenset({
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
    "quantile", "limitk", "limit_ratio", "inf", "nan",
})
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", '"': '"',
            "'": "'"}


def vector_selector_problem(text: str) -> str | None:
    """Why ``text`` is not one plain vector selector (None when it is one)."""
    try:
        _Scanner(text).selector()
    except ValueError as exc:
        return str(exc)
    return None


class _Scanner:
    """A cursor over the selector text; every method raises ValueError naming what it found."""

    def __init__(self, text: str) -> None:
        self.text, self.i = text, 0

    def selector(self) -> None:
        self.space()
        name = self.match(_METRIC)
        self.space()
        if name is not None and self.peek("("):
            raise ValueError(f"a function call {self.text.strip()!r} is not allowed")
        if name is not None and name in _KEYWORDS:
            raise ValueError(f"{name!r} is a PromQL keyword, not a metric name")
        braces = self.peek("{")
        matchers = self.matchers() if braces else []
        if name is None and not braces:
            if not self.text.strip():
                raise ValueError("is empty")
            raise ValueError(f"expected a metric name or '{{' at offset {self.i}, found {self.rest()!r}")
        self.space()
        if self.i < len(self.text):
            raise ValueError(self.trailing())
        if name is None and all(_matches_empty(op, value) for _, op, value in matchers):
            raise ValueError("every matcher matches the empty string: name a metric or match a non-empty value")

    def matchers(self) -> list[tuple[str, str, str]]:
        self.i += 1  # "{"
        out: list[tuple[str, str, str]] = []
        while True:
            self.space()
            if self.peek("}"):
                self.i += 1
                return out
            label = self.match(_LABEL)
            if label is None:
                raise ValueError(f"expected a label name at offset {self.i}, found {self.rest()!r}")
            self.space()
            op = next((o for o in _OPS if self.text.startswith(o, self.i)), None)
            if op is None:
                raise ValueError(f"expected =, !=, =~ or !~ after {label!r}, found {self.rest()!r}")
            self.i += len(op)
            self.space()
            value = self.string()
            if op in ("=~", "!~"):
                try:
                    re.compile(value)
                except re.error as exc:
                    raise ValueError(f"{label}{op}: bad regular expression {value!r}: {exc}") from None
            out.append((label, op, value))
            self.space()
            if self.peek(","):
                self.i += 1
            elif not self.peek("}"):
                raise ValueError(f"expected ',' or '}}' at offset {self.i}, found {self.rest()!r}")

    def string(self) -> str:
        quote = self.text[self.i:self.i + 1]
        if quote not in ('"', "'", "`"):
            raise ValueError(f"expected a quoted label value at offset {self.i}, found {self.rest()!r}")
        self.i += 1
        out: list[str] = []
        while self.i < len(self.text):
            c = self.text[self.i]
            self.i += 1
            if c == quote:
                return "".join(out)
            if c == "\\" and quote != "`":
                esc = self.text[self.i:self.i + 1]
                if esc not in _ESCAPES:
                    raise ValueError(f"unknown escape '\\{esc}' in a label value")
                out.append(_ESCAPES[esc])
                self.i += 1
            elif c == "\n" and quote != "`":
                raise ValueError("a newline in a quoted label value")
            else:
                out.append(c)
        raise ValueError("unterminated quoted label value")

    def trailing(self) -> str:
        rest = self.rest()
        if rest.startswith("["):
            return f"a range or subquery {rest!r} is not allowed (fleetlens adds the range itself)"
        if rest.startswith("("):
            return f"a function call {self.text.strip()!r} is not allowed"
        word = _METRIC.match(rest)
        if (word and word.group() == "offset") or rest.startswith("@"):
            return f"a modifier {rest!r} is not allowed"
        if word and word.group() in _KEYWORDS:
            return f"an operator {word.group()!r} is not allowed: one vector selector only"
        return f"{rest!r} after the selector is not allowed (operators, functions, ranges): one vector selector only"

    def space(self) -> None:
        while self.i < len(self.text) and self.text[self.i] in " \t\n\r":
            self.i += 1

    def peek(self, s: str) -> bool:
        return self.text.startswith(s, self.i)

    def match(self, pattern: re.Pattern[str]) -> str | None:
        m = pattern.match(self.text, self.i)
        if m is None:
            return None
        self.i = m.end()
        return m.group()

    def rest(self) -> str:
        tail = self.text[self.i:]
        return tail if len(tail) <= 40 else tail[:37] + "..."


def _matches_empty(op: str, value: str) -> bool:
    """Whether a matcher matches the empty label value (as Prometheus checks a selector)."""
    if op == "=":
        return value == ""
    if op == "!=":
        return value != ""
    full = re.fullmatch(value, "") is not None
    return full if op == "=~" else not full
