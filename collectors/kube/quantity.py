"""Kubernetes resource quantities (``"7910m"``, ``"64Gi"``, ``"129e6"``) parsed exactly, as apimachinery does.

Grammar (``k8s.io/apimachinery/pkg/api/resource`` Quantity)::

    <quantity>        ::= <signedNumber><suffix>
    <signedNumber>    ::= <number> | <sign><number>        <sign> ::= "+" | "-"
    <number>          ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
    <suffix>          ::= <binarySI> | <decimalExponent> | <decimalSI>
    <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei
    <decimalSI>       ::= m | "" | k | M | G | T | P | E
    <decimalExponent> ::= "e" <signedNumber> | "E" <signedNumber>

Values are kept as exact ``Fraction``s; ``milli_value``/``int_value`` round up like apimachinery's
``MilliValue``/``Value`` do.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

from analytics.errors import FleetlensError

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "m": Fraction(1, 1000),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}
_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)"
# "E" alone is the exa suffix; "E" followed by a signed number is an exponent: the alternation order
# (exponent first, anchored at the end) decides "1E3" = 1000 and "1E" = 10**18.
_QUANTITY = re.compile(
    rf"^(?P<num>{_NUMBER})(?:[eE](?P<exp>[+-]?\d+)|(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?)$"
)


class QuantityError(FleetlensError, ValueError):
    """A value that is not a Kubernetes resource quantity."""


def parse_quantity(value: str | int) -> Fraction:
    """The exact value of a quantity string (or a JSON/YAML integer); QuantityError if malformed."""
    if isinstance(value, bool):
        raise QuantityError(f"{value!r} is not a quantity")
    if isinstance(value, int):
        return Fraction(value)
    if not isinstance(value, str):
        raise QuantityError(f"{value!r} is not a quantity (expected a string such as '500m' or '64Gi')")
    m = _QUANTITY.match(value)
    if m is None:
        raise QuantityError(
            f"{value!r} is not a quantity (expected <number><suffix>, e.g. '500m', '64Gi', '129e6')"
        )
    number = Fraction(m["num"])
    if m["exp"] is not None:
        return number * Fraction(10) ** int(m["exp"])
    suffix = m["suffix"] or ""
    return number * (_BINARY[suffix] if suffix in _BINARY else _DECIMAL[suffix])


def milli_value(q: Fraction) -> int:
    """``q`` in thousandths, rounded up (apimachinery ``MilliValue``: 0.1m is 1m)."""
    return math.ceil(q * 1000)


def int_value(q: Fraction) -> int:
    """``q`` rounded up to an integer (apimachinery ``Value``)."""
    return math.ceil(q)
