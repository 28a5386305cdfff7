"""The segment language: what parses, to what, and the message every kind of bad document gets."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from crm.segments.definition import (
    MAX_CONDITIONS,
    MAX_DEPTH,
    All,
    Any_,
    Condition,
    EventCondition,
    EventOp,
    MemberOf,
    MemberOp,
    Not,
    SegmentDocument,
    SegmentInvalid,
    Since,
    parse_segment,
    referenced_segments,
    segment_cycle,
)
from crm.segments.fields import FIELDS, OPS, Kind, Op
from crm.segments.values import Days, DaysAgo


def doc(definition: Any, **fields: Any) -> dict[str, Any]:
    return {"name": "test segment", "definition": definition, **fields}


def cond(field: str, op: str, value: Any = None) -> dict[str, Any]:
    node: dict[str, Any] = {"field": field, "op": op}
    if value is not None:
        node["value"] = value
    return node


def error(raw: Any) -> str:
    body = raw if isinstance(raw, bytes) else json.dumps(raw).encode()
    with pytest.raises(SegmentInvalid) as caught:
        parse_segment(body)
    assert isinstance(caught.value, ValueError)
    return str(caught.value)


def definition_of(node: dict[str, Any]) -> Any:
    return parse_segment(json.dumps(doc(node)).encode()).definition


# --- what parses, to what ------------------------------------------------------------------------


def test_a_document_parses_to_typed_nodes() -> None:
    raw = doc({"all": [
        cond("lifetime_value", "gte", "100.00"),
        {"any": [cond("tags", "contains", "vip"), {"not": cond("consent.email", "eq", "unsubscribed")}]},
        {"event": "product_viewed", "op": "at_least", "count": 3, "within_days": 30},
        {"segment": "seg_1", "op": "not_member"},
    ]}, description="big spenders")
    parsed = parse_segment(json.dumps(raw).encode())
    assert parsed == SegmentDocument(name="test segment", description="big spenders", definition=All(all=(
        Condition(field="lifetime_value", op=Op.GTE, value=Decimal("100.00")),
        Any_(any=(Condition(field="tags", op=Op.CONTAINS, value="vip"),
                  Not(not_=Condition(field="consent.email", op=Op.EQ, value="unsubscribed")))),
        EventCondition(event="product_viewed", op=EventOp.AT_LEAST, count=3, within_days=30),
        MemberOf(segment="seg_1", op=MemberOp.NOT_MEMBER),
    )))
    assert parse_segment(raw) == parsed  # a decoded mapping reads the same as the bytes


def test_json_numbers_with_a_fraction_are_decimal_never_float() -> None:
    parsed = parse_segment(b'{"name": "n", "definition": {"field": "lifetime_value", "op": "gt", "value": 0.1}}')
    assert isinstance(parsed.definition, Condition)
    assert parsed.definition.value == Decimal("0.1") and isinstance(parsed.definition.value, Decimal)


@pytest.mark.parametrize(("field", "raw", "value"), [
    ("lifetime_value", "49.90", Decimal("49.90")),
    ("lifetime_value", " 49.90 ", Decimal("49.90")),
    ("lifetime_value", 50, Decimal(50)),
    ("average_order_value", "0", Decimal(0)),
    ("total_refunded", "-1.5", Decimal("-1.5")),
    ("predicted.clv", "1000", Decimal(1000)),
    ("predicted.churn_probability", "0.25", Decimal("0.25")),
    ("predicted.churn_probability", 1, Decimal(1)),
    ("orders_count", 3, 3),
    ("cancelled_count", 0, 0),
    ("days_since_last_order", 90, 90),
    ("days_since_first_order", 365, 365),
    ("rfm.recency", 5, 5),
    ("rfm.frequency", 1, 1),
    ("rfm.monetary", 4, 4),
    ("country", "GB", "GB"),
    ("utm_source", "newsletter", "newsletter"),
    ("last_utm_source", "google", "google"),
    ("email_domain", "example.com", "example.com"),
    ("rfm.group", "champions", "champions"),
    ("consent.email", "subscribed", "subscribed"),
    ("consent.sms", "not_subscribed", "not_subscribed"),
])
def test_scalar_values_are_typed_by_their_field(field: str, raw: Any, value: Any) -> None:
    op = "eq"
    parsed = definition_of(cond(field, op, raw))
    assert parsed.value == value and type(parsed.value) is type(value)


def test_a_json_whole_number_written_with_a_fraction_is_still_whole() -> None:
    parsed = parse_segment(b'{"name": "n", "definition": {"field": "orders_count", "op": "gt", "value": 3.0}}')
    assert isinstance(parsed.definition, Condition)
    assert parsed.definition.value == 3 and type(parsed.definition.value) is int


@pytest.mark.parametrize(("raw", "value"), [
    ("2026-01-31T00:00:00Z", datetime(2026, 1, 31, tzinfo=UTC)),
    ("2026-01-31T02:00:00+02:00", datetime(2026, 1, 31, tzinfo=UTC)),
    ({"days_ago": 30}, DaysAgo(days_ago=30)),
    ({"days_ago": 0}, DaysAgo(days_ago=0)),
])
def test_times_are_aware_utc_or_relative(raw: Any, value: Any) -> None:
    for op in ("before", "after"):
        parsed = definition_of(cond("last_order_at", op, raw))
        assert parsed.value == value
        if isinstance(value, datetime):
            assert parsed.value.tzinfo is UTC


def test_a_time_given_in_python_is_converted_to_utc() -> None:
    paris = timezone(timedelta(hours=1))
    node = Condition(field="first_order_at", op=Op.AFTER, value=datetime(2026, 1, 1, 1, tzinfo=paris))
    assert node.value == datetime(2026, 1, 1, tzinfo=UTC) and node.value.tzinfo is UTC


def test_list_window_and_range_values() -> None:
    assert definition_of(cond("country", "in", ["GB", "IE"])).value == ("GB", "IE")
    assert definition_of(cond("orders_count", "not_in", [0, 1])).value == (0, 1)
    assert definition_of(cond("skus", "contains_any", ["A-1", "B-2"])).value == ("A-1", "B-2")
    assert definition_of(cond("categories", "contains_all", ["Shoes"])).value == ("Shoes",)
    assert definition_of(cond("lifetime_value", "between", ["10", "20.50"])).value == (Decimal(10), Decimal("20.50"))
    assert definition_of(cond("orders_count", "between", [2, 2])).value == (2, 2)
    assert definition_of(cond("first_order_at", "between", [{"days_ago": 60}, {"days_ago": 30}])).value == (
        DaysAgo(days_ago=60), DaysAgo(days_ago=30))
    assert definition_of(cond("first_order_at", "between", ["2026-01-01T00:00:00Z", {"days_ago": 1}])).value == (
        datetime(2026, 1, 1, tzinfo=UTC), DaysAgo(days_ago=1))
    assert definition_of(cond("last_order_at", "within_last", {"days": 30})).value == Days(days=30)
    assert definition_of(cond("last_order_at", "not_within_last", {"days": 1})).value == Days(days=1)
    assert definition_of(cond("coupons", "exists")).value is None
    assert definition_of(cond("country", "not_exists")).value is None


def test_every_field_and_operator_in_the_registry_has_a_kind_and_operators() -> None:
    assert {spec.kind for spec in FIELDS.values()} == set(Kind)
    assert {op for ops in OPS.values() for op in ops} == set(Op)


def test_event_conditions() -> None:
    assert definition_of({"event": "order_placed", "op": "none", "since": {"event": "checkout_started"}}) == \
        EventCondition(event="order_placed", op=EventOp.NONE, since=Since(event="checkout_started"))
    assert definition_of({"event": "cart_viewed", "op": "at_most", "count": 0}).count == 0
    assert definition_of({"event": "identify", "op": "exactly", "count": 2, "within_days": 1}).within_days == 1
    assert definition_of({"event": "page_viewed", "op": "at_least", "count": 1,
                          "since": {"event": "order_placed", "last": True}}).since == Since(event="order_placed")


def test_window_and_since_counts_stay_within_what_profiles_keep() -> None:
    # Profiles keep the times of the latest 50 occurrences: at_least up to 50, exactly / at_most up to 49.
    assert definition_of({"event": "page_viewed", "op": "at_least", "count": 50, "within_days": 7}).count == 50
    assert definition_of({"event": "page_viewed", "op": "exactly", "count": 49,
                          "since": {"event": "identify"}}).count == 49
    assert definition_of({"event": "page_viewed", "op": "at_most", "count": 49, "within_days": 7}).count == 49
    # The whole history is counted by the profile's counters: no bound.
    assert definition_of({"event": "page_viewed", "op": "at_least", "count": 5000}).count == 5000
    assert definition_of({"event": "order_placed", "op": "exactly", "count": 120}).count == 120


# --- errors: every kind names its path and problem -----------------------------------------------


@pytest.mark.parametrize(("raw", "message"), [
    (doc({"all": [cond("lifetime_value", "gt", "1"), cond("orders_count", "gte", "x")]}),
     "definition.all.1.value: orders_count takes a whole number"),
    (doc(cond("orders_count", "gt", 1.5)), "definition.value: orders_count takes a whole number"),
    (doc(cond("orders_count", "gt", True)), "definition.value: orders_count takes a whole number"),
    (doc(cond("days_since_last_order", "lt", "30")), "definition.value: days_since_last_order takes a whole number"),
    (doc(cond("lifetime_value", "gt", "lots")),
     'definition.value: lifetime_value takes an amount: a decimal string such as "49.90" or a whole number'),
    (doc(cond("lifetime_value", "gt", "NaN")),
     'definition.value: lifetime_value takes an amount: a decimal string such as "49.90" or a whole number'),
    (doc(cond("predicted.churn_probability", "gt", "1.5")),
     "definition.value: predicted.churn_probability takes a probability from 0 to 1"),
    (doc(cond("nope", "eq", 1)), "definition.field: unknown field 'nope'; the fields are lifetime_value, "),
    (doc(cond("orders_count", "bigger", 1)), "definition.op: unknown operator 'bigger'; the operators are eq, "),
    (doc(cond("tags", "eq", "vip")),
     "definition.op: tags does not take eq; it takes contains, contains_any, contains_all, exists, not_exists"),
    (doc(cond("last_order_at", "gt", "2026-01-01T00:00:00Z")), "definition.op: last_order_at does not take gt; "),
    (doc(cond("orders_count", "gt")), "definition.value: orders_count gt needs a value"),
    (doc(cond("orders_count", "exists", 1)), "definition.value: exists takes no value"),
    (doc(cond("last_order_at", "after", "2026-01-01T00:00:00")),
     'definition.value: last_order_at takes a time with its zone, such as "2026-01-31T00:00:00Z", or '
     '{"days_ago": N} with N a whole number of 0 or more'),
    (doc(cond("last_order_at", "after", "yesterday")), "definition.value: last_order_at takes a time with its zone"),
    (doc(cond("last_order_at", "after", {"days_ago": -1})), "definition.value: last_order_at takes a time with"),
    (doc(cond("last_order_at", "after", {"days": 1})), "definition.value: last_order_at takes a time with its zone"),
    (doc(cond("last_order_at", "within_last", {"days": 0})),
     'definition.value: within_last takes {"days": N} with N a whole number of 1 or more'),
    (doc(cond("last_order_at", "within_last", 30)), 'definition.value: within_last takes {"days": N}'),
    (doc(cond("lifetime_value", "between", ["10"])), "definition.value: between takes [low, high]"),
    (doc(cond("country", "in", [])), "definition.value: in takes a list of 1 to 500 values"),
    (doc(cond("country", "in", "GB")), "definition.value: in takes a list of 1 to 500 values"),
    (doc(cond("country", "in", ["GB", 1])),
     "definition.value: country takes a non-empty string of at most 200 characters"),
    (doc(cond("tags", "contains", " ")), "definition.value: tags takes a non-empty string of at most 200 characters"),
    (doc(cond("consent.sms", "eq", "yes")),
     "definition.value: consent.sms takes one of subscribed, unsubscribed, not_subscribed"),
    (doc(cond("country", "eq", "GB") | {"extra": 1}), "definition.extra: Extra inputs are not permitted"),
    (doc({"event": "teleported", "op": "at_least", "count": 1}),
     "definition.event: unknown event 'teleported'; the events are page_viewed, "),
    (doc({"event": "product_viewed", "op": "more", "count": 1}), "definition.op: Input should be 'at_least', "),
    (doc({"event": "product_viewed", "op": "at_least"}),
     "definition.count: at_least takes a count: a whole number of 1 or more"),
    (doc({"event": "product_viewed", "op": "at_least", "count": 0}),
     "definition.count: at_least takes a count: a whole number of 1 or more"),
    (doc({"event": "product_viewed", "op": "at_most", "count": -1}),
     "definition.count: at_most takes a count: a whole number of 0 or more"),
    (doc({"event": "product_viewed", "op": "none", "count": 1}), "definition.count: none takes no count"),
    (doc({"event": "product_viewed", "op": "at_least", "count": 1, "within_days": 0}),
     "definition.within_days: Input should be greater than or equal to 1"),
    (doc({"event": "product_viewed", "op": "at_least", "count": 1, "within_days": "7"}),
     "definition.within_days: Input should be a valid integer"),
    (doc({"event": "order_placed", "op": "none", "since": {"event": "order_placed"}}),
     "definition.since: since names the event being counted: it must be another event"),
    (doc({"event": "page_viewed", "op": "at_least", "count": 51, "within_days": 30}),
     "definition.count: at_least takes a count of at most 50 with within_days or since: a profile keeps the times "
     "of each event's latest 50 occurrences"),
    (doc({"not": {"event": "page_viewed", "op": "at_most", "count": 50, "since": {"event": "order_placed"}}}),
     "definition.not.count: at_most takes a count of at most 49 with within_days or since"),
    (doc({"any": [{"event": "order_placed", "op": "exactly", "count": 50, "within_days": 365}]}),
     "definition.any.0.count: exactly takes a count of at most 49 with within_days or since"),
    (doc({"event": "order_placed", "op": "none", "since": {"event": "nope"}}),
     "definition.since.event: unknown event 'nope'"),
    (doc({"event": "order_placed", "op": "none", "since": {"event": "checkout_started", "last": False}}),
     "definition.since.last: Input should be True"),
    (doc({"segment": "", "op": "member"}), "definition.segment: String should have at least 1 character"),
    (doc({"segment": "s1", "op": "in"}), "definition.op: Input should be 'member' or 'not_member'"),
    (doc({"segment": "s1"}), "definition.op: Field required"),
    (doc({"all": []}), "definition.all: Tuple should have at least 1 item after validation, not 0"),
    (doc({"any": [cond("country", "eq", "GB"), {"nothing": 1}]}),
     "definition.any.1: a definition is an object with one of the keys all, any, not, field, event or segment"),
    (doc({"not": {"not": cond("orders_count", "eq", "one")}}),
     "definition.not.not.value: orders_count takes a whole number"),
    (doc(5), "definition: a definition is an object with one of the keys all, any, not, field, event or segment"),
    ({"definition": cond("country", "eq", "GB")}, "name: Field required"),
    (doc(cond("country", "eq", "GB"), name="  "), "name: name must not be blank"),
    (doc(cond("country", "eq", "GB"), name="n" * 201), "name: String should have at most 200 characters"),
    ({"name": "n"}, "definition: Field required"),
    (doc(cond("country", "eq", "GB"), id="x"), "id: Extra inputs are not permitted"),
    (b"{not json", "body is not JSON: "),
    (b'{"name": "n", "definition": {"field": "lifetime_value", "op": "gt", "value": NaN}}',
     "body is not JSON: NaN is not a number"),
    (b"[1, 2]", "body must be a JSON object"),
    (b"\xff", "body is not JSON: "),
])
def test_every_error_names_its_path_and_problem(raw: Any, message: str) -> None:
    assert error(raw).startswith(message)


def test_a_python_float_is_refused_as_money() -> None:
    with pytest.raises(SegmentInvalid, match=r"^definition.value: lifetime_value takes an amount"):
        parse_segment(doc(cond("lifetime_value", "gt", 0.1)))


def test_depth_is_limited() -> None:
    node: dict[str, Any] = cond("orders_count", "gt", 0)
    for _ in range(MAX_DEPTH - 1):
        node = {"not": node}
    parse_segment(doc(node))  # exactly the limit
    assert error(doc({"all": [cond("country", "eq", "GB"), {"not": node}]})) == \
        "definition.all.1" + ".not" * (MAX_DEPTH - 1) + f": nested deeper than {MAX_DEPTH} levels"


def test_a_hostile_nesting_is_refused_without_descending_into_it() -> None:
    deep = b'{"name": "n", "definition": ' + b'{"not": ' * 500 + b'{"segment": "s", "op": "member"}' + b"}" * 501
    assert error(deep) == "definition" + ".not" * MAX_DEPTH + f": nested deeper than {MAX_DEPTH} levels"
    node: dict[str, Any] = {"segment": "s", "op": "member"}
    for _ in range(20_000):
        node = {"not": node}
    with pytest.raises(SegmentInvalid, match=f"^definition(.not){{{MAX_DEPTH}}}: nested deeper"):
        parse_segment(doc(node))
    very_deep = b'{"name": "n", "definition": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    assert error(very_deep).startswith("body ")


def test_size_is_limited() -> None:
    parse_segment(doc({"all": [cond("orders_count", "gt", n) for n in range(MAX_CONDITIONS)]}))
    too_many = doc({"all": [cond("orders_count", "gt", n) for n in range(MAX_CONDITIONS // 2)]
                    + [{"any": [cond("orders_count", "lt", n) for n in range(MAX_CONDITIONS // 2 + 1)]}]})
    assert error(too_many) == f"definition: more than {MAX_CONDITIONS} conditions"


# --- segment references ---------------------------------------------------------------------------


def test_referenced_segments_are_found_at_any_depth() -> None:
    definition = definition_of({"all": [
        {"segment": "a", "op": "member"},
        {"any": [{"not": {"segment": "b", "op": "not_member"}}, cond("country", "eq", "GB")]},
        {"segment": "a", "op": "not_member"},
    ]})
    assert referenced_segments(definition) == {"a", "b"}
    assert referenced_segments(definition_of(cond("country", "eq", "GB"))) == frozenset()


def test_cycles_among_segments_are_detected() -> None:
    assert segment_cycle({"a": ["b"], "b": ["c"], "c": []}) is None
    assert segment_cycle({"a": ["b", "x"], "b": ["x"]}) is None  # x: defined nowhere, a leaf
    assert segment_cycle({"a": ["a"]}) == ("a", "a")
    assert segment_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ("a", "b", "c", "a")
    assert segment_cycle({"z": ["b"], "b": ["c"], "c": ["b"]}) == ("b", "c", "b")
    diamond = {"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}
    assert segment_cycle(diamond) is None


def test_a_self_reference_is_visible_from_the_document() -> None:
    own_id = "seg_self"
    definition = definition_of({"any": [cond("country", "eq", "GB"), {"segment": own_id, "op": "member"}]})
    assert segment_cycle({own_id: referenced_segments(definition)}) == (own_id, own_id)


@pytest.mark.parametrize(("field", "bounds", "kept"), [
    ("lifetime_value", ["20", "10"], (Decimal("10"), Decimal("20"))),
    ("first_order_at", [{"days_ago": 1}, {"days_ago": 30}], (DaysAgo(days_ago=30), DaysAgo(days_ago=1))),
])
def test_between_takes_its_bounds_in_either_order_and_keeps_the_low_one_first(
        field: str, bounds: list[object], kept: tuple[object, object]) -> None:
    # A JSON Schema cannot compare two items, so the published schema could not say "low first"; neither order
    # is ambiguous.
    condition = parse_segment(doc(cond(field, "between", bounds))).definition
    assert isinstance(condition, Condition)
    assert condition.value == kept
