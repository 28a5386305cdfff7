"""Hypothesis strategies for segment definitions and the subjects they are evaluated against."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from crm.models.canonical import Touch
from crm.models.consent import Channel, Consent, ConsentState
from crm.models.profile import Profile, new_profile
from crm.segments.definition import (
    EVENT_TYPES,
    All,
    Any_,
    Condition,
    Definition,
    EventCondition,
    EventOp,
    MemberOf,
    MemberOp,
    Not,
    Since,
)
from crm.segments.evaluate import Predicted, Rfm, Subject
from crm.segments.fields import FIELDS, FieldSpec, Kind, Op
from crm.segments.values import Days, DaysAgo
from hypothesis import strategies as st

from tests.builders import NOW

# Small vocabularies, so generated conditions often meet generated profiles (in both letter cases).
WORDS = ("GB", "gb", "US", "VIP", "vip", "Blue Mug", "Kitchen", "MUG-B", "WELCOME10", "example.com",
         "newsletter", "google", "store_a", "champions")
SEGMENT_IDS = ("seg_1", "seg_2")
ACTIVITIES = tuple(kind for kind in EVENT_TYPES if kind != "order_placed")

moments = st.builds(lambda hours: NOW - timedelta(hours=hours), st.integers(-48, 24 * 400))
texts = st.one_of(st.sampled_from(WORDS), st.text(st.characters(categories=("L", "N")), min_size=1, max_size=8))
amounts = st.decimals(min_value=-1000, max_value=100_000, places=2, allow_nan=False, allow_infinity=False)


def _times() -> st.SearchStrategy[Any]:
    start = datetime(2020, 1, 1, tzinfo=UTC)
    absolute = st.builds(lambda micros: start + timedelta(microseconds=micros), st.integers(0, 10**16))
    return st.one_of(absolute, moments, st.builds(DaysAgo, days_ago=st.integers(0, 400)))


SCALARS: dict[Kind, st.SearchStrategy[Any]] = {
    Kind.MONEY: amounts,
    Kind.PROBABILITY: st.decimals(min_value=0, max_value=1, places=2),
    Kind.COUNT: st.integers(-1, 6),
    Kind.DAYS: st.integers(-1, 400),
    Kind.TIME: _times(),
    Kind.TEXT: texts,
    Kind.TEXT_SET: texts,
    Kind.CONSENT: st.sampled_from([state.value for state in ConsentState]),
}


def _ordered(pair: list[Any]) -> list[Any]:
    low, high = pair
    if isinstance(low, DaysAgo) and isinstance(high, DaysAgo):
        return sorted(pair, key=lambda moment: -moment.days_ago)
    if isinstance(low, DaysAgo) or isinstance(high, DaysAgo):
        return pair
    return sorted(pair)


def _value(spec: FieldSpec, op: Op) -> st.SearchStrategy[Any]:
    scalar = SCALARS[spec.kind]
    if op in (Op.EXISTS, Op.NOT_EXISTS):
        return st.none()
    if op in (Op.WITHIN_LAST, Op.NOT_WITHIN_LAST):
        return st.builds(Days, days=st.integers(1, 400))
    if op is Op.BETWEEN:
        return st.lists(scalar, min_size=2, max_size=2).map(_ordered)
    if op in (Op.IN, Op.NOT_IN, Op.CONTAINS_ANY, Op.CONTAINS_ALL):
        return st.lists(scalar, min_size=1, max_size=4)
    return scalar


@st.composite
def conditions(draw: st.DrawFn) -> Condition:
    spec = FIELDS[draw(st.sampled_from(sorted(FIELDS)))]
    op = draw(st.sampled_from(spec.ops))
    return Condition(field=spec.name, op=op, value=draw(_value(spec, op)))


@st.composite
def event_conditions(draw: st.DrawFn) -> EventCondition:
    event = draw(st.sampled_from(EVENT_TYPES))
    op = draw(st.sampled_from(list(EventOp)))
    count = None if op is EventOp.NONE else draw(st.integers(1 if op is EventOp.AT_LEAST else 0, 4))
    anchor = draw(st.none() | st.sampled_from([kind for kind in EVENT_TYPES if kind != event]))
    return EventCondition(event=event, op=op, count=count, within_days=draw(st.none() | st.integers(1, 60)),
                          since=Since(event=anchor) if anchor else None)


memberships = st.builds(MemberOf, segment=st.sampled_from(SEGMENT_IDS), op=st.sampled_from(list(MemberOp)))
leaves: st.SearchStrategy[Definition] = st.one_of(conditions(), event_conditions(), memberships)


def _groups(children: st.SearchStrategy[Definition]) -> st.SearchStrategy[Definition]:
    parts = st.lists(children, min_size=1, max_size=3).map(tuple)
    return st.one_of(parts.map(lambda items: All(all=items)), parts.map(lambda items: Any_(any=items)),
                     children.map(lambda child: Not(not_=child)))


definitions: st.SearchStrategy[Definition] = st.recursive(leaves, _groups, max_leaves=8)


# --- subjects ------------------------------------------------------------------------------------


def _counter() -> st.SearchStrategy[dict[str, int]]:
    return st.dictionaries(st.sampled_from(WORDS), st.integers(0, 2), max_size=3)


@st.composite
def profiles(draw: st.DrawFn) -> Profile:
    orders = draw(st.integers(0, 3))
    first = draw(moments) if orders else None
    last = max(first, draw(moments)) if first else None
    channels = draw(st.lists(st.sampled_from(list(Channel)), unique=True))
    consents = {channel.value: Consent(channel=channel, state=draw(st.sampled_from(list(ConsentState))),
                                       source="test", at=NOW) for channel in channels}
    touch = st.none() | st.builds(lambda source: Touch(source=source, at=NOW), st.sampled_from(WORDS))
    return new_profile("ws_a", "p-1", NOW).model_copy(update={
        "orders_count": orders, "cancelled_count": draw(st.integers(0, 2)),
        "total_spent": draw(amounts) if orders else Decimal("0.00"), "total_refunded": draw(amounts),
        "first_order_at": first, "last_order_at": last,
        "products": draw(_counter()), "categories": draw(_counter()), "skus": draw(_counter()),
        "coupons": draw(_counter()), "consents": consents,
        "country": draw(st.none() | st.sampled_from(WORDS)),
        "email": draw(st.sampled_from([None, "ada@Example.com", "bo@shop.io", "not-an-email"])),
        "tags": tuple(draw(st.lists(st.sampled_from(WORDS), max_size=3, unique=True))),
        "store_ids": tuple(draw(st.lists(st.sampled_from(WORDS), max_size=2, unique=True))),
        "first_touch": draw(touch), "last_touch": draw(touch),
    })


rfms = st.none() | st.builds(Rfm, recency=st.none() | st.integers(1, 5), frequency=st.none() | st.integers(1, 5),
                             monetary=st.none() | st.integers(1, 5), group=st.none() | st.sampled_from(WORDS))
predictions = st.none() | st.builds(Predicted, clv=st.none() | amounts,
                                    churn_probability=st.none() | st.decimals(0, 1, places=2))

subjects = st.builds(
    Subject,
    profile=profiles(),
    events=st.lists(st.tuples(st.sampled_from(ACTIVITIES), moments), max_size=8).map(tuple),
    orders=st.lists(moments, max_size=4).map(tuple),
    rfm=rfms,
    predicted=predictions,
    segments=st.frozensets(st.sampled_from(SEGMENT_IDS)),
)
