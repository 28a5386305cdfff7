"""Whether a profile matches a segment definition, as of an injected ``now``; and what a definition depends on.

Absent values: a field the subject has no value for (no orders yet, no consent statement on the channel,
no RFM scores computed) makes every comparison false, ``neq`` and ``not_in`` included, and ``not_exists``
true. An empty set (no products bought, no tags) is absent too. To reach "everyone but", wrap the
comparison in ``not``: ``not`` is always the exact complement.

Events later than ``now`` are not counted, so evaluating at a past ``now`` sees only what had happened by
then. Text is compared without regard to case.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from crm.clock import as_utc
from crm.models.profile import Profile
from crm.segments.definition import (
    ORDER_PLACED,
    All,
    Any_,
    Condition,
    Definition,
    EventCondition,
    EventOp,
    MemberOf,
    MemberOp,
    Not,
    nodes,
)
from crm.segments.fields import FIELDS, Kind, Op
from crm.segments.values import Days, DaysAgo

DAY = timedelta(days=1)


@dataclass(frozen=True)
class Rfm:
    """The profile's RFM scores and group, computed over the whole population elsewhere."""

    recency: int | None = None
    frequency: int | None = None
    monetary: int | None = None
    group: str | None = None


@dataclass(frozen=True)
class Predicted:
    clv: Decimal | None = None
    churn_probability: Decimal | None = None


def predicted_of(profile: Profile) -> Predicted | None:
    """The profile's stored prediction as segments read it: absent unless the models predicted a figure
    (a profile with too little history, or a workspace not fitted, has none: docs/predictions-in-product.md)."""
    held = profile.prediction
    if held is None or held.status != "predicted":
        return None
    return Predicted(clv=held.clv, churn_probability=held.churn_probability)


@dataclass(frozen=True)
class Subject:
    """What a definition is evaluated against: the profile and what the profile alone does not hold.

    ``events`` are (activity type, occurred_at) pairs and ``orders`` the times orders were placed, as far
    back as the definition's event windows need (see Needs); ``segments`` are the ids of the segments the
    profile belongs to now.
    ``predicted`` is the profile's own stored prediction unless given.
    """

    profile: Profile
    events: tuple[tuple[str, datetime], ...] = ()
    orders: tuple[datetime, ...] = ()
    rfm: Rfm | None = None
    predicted: Predicted | None = None
    segments: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.predicted is None:
            object.__setattr__(self, "predicted", predicted_of(self.profile))  # frozen: set once, here
        # A naive time cannot be placed against now; refusing it here beats a TypeError mid-evaluation.
        for at in (*(at for _, at in self.events), *self.orders):
            as_utc(at)

    def occurrences(self, event: str) -> list[datetime]:
        if event == ORDER_PLACED:
            return list(self.orders)
        return [at for kind, at in self.events if kind == event]


def matches(definition: Definition, subject: Subject, now: datetime) -> bool:
    """Whether the subject is in the segment at ``now``; pure: the same inputs always give the same answer."""
    return _matches(definition, subject, as_utc(now))


def _matches(definition: Definition, subject: Subject, now: datetime) -> bool:
    if isinstance(definition, All):
        return all(_matches(part, subject, now) for part in definition.all)
    if isinstance(definition, Any_):
        return any(_matches(part, subject, now) for part in definition.any)
    if isinstance(definition, Not):
        return not _matches(definition.not_, subject, now)
    if isinstance(definition, Condition):
        return _condition(definition, subject, now)
    if isinstance(definition, EventCondition):
        return _event(definition, subject, now)
    return (definition.segment in subject.segments) == (definition.op is MemberOp.MEMBER)


# --- profile fields ------------------------------------------------------------------------------


def _keys(counter: Mapping[str, int]) -> frozenset[str]:
    # Counters are net of cancellations: a product whose only order was cancelled was not bought.
    return frozenset(key for key, units in counter.items() if units > 0)


def _days_since(at: datetime | None, now: datetime) -> int | None:
    return None if at is None else (now - at) // DAY


