"""Property filters on an event's detail (a trigger's, an exit's, a wait's ``where``).

Values compare as numbers when either side is a number and the other reads as one (money travels as a
decimal string: ``{"property": "total_price", "op": "gt", "value": 100}``), as moments when both read as ISO
times, else as they are. A property the detail does not have fails every comparison but ``not_exists``;
``{"trigger": "<path>"}`` compares with the run's trigger at that path (and fails when the trigger lacks it).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from crm.flows.definition import detail_value, trigger_reference
from crm.models.flows import FilterOp, PropertyFilter

_ORDER: dict[FilterOp, Callable[[Any, Any], bool]] = {
    FilterOp.GT: operator.gt, FilterOp.GTE: operator.ge, FilterOp.LT: operator.lt, FilterOp.LTE: operator.le,
}


def filters_hold(filters: Sequence[PropertyFilter], detail: Mapping[str, Any], trigger: Mapping[str, Any]) -> bool:
    """Whether every filter holds for ``detail``; ``trigger`` resolves ``{"trigger": path}`` values."""
    return all(filter_holds(condition, detail, trigger) for condition in filters)


def filter_holds(condition: PropertyFilter, detail: Mapping[str, Any], trigger: Mapping[str, Any]) -> bool:
    actual = detail_value(detail, condition.property)
    if condition.op is FilterOp.EXISTS:
        return actual is not None
    if condition.op is FilterOp.NOT_EXISTS:
        return actual is None
    expected = _expected(condition.value, trigger)
    if actual is None or expected is None:
        return False
    if condition.op is FilterOp.IN:
        return isinstance(expected, list | tuple) and any(_same(actual, option) for option in expected)
    if condition.op is FilterOp.EQ:
        return _same(actual, expected)
    if condition.op is FilterOp.NEQ:
        return not _same(actual, expected)
    pair = _comparable(actual, expected)
    return pair is not None and _ORDER[condition.op](*pair)


def _expected(value: object, trigger: Mapping[str, Any]) -> object:
    reference = trigger_reference(value)
    return detail_value(trigger, reference) if reference is not None else value


def _same(actual: object, expected: object) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool):
        return type(actual) is type(expected) and actual == expected
    pair = _numbers(actual, expected)
    if pair is not None:
        return pair[0] == pair[1]
    return actual == expected


def _comparable(actual: object, expected: object) -> tuple[Any, Any] | None:
    numbers = _numbers(actual, expected)
    if numbers is not None:
        return numbers
    moments = (_moment(actual), _moment(expected))
    if moments[0] is not None and moments[1] is not None:
        return moments
    return None


def _numbers(actual: object, expected: object) -> tuple[Decimal, Decimal] | None:
    if not (_is_number(actual) or _is_number(expected)):
        return None
    left, right = _decimal(actual), _decimal(expected)
    return (left, right) if left is not None and right is not None else None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _decimal(value: object) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal | str):
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


def _moment(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else None
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


__all__ = ["filter_holds", "filters_hold"]
