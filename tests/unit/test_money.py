from __future__ import annotations

from decimal import Decimal

import pytest
from crm.money import Amount, AmountOutOfBounds, divide, format_money, to_money
from pydantic import BaseModel, ValidationError


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("404.95", Decimal("404.95")),
        (" 404.95 ", Decimal("404.95")),
        ("10", Decimal("10.00")),
        (7, Decimal("7.00")),
        (Decimal("0.1"), Decimal("0.10")),
        ("0.005", Decimal("0.00")),  # banker's rounding: half to even
        ("0.015", Decimal("0.02")),
        ("0.025", Decimal("0.02")),
        ("-3.50", Decimal("-3.50")),
    ],
)
def test_to_money_parses_exactly_to_cents(value: str | int | Decimal, expected: Decimal) -> None:
    amount = to_money(value)
    assert amount == expected
    assert amount.as_tuple().exponent == -2


def test_to_money_refuses_float() -> None:
    with pytest.raises(TypeError, match="float"):
        to_money(404.95)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", Decimal("NaN")])
def test_to_money_refuses_non_finite(value: str | Decimal) -> None:
    with pytest.raises(ValueError, match="not an amount"):
        to_money(value)


def test_sum_of_parsed_amounts_is_exact() -> None:
    assert sum((to_money("0.10") for _ in range(10)), Decimal("0")) == Decimal("1.00")


@pytest.mark.parametrize(
    ("total", "count", "expected"),
    [
        (Decimal("10.00"), 3, Decimal("3.33")),
        (Decimal("20.00"), 3, Decimal("6.67")),
        (Decimal("0.05"), 2, Decimal("0.02")),  # 0.025 -> half to even
        (Decimal("0.15"), 2, Decimal("0.08")),  # 0.075 -> half to even
        (Decimal("404.95"), 1, Decimal("404.95")),
        (Decimal("99.99"), 0, Decimal("0.00")),
        (Decimal("99.99"), -1, Decimal("0.00")),
    ],
)
def test_divide_rounds_to_cents(total: Decimal, count: int, expected: Decimal) -> None:
    result = divide(total, count)
    assert result == expected
    assert result.as_tuple().exponent == -2


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (Decimal("404.95"), "404.95"),
        (Decimal("0"), "0.00"),
        (Decimal("5"), "5.00"),
        (Decimal("1E+2"), "100.00"),
        (Decimal("1.005"), "1.00"),
        (Decimal("1.015"), "1.02"),
        (Decimal("-0.5"), "-0.50"),
    ],
)
def test_format_money_is_a_two_place_decimal_string(amount: Decimal, text: str) -> None:
    assert format_money(amount) == text


@pytest.mark.parametrize("value", ["1e40", "-1e40", "1000000000000.01", "-1000000000000.01", "9" * 39, "1E+400"])
def test_to_money_refuses_an_amount_out_of_bounds(value: str) -> None:
    with pytest.raises(AmountOutOfBounds):
        to_money(value)


@pytest.mark.parametrize("value", ["1e12", "-1e12", "999999999999.99", "0.00000000000000000000000000000000000001"])
def test_to_money_keeps_an_amount_at_the_bounds(value: str) -> None:
    assert to_money(value) == Decimal(value).quantize(Decimal("0.01"))


def test_a_payload_amount_field_names_the_bound_it_breaks() -> None:
    class Line(BaseModel):
        price: Amount

    assert Line.model_validate({"price": "12.345"}).price == Decimal("12.345")  # kept exact, not rounded
    with pytest.raises(ValidationError, match=r"price\n  Value error, amount 1\.000000E\+40 is larger than 1E\+12"):
        Line.model_validate({"price": Decimal("1e40")})
    with pytest.raises(ValidationError, match="at most 38 significant digits"):
        Line.model_validate({"price": "0." + "1" * 39})