def _consent(profile: Profile, channel: str) -> str | None:
    statement = profile.consents.get(channel)
    return statement.state.value if statement else None


def _email_domain(email: str | None) -> str | None:
    _, at, domain = (email or "").rpartition("@")
    return domain.lower() if at and domain else None


def _average(profile: Profile) -> Decimal | None:
    # The profile says 0.00 for no orders; for a segment "no orders" has no average, not a small one.
    return profile.average_order_value if profile.orders_count else None


def _rfm(name: str) -> Callable[[Subject, datetime], object]:
    return lambda subject, _now: getattr(subject.rfm, name) if subject.rfm else None


def _predicted(name: str) -> Callable[[Subject, datetime], object]:
    return lambda subject, _now: getattr(subject.predicted, name) if subject.predicted else None


READERS: dict[str, Callable[[Subject, datetime], object]] = {
    "lifetime_value": lambda s, _: s.profile.total_spent,
    "orders_count": lambda s, _: s.profile.orders_count,
    "average_order_value": lambda s, _: _average(s.profile),
    "cancelled_count": lambda s, _: s.profile.cancelled_count,
    "total_refunded": lambda s, _: s.profile.total_refunded,
    "first_order_at": lambda s, _: s.profile.first_order_at,
    "last_order_at": lambda s, _: s.profile.last_order_at,
    "days_since_last_order": lambda s, now: _days_since(s.profile.last_order_at, now),
    "days_since_first_order": lambda s, now: _days_since(s.profile.first_order_at, now),
    "products": lambda s, _: _keys(s.profile.products),
    "categories": lambda s, _: _keys(s.profile.categories),
    "skus": lambda s, _: _keys(s.profile.skus),
    "coupons": lambda s, _: _keys(s.profile.coupons),
    "consent.email": lambda s, _: _consent(s.profile, "email"),
    "consent.sms": lambda s, _: _consent(s.profile, "sms"),
    "country": lambda s, _: s.profile.country,
    "tags": lambda s, _: frozenset(s.profile.tags),
    "utm_source": lambda s, _: s.profile.first_touch.source if s.profile.first_touch else None,
    "last_utm_source": lambda s, _: s.profile.last_touch.source if s.profile.last_touch else None,
    "store": lambda s, _: frozenset(s.profile.store_ids),
    "email_domain": lambda s, _: _email_domain(s.profile.email),
    "rfm.recency": _rfm("recency"),
    "rfm.frequency": _rfm("frequency"),
    "rfm.monetary": _rfm("monetary"),
    "rfm.group": _rfm("group"),
    "predicted.clv": _predicted("clv"),
    "predicted.churn_probability": _predicted("churn_probability"),
}

# Each test gets the present value and the value resolved against now (a window becomes its start).
_TESTS: dict[Op, Callable[[Any, Any], bool]] = {
    Op.EQ: operator.eq,
    Op.NEQ: operator.ne,
    Op.GT: operator.gt,
    Op.GTE: operator.ge,
    Op.LT: operator.lt,
    Op.LTE: operator.le,
    Op.BETWEEN: lambda actual, bounds: bool(bounds[0] <= actual <= bounds[1]),
    Op.IN: lambda actual, values: actual in values,
    Op.NOT_IN: lambda actual, values: actual not in values,
    Op.CONTAINS: lambda actual, value: value in actual,
    Op.CONTAINS_ANY: lambda actual, values: not actual.isdisjoint(values),
    Op.CONTAINS_ALL: lambda actual, values: actual.issuperset(values),
    Op.BEFORE: operator.lt,
    Op.AFTER: operator.gt,
    Op.WITHIN_LAST: operator.ge,
    Op.NOT_WITHIN_LAST: operator.lt,
}


def _condition(condition: Condition, subject: Subject, now: datetime) -> bool:
    spec = FIELDS[condition.field]
    actual = normal(spec.kind, READERS[condition.field](subject, now))
    if condition.op in (Op.EXISTS, Op.NOT_EXISTS):
        return (actual is not None) == (condition.op is Op.EXISTS)
    if actual is None:
        return False
    return bool(_TESTS[condition.op](actual, resolve(spec.kind, condition.value, now)))


