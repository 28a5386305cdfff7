from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from crm.adapters import keys
from crm.adapters.items import to_item
from crm.models.events import (
    CustomerCreated,
    OrderPlaced,
    OrderRefunded,
    ProfilesMerged,
    SegmentEntered,
    SegmentExited,
)
from crm.models.profile import OrderRecord, new_profile
from crm.outbox import events_for, publish_stream_batch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.builders import NOW, order
from tests.fakes import FakeEventPublisher

PROFILE_ID = "p" * 32


def _record(event_name: str, new_image: Mapping[str, Any] | None, sequence: str,
            old_image: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A DynamoDB stream record as Lambda delivers it (NEW_AND_OLD_IMAGES)."""
    image_source = new_image or old_image or {}
    data: dict[str, Any] = {
        "ApproximateCreationDateTime": 1767225600.0,
        "Keys": {"pk": image_source.get("pk", {"S": "x"}), "sk": image_source.get("sk", {"S": "x"})},
        "SequenceNumber": sequence,
        "SizeBytes": 512,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if new_image is not None:
        data["NewImage"] = dict(new_image)
    if old_image is not None:
        data["OldImage"] = dict(old_image)
    return {"eventID": f"e{sequence}", "eventName": event_name, "eventVersion": "1.1", "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1", "dynamodb": data,
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026-01-01T00:00:00.000"}


def _order_image(order_id: str = "820982911946154508", total: str = "404.95", refunded: str = "4.95") -> dict[str, Any]:
    placed = order(order_id, total=Decimal(total), refunded=Decimal(refunded))
    record = OrderRecord(workspace_id="ws_a", store_id="st_a", order_id=order_id, profile_id=PROFILE_ID, order=placed)
    return to_item(keys.order("ws_a", "st_a", order_id), "order", record, version=placed.version)


def _profile_image() -> dict[str, Any]:
    profile = new_profile("ws_a", PROFILE_ID, NOW).model_copy(update={"orders_count": 1,
                                                                     "total_spent": Decimal("400.00")})
    return to_item(keys.profile("ws_a", PROFILE_ID), "profile", profile)


def _identity_image() -> dict[str, Any]:
    return {**{k: {"S": v} for k, v in keys.identity("ws_a", "email#a@example.com").items()},
            "entity": {"S": "identity"}, "profile_id": {"S": PROFILE_ID}}


def test_inserted_order_is_order_placed() -> None:
    [event] = events_for(_record("INSERT", _order_image(), "100"))
    assert isinstance(event, OrderPlaced)
    assert event.type == "OrderPlaced"
    assert event.event_id == "OrderPlaced:ws_a:st_a:820982911946154508"
    assert (event.workspace_id, event.profile_id, event.store_id) == ("ws_a", PROFILE_ID, "st_a")
    assert event.order_id == "820982911946154508"
    assert (event.currency, event.total_price, event.net_total) == ("USD", "404.95", "400.00")
    assert event.occurred_at == NOW - timedelta(days=1)


def test_order_placed_carries_no_contact_data() -> None:
    [event] = events_for(_record("INSERT", _order_image(), "100"))
    assert "shopper@example.com" not in event.model_dump_json()


def test_inserted_profile_is_customer_created() -> None:
    [event] = events_for(_record("INSERT", _profile_image(), "101"))
    assert isinstance(event, CustomerCreated)
    assert event.event_id == f"CustomerCreated:ws_a:{PROFILE_ID}"
    assert (event.workspace_id, event.profile_id, event.occurred_at) == ("ws_a", PROFILE_ID, NOW)


def _browser_image(**known: Any) -> dict[str, Any]:
    profile = new_profile("ws_a", PROFILE_ID, NOW).model_copy(update={"identities": ("anon#st_a#b-1",), **known})
    return to_item(keys.profile("ws_a", PROFILE_ID), "profile", profile)


def test_a_browsers_profile_is_no_customer_until_it_names_its_shopper() -> None:
    assert events_for(_record("INSERT", _browser_image(), "101")) == []
    for named in ({"email": "shopper@example.com"}, {"identities": ("anon#st_a#b-1", "customer#st_a#9")},
                  {"orders_count": 1}):
        [*events] = events_for(_record("MODIFY", _browser_image(**named), "102", old_image=_browser_image()))
        assert [e.event_id for e in events if isinstance(e, CustomerCreated)] == [f"CustomerCreated:ws_a:{PROFILE_ID}"]
        assert not any(isinstance(e, CustomerCreated) for e in events_for(
            _record("MODIFY", _browser_image(**named), "103", old_image=_browser_image(**named))))


def test_event_ids_are_deterministic_for_a_redelivered_record() -> None:
    record = _record("INSERT", _order_image(), "100")
    assert events_for(record) == events_for(dict(record))


@pytest.mark.parametrize("image", [_order_image, _profile_image])
def test_modify_publishes_nothing(image: Any) -> None:
    assert events_for(_record("MODIFY", image(), "102", old_image=image())) == []


def test_an_order_filling_a_record_that_held_only_a_refund_is_placed() -> None:
    waiting = OrderRecord(workspace_id="ws_a", store_id="st_a", order_id="9", refunds={"r1": Decimal("1.00")})
    stub = to_item(keys.order("ws_a", "st_a", "9"), "order", waiting, version="")
    assert events_for(_record("INSERT", stub, "104")) == []
    [event] = events_for(_record("MODIFY", _order_image("9"), "105", old_image=stub))
    assert isinstance(event, OrderPlaced) and event.order_id == "9"


def test_a_merged_profile_is_announced_once() -> None:
    merged = new_profile("ws_a", "p-merged", NOW).model_copy(update={"merged_into": PROFILE_ID})
    before = to_item(keys.profile("ws_a", "p-merged"), "profile", new_profile("ws_a", "p-merged", NOW))
    after = to_item(keys.profile("ws_a", "p-merged"), "profile", merged)
    [event] = events_for(_record("MODIFY", after, "106", old_image=before))
    assert isinstance(event, ProfilesMerged)
    assert (event.profile_id, event.merged_profile_id) == (PROFILE_ID, "p-merged")
    assert events_for(_record("MODIFY", after, "107", old_image=after)) == []


def test_a_tombstone_new_to_the_table_announces_no_merge() -> None:
    """A link taking its identity's name (crm.ports.IdentityLink.named_tombstone) writes a tombstone where no profile
    was: nothing was merged, nobody is new."""
    taken = new_profile("ws_a", "p-named", NOW).model_copy(update={"merged_into": PROFILE_ID})
    assert events_for(_record("INSERT", to_item(keys.profile("ws_a", "p-named"), "profile", taken), "108")) == []


def test_remove_publishes_nothing() -> None:
    assert events_for(_record("REMOVE", None, "103", old_image=_profile_image())) == []


def test_other_entities_publish_nothing() -> None:
    assert events_for(_record("INSERT", _identity_image(), "104")) == []
    assert events_for(_record("INSERT", None, "105")) == []


def test_batch_is_published_in_stream_order() -> None:
    records = [
        _record("INSERT", _order_image("1"), "200"),
        _record("INSERT", _profile_image(), "201"),
        _record("MODIFY", _profile_image(), "202", old_image=_profile_image()),
        _record("INSERT", _order_image("2"), "203"),
    ]
    publisher = FakeEventPublisher()

    assert publish_stream_batch(records, publisher) == []

    assert [(e.type, getattr(e, "order_id", None)) for e in publisher.published] == [
        ("OrderPlaced", "1"), ("CustomerCreated", None), ("OrderPlaced", "2")]
    assert publisher.calls == 1


def test_failed_publish_returns_the_sequence_number_of_the_first_failed_record() -> None:
    records = [
        _record("INSERT", _order_image("1"), "300"),
        _record("MODIFY", _profile_image(), "301", old_image=_profile_image()),
        _record("INSERT", _order_image("2"), "302"),
        _record("INSERT", _profile_image(), "303"),
        _record("INSERT", _order_image("3"), "304"),
    ]
    refused = {"2", "3"}
    publisher = FakeEventPublisher(refuse=lambda e: getattr(e, "order_id", None) in refused)

    assert publish_stream_batch(records, publisher) == ["302"]


def test_only_a_later_failure_returns_that_later_record() -> None:
    records = [_record("INSERT", _order_image("1"), "400"), _record("INSERT", _profile_image(), "401")]
    publisher = FakeEventPublisher(refuse=lambda e: e.type == "CustomerCreated")
    assert publish_stream_batch(records, publisher) == ["401"]
    assert [e.type for e in publisher.published] == ["OrderPlaced"]


def test_batch_without_events_publishes_nothing_and_reports_nothing() -> None:
    records = [_record("MODIFY", _profile_image(), "500", old_image=_profile_image())]
    publisher = FakeEventPublisher(refuse=lambda e: True)
    assert publish_stream_batch(records, publisher) == []
    assert publisher.published == []



def _member_image(segment_id: str = "builtin:vip") -> dict[str, Any]:
    return {**{k: {"S": v} for k, v in keys.segment_member("ws_a", segment_id, PROFILE_ID).items()},
            "entity": {"S": "segment_member"}, "workspace_id": {"S": "ws_a"}, "segment_id": {"S": segment_id},
            "profile_id": {"S": PROFILE_ID}, "entered_at": {"S": NOW.isoformat()}}


def test_a_member_inserted_is_segment_entered_and_removed_is_segment_exited() -> None:
    [entered] = events_for(_record("INSERT", _member_image(), "301"))
    assert isinstance(entered, SegmentEntered)
    assert (entered.workspace_id, entered.profile_id, entered.segment_id, entered.occurred_at) == (
        "ws_a", PROFILE_ID, "builtin:vip", NOW)
    assert entered.event_id == f"SegmentEntered:ws_a:builtin:vip:{PROFILE_ID}:{NOW.isoformat()}"

    [exited] = events_for(_record("REMOVE", None, "302", old_image=_member_image()))
    assert isinstance(exited, SegmentExited)
    assert (exited.segment_id, exited.entered_at) == ("builtin:vip", NOW)
    assert exited.occurred_at.timestamp() == 1767225600.0  # when the stream saw the member go
    assert exited.event_id == f"SegmentExited:ws_a:builtin:vip:{PROFILE_ID}:{NOW.isoformat()}"
    # One stay, one pair of ids: a redelivered record publishes the same event again, for consumers to drop.
    assert events_for(_record("INSERT", _member_image(), "303")) == [entered]


def test_a_profiles_set_of_segments_publishes_nothing() -> None:
    held = {**{k: {"S": v} for k, v in keys.profile_segments("ws_a", PROFILE_ID).items()},
            "entity": {"S": "profile_segments"}, "segment_ids": {"L": [{"S": "builtin:vip"}]}}
    assert events_for(_record("INSERT", held, "304")) == []
    assert events_for(_record("REMOVE", None, "305", old_image=held)) == []


def test_an_order_placed_unpaid_says_so() -> None:
    placed = order("77", paid=False)
    record = OrderRecord(workspace_id="ws_a", store_id="st_a", order_id="77", profile_id=PROFILE_ID, order=placed)
    image = to_item(keys.order("ws_a", "st_a", "77"), "order", record, version=placed.version)
    [event] = events_for(_record("INSERT", image, "100"))
    assert isinstance(event, OrderPlaced) and event.paid is False
    [paid] = events_for(_record("INSERT", _order_image(), "101"))
    assert isinstance(paid, OrderPlaced) and paid.paid is True


# --- OrderRefunded (issue 11: refunds reduce attributed revenue) ---------------------------------------------

def _refunded_image(refunds: dict[str, str], dates: dict[str, Any] | None = None,
                    order_refunds: dict[str, str] | None = None) -> dict[str, Any]:
    placed = order("9001", total=Decimal("100.00")).model_copy(
        update={"refunds": {k: Decimal(v) for k, v in (order_refunds or {}).items()}})
    record = OrderRecord(workspace_id="ws_a", store_id="st_a", order_id="9001", profile_id=PROFILE_ID,
                         order=placed, refunds={k: Decimal(v) for k, v in refunds.items()},
                         refund_dates=dates or {})
    return to_item(keys.order("ws_a", "st_a", "9001"), "order", record, version=placed.version)


def test_a_new_refund_on_a_placed_order_is_order_refunded() -> None:
    refunded_at = NOW + timedelta(hours=3)
    [event] = events_for(_record("MODIFY", _refunded_image({"r1": "10.00", "r2": "5.50"}, {"r2": refunded_at}),
                                 "200", old_image=_refunded_image({"r1": "10.00"})))
    assert isinstance(event, OrderRefunded)
    assert event.event_id == "OrderRefunded:ws_a:st_a:9001:r2"
    assert (event.refund_id, event.amount, event.currency) == ("r2", "5.50", "USD")
    assert (event.store_id, event.order_id, event.profile_id) == ("st_a", "9001", PROFILE_ID)
    assert event.occurred_at == refunded_at


def test_a_refund_listed_on_the_order_itself_is_order_refunded_once() -> None:
    first = events_for(_record("MODIFY", _refunded_image({}, order_refunds={"r9": "20.00"}), "201",
                               old_image=_refunded_image({})))
    assert [(e.type, getattr(e, "refund_id", None)) for e in first] == [("OrderRefunded", "r9")]
    # the refund arrives on its own too (refunds/create): same id, nothing new
    again = events_for(_record("MODIFY", _refunded_image({"r9": "20.00"}, order_refunds={"r9": "20.00"}), "202",
                               old_image=_refunded_image({}, order_refunds={"r9": "20.00"})))
    assert again == []


def test_refunds_known_when_the_order_lands_are_in_its_net_total_not_refund_events() -> None:
    waiting = {k: v for k, v in _refunded_image({"r1": "10.00"}).items() if k != "order"}
    events = events_for(_record("MODIFY", _refunded_image({"r1": "10.00"}), "203", old_image=waiting))
    assert [e.type for e in events] == ["OrderPlaced"]
    assert isinstance(events[0], OrderPlaced) and events[0].net_total == "90.00"


def test_order_placed_names_its_checkout_and_cart() -> None:
    placed = order("9002").model_copy(update={"checkout_token": "chk_1", "cart_token": "cart_1"})
    record = OrderRecord(workspace_id="ws_a", store_id="st_a", order_id="9002", profile_id=PROFILE_ID, order=placed)
    [event] = events_for(_record("INSERT", to_item(keys.order("ws_a", "st_a", "9002"), "order", record,
                                                   version=placed.version), "204"))
    assert isinstance(event, OrderPlaced)
    assert (event.checkout_token, event.cart_token) == ("chk_1", "cart_1")


def test_a_running_refund_total_that_grows_publishes_the_increase() -> None:
    # BigCommerce reports one total refunded: it is one refund ("total") whose amount grows.
    [event] = events_for(_record("MODIFY", _refunded_image({"total": "25.00"}), "205",
                                 old_image=_refunded_image({"total": "10.00"})))
    assert isinstance(event, OrderRefunded)
    assert (event.refund_id, event.amount) == ("total@25.00", "15.00")
    assert event.event_id == "OrderRefunded:ws_a:st_a:9001:total@25.00"
    assert events_for(_record("MODIFY", _refunded_image({"total": "10.00"}), "206",
                              old_image=_refunded_image({"total": "25.00"}))) == []


@settings(max_examples=60, deadline=None)
@given(placed_with=st.dictionaries(st.sampled_from(["r1", "r2"]), st.integers(1, 500), max_size=2),
       steps=st.lists(st.tuples(st.sampled_from(["r1", "r2", "r3", "total"]), st.integers(0, 500)),
                      min_size=1, max_size=8))
def test_refund_events_add_up_to_the_refunds_after_the_order_was_placed(
        placed_with: dict[str, int], steps: list[tuple[str, int]]) -> None:
    # Refund amounts only grow (a platform's running total) or arrive under new ids; each stream record of the
    # order publishes what changed, and replaying a record publishes the same ids.
    held = {k: Decimal(v) for k, v in placed_with.items()}
    first = {k: Decimal(v) for k, v in placed_with.items()}
    published: dict[str, Decimal] = {}
    for sequence, (refund_id, amount) in enumerate(steps):
        before = dict(held)
        held[refund_id] = max(held.get(refund_id, Decimal(0)), Decimal(amount))
        record = _record("MODIFY", _refunded_image({k: str(v) for k, v in held.items()}), str(300 + sequence),
                         old_image=_refunded_image({k: str(v) for k, v in before.items()}))
        events = [e for e in events_for(record) if isinstance(e, OrderRefunded)]
        assert events_for(record) == events_for(record)
        for event in events:
            assert event.event_id not in published or published[event.event_id] == Decimal(event.amount)
            published[event.event_id] = Decimal(event.amount)
    assert sum(published.values(), Decimal(0)) == sum(held.values(), Decimal(0)) - sum(first.values(), Decimal(0))
