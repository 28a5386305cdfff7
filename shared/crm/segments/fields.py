"""The closed registry of profile fields a segment condition can name: each field's type and its operators.

The registry is closed on purpose: a segment stored today must mean the same thing tomorrow, so a field
is added here (with its type and operators) before any document may use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    MONEY = "money"  # a Decimal amount in the workspace's reporting currency (docs/currency.md)
    COUNT = "count"  # a whole number
    DAYS = "days"  # whole days up to now: relative to the injected clock
    PROBABILITY = "probability"  # a Decimal from 0 to 1
    TIME = "time"  # an aware UTC datetime
    TEXT = "text"  # one string, compared without regard to case
    TEXT_SET = "text_set"  # a set of strings, compared without regard to case
    CONSENT = "consent"  # a ConsentState


class Op(StrEnum):
    EQ = "eq"
    NEQ = "neq"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    BETWEEN = "between"
    IN = "in"
    NOT_IN = "not_in"
    CONTAINS = "contains"
    CONTAINS_ANY = "contains_any"
    CONTAINS_ALL = "contains_all"
    EXISTS = "exists"
    NOT_EXISTS = "not_exists"
    BEFORE = "before"
    AFTER = "after"
    WITHIN_LAST = "within_last"
    NOT_WITHIN_LAST = "not_within_last"


_PRESENCE = (Op.EXISTS, Op.NOT_EXISTS)
_NUMBER_OPS = (Op.EQ, Op.NEQ, Op.GT, Op.GTE, Op.LT, Op.LTE, Op.BETWEEN, Op.IN, Op.NOT_IN, *_PRESENCE)
OPS: dict[Kind, tuple[Op, ...]] = {
    Kind.MONEY: _NUMBER_OPS,
    Kind.COUNT: _NUMBER_OPS,
    Kind.DAYS: _NUMBER_OPS,
    Kind.PROBABILITY: _NUMBER_OPS,
    # Two instants are almost never equal, so times are compared by order and windows only.
    Kind.TIME: (Op.BEFORE, Op.AFTER, Op.BETWEEN, Op.WITHIN_LAST, Op.NOT_WITHIN_LAST, *_PRESENCE),
    Kind.TEXT: (Op.EQ, Op.NEQ, Op.IN, Op.NOT_IN, *_PRESENCE),
    Kind.CONSENT: (Op.EQ, Op.NEQ, Op.IN, Op.NOT_IN, *_PRESENCE),
    Kind.TEXT_SET: (Op.CONTAINS, Op.CONTAINS_ANY, Op.CONTAINS_ALL, *_PRESENCE),
}

NUMBER_KINDS = frozenset({Kind.MONEY, Kind.COUNT, Kind.DAYS, Kind.PROBABILITY})


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: Kind
    # Computed over the whole population (RFM scores, predictions): a change to one profile can move others.
    population: bool = False

    @property
    def ops(self) -> tuple[Op, ...]:
        return OPS[self.kind]

    @property
    def time_relative(self) -> bool:
        return self.kind is Kind.DAYS


_SPECS = (
    FieldSpec("lifetime_value", Kind.MONEY),
    FieldSpec("orders_count", Kind.COUNT),
    FieldSpec("average_order_value", Kind.MONEY),
    FieldSpec("cancelled_count", Kind.COUNT),
    FieldSpec("total_refunded", Kind.MONEY),
    FieldSpec("first_order_at", Kind.TIME),
    FieldSpec("last_order_at", Kind.TIME),
    FieldSpec("days_since_last_order", Kind.DAYS),
    FieldSpec("days_since_first_order", Kind.DAYS),
    FieldSpec("products", Kind.TEXT_SET),
    FieldSpec("categories", Kind.TEXT_SET),
    FieldSpec("skus", Kind.TEXT_SET),
    FieldSpec("coupons", Kind.TEXT_SET),
    FieldSpec("consent.email", Kind.CONSENT),
    FieldSpec("consent.sms", Kind.CONSENT),
    FieldSpec("country", Kind.TEXT),
    FieldSpec("tags", Kind.TEXT_SET),
    FieldSpec("utm_source", Kind.TEXT),
    FieldSpec("last_utm_source", Kind.TEXT),
    FieldSpec("store", Kind.TEXT_SET),
    FieldSpec("email_domain", Kind.TEXT),
    FieldSpec("rfm.recency", Kind.COUNT, population=True),
    FieldSpec("rfm.frequency", Kind.COUNT, population=True),
    FieldSpec("rfm.monetary", Kind.COUNT, population=True),
    FieldSpec("rfm.group", Kind.TEXT, population=True),
    FieldSpec("predicted.clv", Kind.MONEY, population=True),
    FieldSpec("predicted.churn_probability", Kind.PROBABILITY, population=True),
)

FIELDS: dict[str, FieldSpec] = {spec.name: spec for spec in _SPECS}


__all__ = ["FIELDS", "NUMBER_KINDS", "OPS", "FieldSpec", "Kind", "Op"]
