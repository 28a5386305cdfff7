"""The canonical event API's connector: X-CRM-* headers, Shopify's signing scheme, our own schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from crm.archive import archive_messages
from crm.connectors import connector_for
from crm.connectors.base import MissingHeader, PayloadNotUnderstood, SignatureMissing, sign_base64_hmac_sha256
from crm.connectors.custom import CUSTOM, MAX_BATCH, TOPIC
from crm.models.canonical import (
    ActivityEvent,
    ActivityType,
    CanonicalEvent,
    CustomerRecord,
    OrderRemoved,
    RefundRecord,
)
from crm.models.consent import Channel, Consent, ConsentState
from crm.models.orders import CanonicalOrder, LineItem, version_stamp
from crm.models.stores import Platform
from crm.webhooks import NOT_SIGNED_BY_A_STORE, NotAuthenticated, accept_webhook

from tests.builders import (
    CUSTOM_DOMAIN,
    CUSTOM_SECRET,
    NOW,
    compact,
    custom_headers,
    custom_order_json,
    custom_store,
    envelope,
)
from tests.fakes import FakeIngestQueue, FakeRawArchive, FakeStoreDirectory

T0 = "2026-02-28T10:00:00Z"


def _events(payload: dict[str, Any] | bytes) -> list[CanonicalEvent]:
    body = payload if isinstance(payload, bytes) else compact(payload)
    return CUSTOM.events(envelope(None, topic=TOPIC, platform=Platform.CUSTOM), body, FakeStoreDirectory())


def _one(payload: dict[str, Any]) -> CanonicalEvent:
    [event] = _events(payload)
    assert (event.workspace_id, event.store_id, event.platform) == ("ws_a", "st_a", Platform.CUSTOM)
    return event


def test_connector_for_names_custom() -> None:
    assert connector_for("custom") is CUSTOM
    assert CUSTOM.platform is Platform.CUSTOM


# --- headers and signatures ----------------------------------------------------------------------


@pytest.mark.parametrize("domain", [CUSTOM_DOMAIN, "https://Shop.Custom.Example/", "  shop.custom.example "])
def test_the_store_header_names_the_registered_domain(domain: str) -> None:
    assert CUSTOM.store_domain({"x-crm-store": domain}, b"") == CUSTOM_DOMAIN


@pytest.mark.parametrize("value", [None, "  ", "https://"])
def test_a_missing_store_header_is_400(value: str | None) -> None:
    headers = custom_headers(b"{}")
    del headers["X-CRM-Store"]
    if value is not None:
        headers["X-CRM-Store"] = value
    with pytest.raises(MissingHeader, match="X-CRM-Store") as raised:
        CUSTOM.store_domain(headers, b"{}")
    assert raised.value.status == 400


def test_a_missing_event_id_is_400() -> None:
    headers = custom_headers(b"{}")
    del headers["X-CRM-Event-Id"]
    with pytest.raises(MissingHeader, match="X-CRM-Event-Id") as raised:
        CUSTOM.delivery_meta(headers, b"{}")
    assert raised.value.status == 400


def test_a_missing_signature_is_401() -> None:
    headers = custom_headers(b"{}")
    del headers["X-CRM-Signature"]
    with pytest.raises(SignatureMissing, match="X-CRM-Signature") as raised:
        CUSTOM.signature(headers)
    assert raised.value.status == 401


def test_the_signature_is_base64_hmac_sha256_of_the_timestamp_and_the_raw_body_with_any_current_secret() -> None:
    body = compact(custom_order_json())
    headers = {name.lower(): value for name, value in custom_headers(body).items()}  # HTTP/2 lowercases
    signature = CUSTOM.signature(headers)
    stamp = str(int(NOW.timestamp()))
    assert headers["x-crm-timestamp"] == stamp
    assert signature == sign_base64_hmac_sha256(f"{stamp}.".encode() + body, CUSTOM_SECRET)
    assert CUSTOM.is_signed_by(headers, body, signature, ["old", CUSTOM_SECRET])
    assert not CUSTOM.is_signed_by(headers, body, signature, ["another-secret"])
    assert not CUSTOM.is_signed_by(headers, body + b" ", signature, [CUSTOM_SECRET])
    assert not CUSTOM.is_signed_by(headers, body, "not base64!", [CUSTOM_SECRET])
    assert not CUSTOM.is_ping(headers, body)
    assert not CUSTOM.is_ping({}, b"webhook_id=17")


def test_delivery_meta_is_the_event_id_and_the_send_time() -> None:
    meta = CUSTOM.delivery_meta(custom_headers(b"{}", event_id="ev-9", timestamp=NOW), b"{}")
    assert (meta.topic, meta.delivery_id, meta.triggered_at) == (TOPIC, "ev-9", NOW)
    unstamped = custom_headers(b"{}")
    del unstamped["X-CRM-Timestamp"]
    assert CUSTOM.delivery_meta(unstamped, b"{}").triggered_at is None


@pytest.mark.parametrize("offset", [timedelta(0), timedelta(minutes=5), timedelta(minutes=-5), timedelta(seconds=-299)])
def test_a_timestamp_within_five_minutes_is_fresh(offset: timedelta) -> None:
    assert CUSTOM.is_fresh(custom_headers(b"{}", timestamp=NOW + offset), NOW)


def test_a_missing_timestamp_is_a_missing_signature_401() -> None:
    """The timestamp is signed with the body: without it there is nothing to verify."""
    headers = custom_headers(b"{}")
    del headers["X-CRM-Timestamp"]
    with pytest.raises(SignatureMissing, match="X-CRM-Timestamp") as raised:
        CUSTOM.signature(headers)
    assert raised.value.status == 401
    assert not CUSTOM.is_fresh(headers, NOW)
    assert not CUSTOM.is_signed_by(headers, b"{}", custom_headers(b"{}")["X-CRM-Signature"], [CUSTOM_SECRET])


@pytest.mark.parametrize("value", [str(int((NOW - timedelta(minutes=5, seconds=1)).timestamp())),
                                   str(int((NOW + timedelta(minutes=6)).timestamp())),
                                   "yesterday", "-1", "1772366400.5", "9" * 40, "١٧٧٢٣٦٦٤٠٠"])
def test_a_stale_or_unreadable_timestamp_is_not_fresh(value: str) -> None:
    assert not CUSTOM.is_fresh({"X-CRM-Timestamp": value}, NOW)


# --- through accept_webhook ----------------------------------------------------------------------


@pytest.fixture
def stores() -> FakeStoreDirectory:
    directory = FakeStoreDirectory()
    directory.register(custom_store(), "crm_key_custom")
    return directory


def test_a_signed_delivery_is_archived_and_enqueued_for_the_custom_store(stores: FakeStoreDirectory) -> None:
    body = compact(custom_order_json())
    archive, queue = FakeRawArchive(), FakeIngestQueue()
    accepted = accept_webhook("custom", custom_headers(body, event_id="ev-7", timestamp=NOW), body, stores,
                              archive, queue, NOW)
    [queued] = queue.envelopes
    assert accepted.envelope == queued
    assert (queued.platform, queued.workspace_id, queued.store_id) == (Platform.CUSTOM, "ws_a", "st_custom")
    assert (queued.meta.topic, queued.meta.delivery_id) == (TOPIC, "ev-7")
    assert queued.body is not None and queued.body.encode() == body
    archive_messages(queue.messages, archive)
    [(_, archived)] = archive.deliveries()
    assert archived == body


def test_an_unreadable_signed_body_is_still_kept(stores: FakeStoreDirectory) -> None:
    body = b'{"type": "nonsense"'
    queue = FakeIngestQueue()
    accept_webhook("custom", custom_headers(body), body, stores, FakeRawArchive(), queue, NOW)
    assert len(queue.messages) == 1  # ingestion dead-letters it with the reason


@pytest.mark.parametrize(("change", "reason"), [
    ({"secret": "wrong"}, "signature does not match"),
    ({"domain": "other.example"}, NOT_SIGNED_BY_A_STORE),
    ({"timestamp": NOW - timedelta(minutes=10)}, "outside the accepted window"),
])
def test_wrong_signature_unknown_store_or_stale_timestamp_is_401_and_nothing_is_kept(
        stores: FakeStoreDirectory, change: dict[str, Any], reason: str) -> None:
    body = compact(custom_order_json())
    archive, queue = FakeRawArchive(), FakeIngestQueue()
    with pytest.raises(NotAuthenticated, match=reason) as raised:
        accept_webhook("custom", custom_headers(body, **change), body, stores, archive, queue, NOW)
    assert raised.value.status == 401
    assert archive.empty and queue.messages == []


def test_a_store_of_another_platform_with_the_same_domain_does_not_authenticate(stores: FakeStoreDirectory) -> None:
    body = compact(custom_order_json())
    with pytest.raises(NotAuthenticated):
        accept_webhook("custom", custom_headers(body, domain="jsmith.myshopify.com"), body, stores,
                       FakeRawArchive(), FakeIngestQueue(), NOW)


# --- orders --------------------------------------------------------------------------------------


def test_an_order_maps_to_the_canonical_order_with_contacts_normalised() -> None:
    order = _one(custom_order_json())
    assert isinstance(order, CanonicalOrder)
    assert (order.order_id, order.order_number, order.customer_id) == ("1001", "#1001", "c-17")
    assert order.email == "ada@example.com"
    assert order.phone == "+442079460018"  # national number read with the order's country
    assert (order.first_name, order.last_name, order.country) == ("Ada", "Lovelace", "GB")
    assert order.currency == "GBP"
    assert order.total_price == Decimal("42.50") and isinstance(order.total_price, Decimal)
    assert order.refunds == {"rf-1": Decimal("5.00")}
    assert order.net_total == Decimal("37.50")
    assert order.financial_status == "partially_refunded"
    assert order.created_at == datetime(2026, 2, 28, 10, 0, tzinfo=UTC)
    assert order.updated_at == datetime(2026, 2, 28, 10, 30, tzinfo=UTC)  # 11:30+01:00
    assert order.updated_at.tzinfo == UTC
    assert order.version == version_stamp(datetime(2026, 2, 28, 10, 30, tzinfo=UTC), None)
    assert order.line_items == (
        LineItem(product_id="p-1", variant_id="p-1-red", sku="MUG-RED", title="Mug", category="Kitchen",
                 quantity=2, price=Decimal("12.50")),
        LineItem(title="Tea", quantity=1, price=Decimal("17.50")),
    )
    assert order.discount_codes == ("SPRING10",)
    assert order.cancelled_at is None and order.consents == ()


def test_json_numbers_are_exact_decimals_and_ids_keep_their_digits() -> None:
    body = compact(custom_order_json(order_id=1001, customer_id=17)).replace(b'"42.50"', b"0.1")
    order = _one(json.loads(body))  # through a dict once, to show the mapping ...
    [from_wire] = _events(body)  # ... and from the wire, where 0.1 must stay exactly 0.10
    assert isinstance(order, CanonicalOrder) and isinstance(from_wire, CanonicalOrder)
    assert from_wire.total_price == Decimal("0.10")
    assert (from_wire.order_id, from_wire.customer_id) == ("1001", "17")
    assert [item.price for item in from_wire.line_items] == [Decimal("12.50"), Decimal("17.50")]


def test_amounts_are_rounded_to_cents_half_even() -> None:
    order = _one(custom_order_json(total_price="10.005", refunds={}))
    assert isinstance(order, CanonicalOrder)
    assert order.total_price == Decimal("10.00")


def test_an_explicit_version_is_kept_and_updated_at_then_defaults_to_created_at() -> None:
    order = _one(custom_order_json(updated_at=None, version="000000000042"))
    assert isinstance(order, CanonicalOrder)
    assert order.version == "000000000042"
    assert order.updated_at == order.created_at


def test_consents_default_their_source_and_a_cancelled_order_counts_nothing() -> None:
    order = _one(custom_order_json(cancelled_at="2026-03-01T00:00:00Z", consents=[
        {"channel": "email", "state": "subscribed", "at": T0},
        {"channel": "sms", "state": "unsubscribed", "at": T0, "source": "checkout-box"}]))
    assert isinstance(order, CanonicalOrder)
    assert order.consents == (
        Consent(channel=Channel.EMAIL, state=ConsentState.SUBSCRIBED, source="custom:order",
                at=datetime(2026, 2, 28, 10, tzinfo=UTC)),
        Consent(channel=Channel.SMS, state=ConsentState.UNSUBSCRIBED, source="checkout-box",
                at=datetime(2026, 2, 28, 10, tzinfo=UTC)),
    )
    assert order.net_total == Decimal("0.00")


def test_an_invalid_email_or_phone_is_dropped_not_the_order() -> None:
    order = _one(custom_order_json(email="not-an-email", phone="12"))
    assert isinstance(order, CanonicalOrder)
    assert (order.email, order.phone) == (None, None)


# --- the other types -----------------------------------------------------------------------------


def test_a_customer_maps_to_a_customer_record() -> None:
    customer = _one({"type": "customer", "customer_id": 17, "email": "ADA@example.com", "phone": "(613) 555-0123",
                     "country": "ca", "first_name": "Ada", "tags": ["vip"], "created_at": T0,
                     "updated_at": "2026-03-01T09:00:00-05:00",
                     "consents": [{"channel": "email", "state": "subscribed", "at": T0}]})
    assert isinstance(customer, CustomerRecord)
    assert (customer.customer_id, customer.email, customer.phone) == ("17", "ada@example.com", "+16135550123")
    assert (customer.first_name, customer.last_name, customer.country, customer.tags) == ("Ada", None, "CA", ("vip",))
    assert customer.created_at == datetime(2026, 2, 28, 10, tzinfo=UTC)
    assert customer.updated_at == datetime(2026, 3, 1, 14, tzinfo=UTC)
    assert customer.version == version_stamp(customer.updated_at, None)
    assert [consent.source for consent in customer.consents] == ["custom:customer"]
    assert customer.deleted is False


def test_a_deleted_customer_keeps_its_own_version() -> None:
    customer = _one({"type": "customer", "customer_id": "c-18", "created_at": T0, "updated_at": T0,
                     "version": "v9", "deleted": True})
    assert isinstance(customer, CustomerRecord)
    assert (customer.deleted, customer.version) == (True, "v9")


def test_a_refund_maps_to_a_refund_record() -> None:
    refund = _one({"type": "refund", "order_id": "1001", "refund_id": "rf-2", "amount": 9, "created_at": T0})
    assert refund == RefundRecord(workspace_id="ws_a", store_id="st_a", platform=Platform.CUSTOM, order_id="1001",
                                  refund_id="rf-2", amount=Decimal("9.00"), created_at=datetime(2026, 2, 28, 10,
                                                                                                tzinfo=UTC))


def test_an_order_removal_maps_to_order_removed() -> None:
    removed = _one({"type": "order_removed", "order_id": "1002", "removed_at": "2026-03-03T12:00:00+01:00"})
    assert removed == OrderRemoved(workspace_id="ws_a", store_id="st_a", platform=Platform.CUSTOM, order_id="1002",
                                   removed_at=datetime(2026, 3, 3, 11, tzinfo=UTC))


def test_an_activity_maps_to_an_activity_event() -> None:
    activity = _one({
        "type": "activity", "event_id": "ev-1", "activity": "product_added_to_cart", "occurred_at": 1772272800,
        "anonymous_id": "anon-1", "email": " Ada@Example.com", "phone": "+44 20 7946 0018", "cart_token": "c-1",
        "products": [{"product_id": 5, "title": "Mug", "price": "12.5"}], "value": "12.50", "currency": "gbp",
        "touch": {"source": "newsletter", "medium": "email", "at": T0},
        "consents": [{"channel": "sms", "state": "subscribed", "at": T0}]})
    assert isinstance(activity, ActivityEvent)
    assert (activity.event_id, activity.type) == ("ev-1", ActivityType.PRODUCT_ADDED_TO_CART)
    assert activity.occurred_at == datetime(2026, 2, 28, 10, tzinfo=UTC)  # Unix seconds are UTC
    assert (activity.email, activity.phone) == ("ada@example.com", "+442079460018")
    assert (activity.anonymous_id, activity.cart_token) == ("anon-1", "c-1")
    [product] = activity.products
    assert (product.product_id, product.title, product.price, product.quantity) == ("5", "Mug", Decimal("12.50"), 1)
    assert (activity.value, activity.currency) == (Decimal("12.50"), "GBP")
    assert activity.touch is not None and activity.touch.channel == "newsletter / email"
    assert [consent.source for consent in activity.consents] == ["custom:activity"]


def test_a_batch_maps_every_event_in_order() -> None:
    events = _events({"events": [
        {"type": "customer", "customer_id": "c-19", "created_at": T0, "updated_at": T0},
        custom_order_json(order_id="1003"),
        {"type": "refund", "order_id": "1003", "refund_id": "rf-3", "amount": "1.00", "created_at": T0},
        {"type": "order_removed", "order_id": "1003", "removed_at": T0},
        {"type": "activity", "event_id": "ev-2", "activity": "identify", "occurred_at": T0, "anonymous_id": "a"},
    ]})
    assert [event.kind if not isinstance(event, CanonicalOrder) else "order" for event in events] == [
        "customer", "order", "refund", "order_removed", "activity"]
    assert all(event.platform is Platform.CUSTOM for event in events)


def test_a_batch_of_the_maximum_size_is_read() -> None:
    batch = {"events": [custom_order_json(order_id=str(n)) for n in range(MAX_BATCH)]}
    assert len(_events(batch)) == MAX_BATCH


# --- bodies that are not understood --------------------------------------------------------------


@pytest.mark.parametrize(("payload", "reason"), [
    (custom_order_json(total_price=None), "not a CRM event: total_price: "),
    ({k: v for k, v in custom_order_json().items() if k != "currency"}, "not a CRM event: currency: Field required"),
    (custom_order_json(currency="pounds"), "not a CRM event: currency: String should match pattern"),
    (custom_order_json(total_price="lots"), "not a CRM event: total_price: not an amount: 'lots'"),
    (custom_order_json(total_price="NaN"), "not a CRM event: total_price: not an amount"),
    (custom_order_json(total_price=True), "not a CRM event: total_price: an amount must be a decimal string"),
    (custom_order_json(total_price="-1.00"), "not a CRM event: total_price: Input should be greater than or equal"),
    (custom_order_json(refunds={"rf-1": "-5"}), "not a CRM event: refunds.rf-1: Input should be greater than"),
    (custom_order_json(created_at="2026-02-28T10:00:00"), "not a CRM event: created_at: Input should have timezone"),
    (custom_order_json(updated_at=None), "not a CRM event: an order needs updated_at or version"),
    (custom_order_json(total="42.50"), "not a CRM event: total: Extra inputs are not permitted"),
    (custom_order_json(line_items=[{"title": "Mug", "quantity": -1, "price": "1"}]),
     "not a CRM event: line_items.0.quantity: Input should be greater than or equal to 0"),
    (custom_order_json(consents=[{"channel": "fax", "state": "subscribed", "at": T0}]),
     "not a CRM event: consents.0.channel: Input should be 'email' or 'sms'"),
    (custom_order_json(order_id=""), "not a CRM event: order_id: String should have at least 1 character"),
    ({"type": "invoice", "id": 1}, "not a CRM event: type: must be one of order, customer, refund"),
    ({"type": None}, "not a CRM event: type: must be one of"),
    ({"type": "activity", "event_id": "e", "activity": "page_scrolled", "occurred_at": T0},
     "not a CRM event: activity: Input should be 'page_viewed'"),
    ({"type": "refund", "order_id": "1", "refund_id": "r", "created_at": T0},
     "not a CRM event: amount: Field required"),
    ({"order_id": "1"}, 'not a CRM event: the body has neither "type" nor "events"'),
    ({"events": []}, "not a CRM event batch: events: List should have at least 1 item"),
    ({"events": [custom_order_json()] * (MAX_BATCH + 1)},
     "not a CRM event batch: events: List should have at most 100"),
    ({"events": [custom_order_json(), custom_order_json(currency=None)]}, "not a CRM event batch: events.1.currency: "),
    ({"events": [{"kind": "order"}]}, "not a CRM event batch: events.0.type: must be one of"),
    ({"events": ["order"]}, "not a CRM event batch: events.0: "),
    ({"events": custom_order_json()}, "not a CRM event batch: events: Input should be a valid list"),
    ({"events": [custom_order_json()], "store": "x"}, "not a CRM event batch: store: Extra inputs are not permitted"),
])
def test_an_invalid_body_is_not_understood_naming_the_field(payload: dict[str, Any], reason: str) -> None:
    with pytest.raises(PayloadNotUnderstood) as raised:
        _events(payload)
    assert str(raised.value).startswith(reason), str(raised.value)


@pytest.mark.parametrize(("body", "reason"), [(b"not json", "not valid JSON"), (b"[]", "not a JSON object"),
                                              (b"\xff\xfe", "not valid JSON"), (b"", "not valid JSON")])
def test_a_body_that_is_not_a_json_object_is_not_understood(body: bytes, reason: str) -> None:
    with pytest.raises(PayloadNotUnderstood, match=reason):
        _events(body)
