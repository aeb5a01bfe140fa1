"""Kubernetes quantity parsing against the apimachinery Quantity documentation."""

from __future__ import annotations

from fractions import Fraction

import pytest

from collectors.kube.quantity import QuantityError, int_value, milli_value, parse_quantity


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("8", Fraction(8), id="a bare integer is itself"),
        pytest.param("7910m", Fraction(7910, 1000), id="milli cpu is thousandths"),
        pytest.param("64Gi", Fraction(64 * 2**30), id="Gi is a power of two"),
        pytest.param("1Ki", Fraction(1024), id="1Ki is 1024"),
        pytest.param("1k", Fraction(1000), id="1k is 1000"),
        pytest.param("123Mi", Fraction(128974848), id="123Mi is 128974848 bytes"),
        pytest.param("129M", Fraction(129_000_000), id="M is a million"),
        pytest.param("129e6", Fraction(129_000_000), id="a decimal exponent"),
        pytest.param("128974848000m", Fraction(128974848), id="milli bytes of a byte count"),
        pytest.param("1E3", Fraction(1000), id="capital E with digits is an exponent"),
        pytest.param("1E", Fraction(10**18), id="capital E alone is exa"),
        pytest.param("2Ei", Fraction(2 * 2**60), id="Ei is exbi"),
        pytest.param("1.5", Fraction(3, 2), id="a decimal number"),
        pytest.param(".5", Fraction(1, 2), id="a number may start with the point"),
        pytest.param("5.", Fraction(5), id="a number may end with the point"),
        pytest.param("+1", Fraction(1), id="an explicit plus sign"),
        pytest.param("-1.5Gi", Fraction(-3, 2) * 2**30, id="a negative binary quantity"),
        pytest.param("1e-3", Fraction(1, 1000), id="a negative exponent"),
        pytest.param("1.5e+2", Fraction(150), id="a signed positive exponent"),
        pytest.param("0.1m", Fraction(1, 10_000), id="sub-milli precision is kept exactly"),
        pytest.param("3T", Fraction(3 * 10**12), id="T is tera"),
        pytest.param("4P", Fraction(4 * 10**15), id="P is peta"),
    ],
)
def test_quantities_parse_exactly(text: str, expected: Fraction) -> None:
    assert parse_quantity(text) == expected


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param("1.5", "1500m", id="1.5 equals its canonical form 1500m"),
        pytest.param("1.5Gi", "1536Mi", id="1.5Gi equals its canonical form 1536Mi"),
        pytest.param("129e6", "129M", id="129e6 equals 129M"),
        pytest.param("0.5", "500m", id="half a cpu equals 500m"),
    ],
)
def test_documented_equivalent_forms_are_equal(a: str, b: str) -> None:
    assert parse_quantity(a) == parse_quantity(b)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("Gi", id="a suffix without a number"),
        pytest.param("1KI", id="a wrong-case binary suffix"),
        pytest.param("1ki", id="lowercase ki is not a suffix"),
        pytest.param("1 Gi", id="a space before the suffix"),
        pytest.param("1.2.3", id="two decimal points"),
        pytest.param("1e", id="an exponent without digits"),
        pytest.param("1kb", id="a unit that is not a suffix"),
        pytest.param("-", id="a sign alone"),
        pytest.param(".", id="a point alone"),
        pytest.param("0x10", id="hexadecimal"),
    ],
)
def test_malformed_quantities_raise(text: str) -> None:
    with pytest.raises(QuantityError, match="not a quantity"):
        parse_quantity(text)


@pytest.mark.parametrize(
    "value",
    [pytest.param(1.5, id="a float"), pytest.param(True, id="a boolean"), pytest.param(None, id="null")],
)
def test_non_string_non_integer_values_raise(value: object) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(value)  # type: ignore[arg-type]


def test_an_integer_from_yaml_is_taken_as_is() -> None:
    assert parse_quantity(9) == 9


@pytest.mark.parametrize(
    ("text", "milli", "whole"),
    [
        pytest.param("0.1m", 1, 1, id="0.1m rounds up to 1m as apimachinery documents"),
        pytest.param("7910m", 7910, 8, id="7910m is 7910 milli and rounds up to 8"),
        pytest.param("8", 8000, 8, id="8 cpus are 8000 milli"),
        pytest.param("1.0001", 1001, 2, id="a fourth decimal rounds up"),
    ],
)
def test_milli_and_integer_values_round_up(text: str, milli: int, whole: int) -> None:
    q = parse_quantity(text)
    assert (milli_value(q), int_value(q)) == (milli, whole)
