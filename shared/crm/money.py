"""Money is Decimal with its currency beside it, never float."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

CENT = Decimal("0.01")


def to_money(value: str | int | Decimal) -> Decimal:
    """Parse a platform amount ("404.95") exactly, refusing floats that already lost precision."""
    if isinstance(value, float):
        raise TypeError("money must not be a float")
    amount = Decimal(str(value).strip())
    if not amount.is_finite():
        raise ValueError(f"not an amount: {value!r}")
    return amount.quantize(CENT, rounding=ROUND_HALF_EVEN)


def divide(total: Decimal, count: int) -> Decimal:
    """An average in cents (banker's rounding), zero for no items."""
    if count <= 0:
        return Decimal("0.00")
    return (total / count).quantize(CENT, rounding=ROUND_HALF_EVEN)


def format_money(amount: Decimal) -> str:
    """The wire form of an amount: a decimal string with two places."""
    return str(amount.quantize(CENT, rounding=ROUND_HALF_EVEN))
