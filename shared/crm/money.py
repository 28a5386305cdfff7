"""Money is Decimal with its currency beside it, never float."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated

from pydantic import AfterValidator

CENT = Decimal("0.01")
# No shop charges a trillion in one amount; beyond that a payload is corrupt or hostile, not an order.
MAX_AMOUNT = Decimal("1e12")
# A DynamoDB Number holds at most 38 significant digits: more could never be stored.
MAX_SIGNIFICANT_DIGITS = 38


class AmountOutOfBounds(ValueError):
    """An amount that no order can carry: more than 38 significant digits or above 1e12 either way."""


def bounded(amount: Decimal) -> Decimal:
    """``amount`` itself when it is finite, has at most 38 significant digits and is at most 1e12 in size
    (raises AmountOutOfBounds, a ValueError, so a pydantic field names it)."""
    if not amount.is_finite():
        raise AmountOutOfBounds(f"not an amount: {amount}")
    if len(amount.as_tuple().digits) > MAX_SIGNIFICANT_DIGITS:
        raise AmountOutOfBounds(f"an amount has at most {MAX_SIGNIFICANT_DIGITS} significant digits")
    if abs(amount) > MAX_AMOUNT:
        raise AmountOutOfBounds(f"amount {amount:.6E} is larger than {MAX_AMOUNT:.0E}")
    return amount


# A payload's amount field: exact (never a float) and bounded as ``bounded`` says.
Amount = Annotated[Decimal, AfterValidator(bounded)]


def to_money(value: str | int | Decimal) -> Decimal:
    """Parse a platform amount ("404.95") exactly, refusing floats that already lost precision and amounts
    out of bounds (AmountOutOfBounds)."""
    if isinstance(value, float):
        raise TypeError("money must not be a float")
    amount = Decimal(str(value).strip())
    if not amount.is_finite():
        raise ValueError(f"not an amount: {value!r}")
    return bounded(amount).quantize(CENT, rounding=ROUND_HALF_EVEN)


def divide(total: Decimal, count: int) -> Decimal:
    """An average in cents (banker's rounding), zero for no items."""
    if count <= 0:
        return Decimal("0.00")
    return (total / count).quantize(CENT, rounding=ROUND_HALF_EVEN)


def format_money(amount: Decimal) -> str:
    """The wire form of an amount: a decimal string with two places."""
    return str(amount.quantize(CENT, rounding=ROUND_HALF_EVEN))