def normal(kind: Kind, actual: object) -> object:
    if kind is Kind.TEXT_SET and isinstance(actual, frozenset):
        return frozenset(map(str.casefold, actual)) or None
    if kind is Kind.TEXT and isinstance(actual, str):
        return actual.casefold()
    return actual


def resolve(kind: Kind, value: object, now: datetime) -> object:
    if isinstance(value, tuple):
        parts = tuple(resolve(kind, part, now) for part in value)
        return frozenset(parts) if kind in (Kind.TEXT, Kind.TEXT_SET) else parts
    if isinstance(value, DaysAgo):
        return now - value.days_ago * DAY
    if isinstance(value, Days):
        return now - value.days * DAY
    if isinstance(value, str) and kind in (Kind.TEXT, Kind.TEXT_SET):
        return value.casefold()
    return value


# --- events --------------------------------------------------------------------------------------

COUNTS: dict[EventOp, Callable[[int, int], bool]] = {
    EventOp.AT_LEAST: operator.ge,
    EventOp.AT_MOST: operator.le,
    EventOp.EXACTLY: operator.eq,
    EventOp.NONE: lambda seen, _: seen == 0,
}


def _event(condition: EventCondition, subject: Subject, now: datetime) -> bool:
    seen = [at for at in subject.occurrences(condition.event) if at <= now]
    if condition.since is not None:
        anchors = [at for at in subject.occurrences(condition.since.event) if at <= now]
        if not anchors:
            return False  # "no order since checkout started" says nothing of someone who never started one
        anchor = max(anchors)
        seen = [at for at in seen if at > anchor]
    if condition.within_days is not None:
        start = now - condition.within_days * DAY
        seen = [at for at in seen if at >= start]
    return COUNTS[condition.op](len(seen), condition.count or 0)


# --- what a definition depends on ----------------------------------------------------------------


@dataclass(frozen=True)
class EventNeeds:
    """The events a definition counts: ``types`` as far back as ``window_days`` (None: the whole history),
    and of each ``anchors`` type only its latest occurrence, however old."""

    types: frozenset[str]
    window_days: int | None
    anchors: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Needs:
    """The inputs a definition depends on, for the scheduler to decide when a membership can change.

    ``time_relative``: it can change with time alone (a relative window, days since); ``population``: with
    other profiles (RFM scores, predictions); ``events``: with the profile's events; ``segments``: with the
    memberships of these segments.
    """

    time_relative: bool = False
    population: bool = False
    events: EventNeeds | None = None
    segments: frozenset[str] = frozenset()


def needs(definition: Definition) -> Needs:
    time_relative = population = False
    types: set[str] = set()
    anchors: set[str] = set()
    windows: list[int | None] = []
    segments: set[str] = set()
    for node in nodes(definition):
        if isinstance(node, Condition):
            spec = FIELDS[node.field]
            population = population or spec.population
            time_relative = time_relative or spec.time_relative or _relative(node.value) or node.op in (
                Op.WITHIN_LAST, Op.NOT_WITHIN_LAST)
        elif isinstance(node, EventCondition):
            types.add(node.event)
            windows.append(node.within_days)
            time_relative = time_relative or node.within_days is not None
            if node.since is not None:
                anchors.add(node.since.event)
        elif isinstance(node, MemberOf):
            segments.add(node.segment)
    events = None
    if windows:
        widest = None if None in windows else max(window for window in windows if window is not None)
        events = EventNeeds(frozenset(types), widest, frozenset(anchors))
    return Needs(time_relative, population, events, frozenset(segments))


def _relative(value: object) -> bool:
    if isinstance(value, tuple):
        return any(isinstance(part, DaysAgo) for part in value)
    return isinstance(value, DaysAgo | Days)


# READERS, COUNTS, normal and resolve are shared with crm.segments.columns, which must answer as matches() does.
__all__ = ["COUNTS", "DAY", "READERS", "EventNeeds", "Needs", "Predicted", "Rfm", "Subject", "matches", "needs",
           "normal", "predicted_of", "resolve"]
