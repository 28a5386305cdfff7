"""A condition's value, checked and typed against its field's kind and its operator.

Documents arrive as JSON, so every value is read from JSON shapes (and from the same values already typed,
so a parsed document validates again unchanged). Money and probabilities are Decimal, never float: a float
has already lost the amount the user wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict

from crm.clock import as_utc
from crm.models.consent import ConsentState
from crm.segments.fields import FieldSpec, Kind, Op

MAX_VALUES = 500  # in a list value: a longer list belongs in a tag or a segment of its own
MAX_TEXT = 200
MAX_DAYS = 36500  # a hundred years: anything longer is a typo

_LISTS = frozenset({Op.IN, Op.NOT_IN, Op.CONTAINS_ANY, Op.CONTAINS_ALL})
_WINDOWS = frozenset({Op.WITHIN_LAST, Op.NOT_WITHIN_LAST})
_CONSENT = tuple(state.value for state in ConsentState)


class DaysAgo(BaseModel):
    """A moment relative to the injected clock: ``now`` minus this many days."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    days_ago: int


class Days(BaseModel):
    """A window that ends now and reaches back this many days."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    days: int


def condition_value(spec: FieldSpec, op: Op, raw: object) -> Any:
    """The value typed for the field and operator; ValueError naming what the field takes."""
    if op in (Op.EXISTS, Op.NOT_EXISTS):
        if raw is not None:
            raise ValueError(f"{op} takes no value")
        return None
    if raw is None:
        raise ValueError(f"{spec.name} {op} needs a value")
    if op in _WINDOWS:
        return Days(days=_days(raw, "days", f'{op} takes {{"days": N}} with N a whole number of 1 or more', 1))
    if op is Op.BETWEEN:
        return _between(spec, raw)
    if op in _LISTS:
        return tuple(_scalar(spec, item) for item in _items(raw, f"{op} takes a list of 1 to {MAX_VALUES} values"))
    return _scalar(spec, raw)


def _items(raw: object, problem: str) -> list[object]:
    if not isinstance(raw, list | tuple) or not 1 <= len(raw) <= MAX_VALUES:
        raise ValueError(problem)
    return list(raw)


def _between(spec: FieldSpec, raw: object) -> tuple[Any, Any]:
    # The bounds may come in either order ("between 100 and 50" means what "between 50 and 100" does); they
    # are kept low first. One absolute and one relative time keep their order: which is earlier moves with
    # the clock.
    problem = "between takes [low, high], both included (the two bounds in either order)"
    items = _items(raw, problem)
    if len(items) != 2:
        raise ValueError(problem)
    low, high = (_scalar(spec, item) for item in items)
    if isinstance(low, DaysAgo) and isinstance(high, DaysAgo):
        return (low, high) if low.days_ago >= high.days_ago else (high, low)
    if isinstance(low, DaysAgo) or isinstance(high, DaysAgo):
        return (low, high)
    return (low, high) if low <= high else (high, low)


def _scalar(spec: FieldSpec, raw: object) -> Any:
    match spec.kind:
        case Kind.MONEY:
            return _decimal(raw, f'{spec.name} takes an amount: a decimal string such as "49.90" or a whole number')
        case Kind.PROBABILITY:
            chance = _decimal(raw, f'{spec.name} takes a probability from 0 to 1, such as "0.25"')
            if not 0 <= chance <= 1:
                raise ValueError(f"{spec.name} takes a probability from 0 to 1")
            return chance
        case Kind.COUNT | Kind.DAYS:
            return _whole(raw, f"{spec.name} takes a whole number")
        case Kind.TIME:
            return _moment(spec, raw)
        case Kind.CONSENT:
            if isinstance(raw, str) and raw in _CONSENT:
                return raw
            raise ValueError(f"{spec.name} takes one of {', '.join(_CONSENT)}")
        case _:
            if isinstance(raw, str) and raw.strip() and len(raw) <= MAX_TEXT:
                return raw
            raise ValueError(f"{spec.name} takes a non-empty string of at most {MAX_TEXT} characters")


def _decimal(raw: object, problem: str) -> Decimal:
    # bool is an int and float is inexact: neither is an amount anyone meant.
    if isinstance(raw, bool) or not isinstance(raw, str | int | Decimal):
        raise ValueError(problem)
    try:
        amount = Decimal(raw.strip() if isinstance(raw, str) else raw)
    except InvalidOperation:
        raise ValueError(problem) from None
    if not amount.is_finite():
        raise ValueError(problem)
    return amount


def _whole(raw: object, problem: str) -> int:
    # A JSON 3.0 arrives as Decimal("3.0") (floats are parsed as Decimal): it is still the number 3.
    if isinstance(raw, Decimal) and raw.is_finite() and raw == raw.to_integral_value():
        return int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ValueError(problem)
    return raw


def _days(raw: object, key: str, problem: str, least: int) -> int:
    if isinstance(raw, Days | DaysAgo):
        raw = raw.model_dump()
    if not isinstance(raw, Mapping) or set(raw) != {key}:
        raise ValueError(problem)
    days = _whole(raw[key], problem)
    if not least <= days <= MAX_DAYS:
        raise ValueError(problem)
    return days


def _moment(spec: FieldSpec, raw: object) -> datetime | DaysAgo:
    problem = (f'{spec.name} takes a time with its zone, such as "2026-01-31T00:00:00Z", '
               f'or {{"days_ago": N}} with N a whole number of 0 or more')
    if isinstance(raw, Mapping | DaysAgo):
        return DaysAgo(days_ago=_days(raw, "days_ago", problem, 0))
    if isinstance(raw, str):
        try:
            raw = datetime.fromisoformat(raw)
        except ValueError:
            raise ValueError(problem) from None
    if not isinstance(raw, datetime) or raw.tzinfo is None:
        raise ValueError(problem)
    return as_utc(raw)


__all__ = ["MAX_DAYS", "MAX_TEXT", "MAX_VALUES", "Days", "DaysAgo", "condition_value"]
