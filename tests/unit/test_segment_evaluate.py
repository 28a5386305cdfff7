"""Segment evaluation: every operator on hand-built profiles, the issue's two sentences, absent values,
what a definition needs, and the laws any evaluation keeps (complement, all/any, round-trip, determinism)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from crm.models.canonical import Touch
from crm.models.consent import Channel, Consent, ConsentState
from crm.models.profile import Profile, new_profile
from crm.segments.definition import (
    All,
    Any_,
    Condition,
    Definition,
    Not,
    SegmentDocument,
    check_limits,
    nodes,
    parse_segment,
)
from crm.segments.evaluate import EventNeeds, Needs, Predicted, Rfm, Subject, matches, needs
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.builders import NOW
from tests.unit.segment_strategies import definitions, subjects

DAY = timedelta(days=1)


def ada_profile() -> Profile:
    """Three orders (one more cancelled), 150.00 net, first 100 days ago, last 10 days and 1 hour ago."""
    return new_profile("ws_a", "p-ada", NOW - 200 * DAY).model_copy(update={
        "email": "Ada@Example.COM", "country": "GB", "store_ids": ("store_a",), "tags": ("VIP", "wholesale"),
        "orders_count": 3, "cancelled_count": 1, "total_spent": Decimal("150.00"), "total_refunded": Decimal("10.00"),
        "first_order_at": NOW - 100 * DAY, "last_order_at": NOW - 10 * DAY - timedelta(hours=1),
        "products": {"Blue Mug": 2, "Red Mug": 0}, "categories": {"Kitchen": 2}, "skus": {"MUG-B": 2},
        "coupons": {"WELCOME10": 1},
        "consents": {"email": Consent(channel=Channel.EMAIL, state=ConsentState.SUBSCRIBED, source="test", at=NOW)},
        "first_touch": Touch(source="Newsletter", at=NOW - 200 * DAY), "last_touch": Touch(source="google", at=NOW),
    })


ADA = Subject(
    profile=ada_profile(),
    events=(("product_viewed", NOW - 1 * DAY), ("product_viewed", NOW - 5 * DAY), ("product_viewed", NOW - 29 * DAY),
            ("product_viewed", NOW - 31 * DAY), ("checkout_started", NOW - 3 * DAY)),
    orders=(NOW - 100 * DAY, NOW - 50 * DAY, NOW - 10 * DAY - timedelta(hours=1)),
    rfm=Rfm(recency=4, frequency=3, monetary=5, group="loyal"),
    predicted=Predicted(clv=Decimal("420.00"), churn_probability=Decimal("0.15")),
    segments=frozenset({"seg_vip"}),
)
NOBODY = Subject(profile=new_profile("ws_a", "p-new", NOW))  # no orders, no consent, nothing


def check(node: dict[str, Any], subject: Subject = ADA, now: datetime = NOW) -> bool:
    document = parse_segment(json.dumps({"name": "s", "definition": node}).encode())
    return matches(document.definition, subject, now)


def cond(field: str, op: str, value: Any = None) -> dict[str, Any]:
    return {"field": field, "op": op} | ({} if value is None else {"value": value})


# Each row: a condition, and whether Ada and a brand-new profile match it (worked out by hand above).
CASES: list[tuple[str, str, Any, bool, bool]] = [
    # money: lifetime value 150.00, refunded 10.00, AOV 150.00 / 3 = 50.00; the new profile has 0.00 and no AOV
    ("lifetime_value", "eq", "150", True, False),
    ("lifetime_value", "neq", "150.00", False, True),
    ("lifetime_value", "gt", "149.99", True, False),
    ("lifetime_value", "gt", "150.00", False, False),
    ("lifetime_value", "gte", "150.00", True, False),
    ("lifetime_value", "lt", "150.01", True, True),
    ("lifetime_value", "lte", "149.99", False, True),
    ("lifetime_value", "between", ["100", "150"], True, False),
    ("lifetime_value", "between", ["150.01", "200"], False, False),
    ("lifetime_value", "in", ["0", "150"], True, True),
    ("lifetime_value", "not_in", ["150.00"], False, True),
    ("lifetime_value", "exists", None, True, True),
    ("average_order_value", "eq", "50.00", True, False),
    ("average_order_value", "lt", "60", True, False),  # no orders: no average, not a small one
    ("average_order_value", "neq", "1", True, False),
    ("average_order_value", "not_exists", None, False, True),
    ("total_refunded", "gte", 10, True, False),
    ("predicted.clv", "gt", "400", True, False),
    ("predicted.clv", "not_exists", None, False, True),
    # counts
    ("orders_count", "eq", 3, True, False),
    ("orders_count", "gte", 4, False, False),
    ("orders_count", "lte", 0, False, True),
    ("orders_count", "between", [1, 3], True, False),
    ("orders_count", "in", [1, 2], False, False),
    ("cancelled_count", "gt", 0, True, False),
    ("rfm.recency", "gte", 4, True, False),
    ("rfm.monetary", "eq", 5, True, False),
    ("rfm.frequency", "lt", 3, False, False),
    ("rfm.frequency", "exists", None, True, False),
    ("predicted.churn_probability", "lt", "0.2", True, False),
    ("predicted.churn_probability", "between", ["0.1", "0.15"], True, False),
    # days since: last order 10 days and 1 hour ago counts as 10 whole days; first order 100
    ("days_since_last_order", "eq", 10, True, False),
    ("days_since_last_order", "gt", 10, False, False),
    ("days_since_last_order", "lt", 11, True, False),
    ("days_since_first_order", "gte", 100, True, False),
    ("days_since_first_order", "not_exists", None, False, True),
    # times
    ("last_order_at", "before", {"days_ago": 10}, True, False),
    ("last_order_at", "before", {"days_ago": 11}, False, False),
    ("last_order_at", "after", {"days_ago": 11}, True, False),
    ("last_order_at", "after", "2026-02-19T10:00:00Z", True, False),  # 11:00 that day
    ("last_order_at", "after", "2026-02-19T11:00:00Z", False, False),
    ("last_order_at", "before", "2026-02-19T11:00:01+00:00", True, False),
    ("last_order_at", "between", [{"days_ago": 11}, {"days_ago": 10}], True, False),
    ("last_order_at", "between", ["2026-02-19T11:00:00Z", "2026-02-19T11:00:00Z"], True, False),
    ("first_order_at", "between", ["2025-01-01T00:00:00Z", {"days_ago": 101}], False, False),
    ("last_order_at", "within_last", {"days": 11}, True, False),
    ("last_order_at", "within_last", {"days": 10}, False, False),
    ("last_order_at", "not_within_last", {"days": 10}, True, False),
    ("first_order_at", "not_within_last", {"days": 100}, False, False),  # exactly 100 days: still within
    ("first_order_at", "within_last", {"days": 100}, True, False),
    ("first_order_at", "exists", None, True, False),
    # sets (case does not matter; "Red Mug" was bought and cancelled: 0 units, not bought)
    ("products", "contains", "blue mug", True, False),
    ("products", "contains", "Red Mug", False, False),
    ("products", "contains_any", ["Red Mug", "BLUE MUG"], True, False),
    ("products", "contains_all", ["Red Mug", "Blue Mug"], False, False),
    ("categories", "contains_all", ["kitchen"], True, False),
    ("skus", "contains_any", ["MUG-R"], False, False),
    ("coupons", "contains", "WELCOME10", True, False),
    ("coupons", "not_exists", None, False, True),
    ("tags", "contains_all", ["vip", "Wholesale"], True, False),
    ("tags", "exists", None, True, False),
    ("store", "contains", "store_a", True, False),
    ("store", "contains", "store_b", False, False),
    # text
    ("country", "eq", "gb", True, False),
    ("country", "neq", "US", True, False),  # absent: false, even for neq
    ("country", "in", ["IE", "GB"], True, False),
    ("country", "not_in", ["IE", "GB"], False, False),
    ("country", "not_exists", None, False, True),
    ("email_domain", "eq", "example.com", True, False),
    ("utm_source", "eq", "newsletter", True, False),
    ("last_utm_source", "in", ["google", "bing"], True, False),
    ("last_utm_source", "eq", "newsletter", False, False),
    ("rfm.group", "eq", "Loyal", True, False),
    # consent: Ada subscribed by email and said nothing about SMS
    ("consent.email", "eq", "subscribed", True, False),
    ("consent.email", "neq", "subscribed", False, False),
    ("consent.email", "in", ["unsubscribed", "not_subscribed"], False, False),
    ("consent.email", "not_in", ["unsubscribed"], True, False),
    ("consent.sms", "exists", None, False, False),
    ("consent.sms", "not_exists", None, True, True),
]


@pytest.mark.parametrize(("field", "op", "value", "ada", "nobody"), CASES,
                         ids=[f"{field}-{op}-{n}" for n, (field, op, *_rest) in enumerate(CASES)])
def test_every_operator_on_every_kind_of_field(field: str, op: str, value: Any, ada: bool, nobody: bool) -> None:
    assert check(cond(field, op, value)) is ada
    assert check(cond(field, op, value), NOBODY) is nobody
    assert check({"not": cond(field, op, value)}) is not ada  # "not" is the complement, absent values included


def test_the_cases_cover_every_field_and_operator() -> None:
    from crm.segments.fields import FIELDS, Op

    assert {field for field, *_ in CASES} == set(FIELDS)
    assert {op for _, op, *_ in CASES} == {op.value for op in Op}


def test_email_domain_of_an_address_without_a_domain_is_absent() -> None:
    odd = Subject(profile=ada_profile().model_copy(update={"email": "ada@"}))
    assert not check(cond("email_domain", "neq", "example.com"), odd)
    assert check(cond("email_domain", "not_exists"), odd)


# --- events ---------------------------------------------------------------------------------------

VIEWED_3_IN_30 = {"event": "product_viewed", "op": "at_least", "count": 3, "within_days": 30}
CHECKOUT_NO_ORDER_SINCE = {"all": [
    {"event": "checkout_started", "op": "at_least", "count": 1, "within_days": 7},
    {"event": "order_placed", "op": "none", "since": {"event": "checkout_started", "last": True}},
]}


def views(*days_ago: float) -> Subject:
    return Subject(profile=ada_profile(), events=tuple(("product_viewed", NOW - days * DAY) for days in days_ago))


def test_viewed_a_product_at_least_3_times_in_the_last_30_days() -> None:
    assert check(VIEWED_3_IN_30)  # 1, 5 and 29 days ago; 31 days ago is outside
    assert not check(VIEWED_3_IN_30, views(1, 5, 31, 40))
    assert check(VIEWED_3_IN_30, views(0, 0, 30))  # the window includes its first instant
    assert not check(VIEWED_3_IN_30, views(1, 5, 30.001))
    assert not check(VIEWED_3_IN_30, views(1, 5, -0.5))  # a view after now has not happened yet
    assert not check(VIEWED_3_IN_30, NOBODY)


def test_started_checkout_in_the_last_7_days_and_placed_no_order_since() -> None:
    assert check(CHECKOUT_NO_ORDER_SINCE)  # checkout 3 days ago, last order 10 days ago

    def with_orders(*orders: datetime, checkout: datetime = NOW - 3 * DAY) -> Subject:
        return Subject(profile=ada_profile(), events=(("checkout_started", checkout),), orders=orders)

    assert not check(CHECKOUT_NO_ORDER_SINCE, with_orders(NOW - 10 * DAY, NOW - 1 * DAY))  # ordered since
    assert check(CHECKOUT_NO_ORDER_SINCE, with_orders(NOW - 3 * DAY))  # the same instant is not "since"
    assert check(CHECKOUT_NO_ORDER_SINCE, with_orders(NOW + DAY))  # an order after now has not happened yet
    assert not check(CHECKOUT_NO_ORDER_SINCE, with_orders(checkout=NOW - 8 * DAY))  # checkout too long ago
    assert not check(CHECKOUT_NO_ORDER_SINCE, NOBODY)
    # Without a checkout there is nothing to be "since": the condition alone is false, its "not" true.
    no_order_since = CHECKOUT_NO_ORDER_SINCE["all"][1]
    assert not check(no_order_since, NOBODY) and check({"not": no_order_since}, NOBODY)


def test_since_counts_from_the_last_occurrence_of_the_anchor() -> None:
    subject = Subject(profile=ada_profile(), events=(
        ("checkout_started", NOW - 20 * DAY), ("page_viewed", NOW - 15 * DAY), ("page_viewed", NOW - 12 * DAY),
        ("checkout_started", NOW - 10 * DAY), ("page_viewed", NOW - 5 * DAY)))
    since = {"event": "checkout_started"}
    assert check({"event": "page_viewed", "op": "exactly", "count": 1, "since": since}, subject)
    assert check({"event": "page_viewed", "op": "exactly", "count": 3}, subject)
    assert check({"event": "page_viewed", "op": "exactly", "count": 0, "within_days": 4, "since": since}, subject)
    # evaluated 11 days ago, the last checkout was the one 20 days back
    assert check({"event": "page_viewed", "op": "exactly", "count": 2, "since": since}, subject, NOW - 11 * DAY)


@pytest.mark.parametrize(("op", "count", "expected"), [
    ("at_least", 2, True), ("at_least", 3, False), ("at_most", 2, True), ("at_most", 1, False),
    ("exactly", 2, True), ("exactly", 3, False), ("none", None, False),
])
def test_event_count_operators(op: str, count: int | None, expected: bool) -> None:
    node = {"event": "product_viewed", "op": op, "within_days": 10} | ({} if count is None else {"count": count})
    assert check(node) is expected  # 2 views in the last 10 days
    assert check(node, NOBODY) is (op in ("at_most", "none"))  # no views at all


def test_orders_are_counted_from_their_placed_times() -> None:
    assert check({"event": "order_placed", "op": "exactly", "count": 1, "within_days": 30})
    assert check({"event": "order_placed", "op": "exactly", "count": 3})


def test_membership_of_other_segments() -> None:
    assert check({"segment": "seg_vip", "op": "member"})
    assert not check({"segment": "seg_vip", "op": "not_member"})
    assert not check({"segment": "seg_other", "op": "member"})
    assert check({"segment": "seg_other", "op": "not_member"})


def test_nesting() -> None:
    definition = {"all": [
        cond("orders_count", "gte", 2),
        {"any": [cond("country", "eq", "US"), {"not": cond("tags", "contains", "wholesale")},
                 {"all": [cond("consent.email", "eq", "subscribed"), {"segment": "seg_vip", "op": "member"}]}]},
    ]}
    assert check(definition)
    assert not check(definition, NOBODY)
    not_subscribed = Subject(profile=ADA.profile.model_copy(update={"consents": {}}), segments=ADA.segments)
    assert not check(definition, not_subscribed)


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        Subject(profile=ada_profile(), orders=(datetime(2026, 1, 1),))  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="time zone"):
        matches(All(all=(parse_segment({"name": "s", "definition": cond("orders_count", "gt", 0)}).definition,)),
                ADA, datetime(2026, 1, 1))  # noqa: DTZ001


# --- needs ------------------------------------------------------------------------------------------


def needs_of(node: dict[str, Any]) -> Needs:
    return needs(parse_segment({"name": "s", "definition": node}).definition)


def test_needs_of_plain_profile_fields() -> None:
    assert needs_of({"all": [cond("lifetime_value", "gt", "100"), cond("last_order_at", "after",
                                                                       "2026-01-01T00:00:00Z")]}) == Needs()


@pytest.mark.parametrize("node", [
    cond("days_since_last_order", "gt", 30),
    cond("days_since_first_order", "exists"),
    cond("last_order_at", "before", {"days_ago": 30}),
    cond("first_order_at", "between", ["2025-01-01T00:00:00Z", {"days_ago": 1}]),
    cond("last_order_at", "within_last", {"days": 30}),
    {"not": cond("last_order_at", "not_within_last", {"days": 30})},
])
def test_needs_time_relative(node: dict[str, Any]) -> None:
    assert needs_of(node) == Needs(time_relative=True)


def test_needs_population() -> None:
    assert needs_of({"any": [cond("rfm.group", "eq", "loyal"), cond("country", "eq", "GB")]}) == Needs(population=True)
    assert needs_of(cond("predicted.churn_probability", "gt", "0.5")) == Needs(population=True)


def test_needs_events_with_the_widest_window() -> None:
    assert needs_of(VIEWED_3_IN_30) == Needs(time_relative=True, events=EventNeeds(frozenset({"product_viewed"}), 30))
    assert needs_of(CHECKOUT_NO_ORDER_SINCE) == Needs(time_relative=True, events=EventNeeds(
        frozenset({"checkout_started", "order_placed"}), None, frozenset({"checkout_started"})))
    both = {"any": [VIEWED_3_IN_30, {"event": "cart_viewed", "op": "at_most", "count": 1, "within_days": 90}]}
    assert needs_of(both).events == EventNeeds(frozenset({"product_viewed", "cart_viewed"}), 90)
    unwindowed = {"event": "identify", "op": "exactly", "count": 1}
    assert needs_of(unwindowed) == Needs(events=EventNeeds(frozenset({"identify"}), None))


def test_needs_segments() -> None:
    node = {"all": [{"segment": "a", "op": "member"}, {"not": {"segment": "b", "op": "not_member"}}]}
    assert needs_of(node) == Needs(segments=frozenset({"a", "b"}))


# --- laws -------------------------------------------------------------------------------------------

PROPERTY = settings(max_examples=150, deadline=None)


@PROPERTY
@given(definition=definitions, subject=subjects)
def test_not_is_the_complement(definition: Definition, subject: Subject) -> None:
    assert matches(Not(not_=definition), subject, NOW) is not matches(definition, subject, NOW)


@PROPERTY
@given(parts=st.lists(definitions, min_size=1, max_size=4), subject=subjects)
def test_all_and_any_are_pythons_all_and_any_of_the_parts(parts: list[Definition], subject: Subject) -> None:
    each = [matches(part, subject, NOW) for part in parts]
    assert matches(All(all=tuple(parts)), subject, NOW) is all(each)
    assert matches(Any_(any=tuple(parts)), subject, NOW) is any(each)


def _within_limits(definition: Definition) -> bool:
    try:
        check_limits(definition)
    except ValueError:
        return False
    return True


@PROPERTY
@given(definition=definitions, name=st.text(st.characters(categories=("L", "N", "P", "Zs")), min_size=1,
                                             max_size=40).filter(str.strip),
       description=st.none() | st.text(max_size=40))
def test_a_document_survives_a_json_round_trip(definition: Definition, name: str, description: str | None) -> None:
    assume(_within_limits(definition))
    document = SegmentDocument(name=name, definition=definition, description=description)
    wire = document.model_dump(mode="json")
    assert parse_segment(json.dumps(wire).encode()) == document
    assert parse_segment(wire) == document


def _absolute_times(definition: Definition) -> bool:
    values = [node.value for node in nodes(definition) if isinstance(node, Condition)]
    flat = [part for value in values for part in (value if isinstance(value, tuple) else (value,))]
    return any(isinstance(part, datetime) for part in flat)


def _shifted(subject: Subject, delta: timedelta) -> Subject:
    profile = subject.profile
    return Subject(
        profile=profile.model_copy(update={
            "first_order_at": profile.first_order_at and profile.first_order_at + delta,
            "last_order_at": profile.last_order_at and profile.last_order_at + delta}),
        events=tuple((kind, at + delta) for kind, at in subject.events),
        orders=tuple(at + delta for at in subject.orders),
        rfm=subject.rfm, predicted=subject.predicted, segments=subject.segments)


@PROPERTY
@given(definition=definitions, subject=subjects, seed=st.integers(0, 2**32),
       shift=st.integers(-10**6, 10**6).map(lambda minutes: timedelta(minutes=minutes)))
def test_evaluation_depends_only_on_its_inputs_and_the_injected_clock(
        definition: Definition, subject: Subject, seed: int, shift: timedelta) -> None:
    answer = matches(definition, subject, NOW)
    assert matches(definition, subject, NOW) is answer
    assert matches(definition, subject, NOW.astimezone(UTC)) is answer
    events, orders = list(subject.events), list(subject.orders)
    random.Random(seed).shuffle(events)
    random.Random(seed).shuffle(orders)
    reordered = Subject(profile=subject.profile, events=tuple(events), orders=tuple(orders), rfm=subject.rfm,
                        predicted=subject.predicted, segments=subject.segments)
    assert matches(definition, reordered, NOW) is answer
    if not _absolute_times(definition):  # relative windows move with the clock, and nothing else
        assert matches(definition, _shifted(subject, shift), NOW + shift) is answer
