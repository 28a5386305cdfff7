from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from crm.connectors import connector_for
from crm.connectors.base import (
    MissingHeader,
    PayloadNotUnderstood,
    SignatureMissing,
    base64_hmac_sha256_matches,
    sign_base64_hmac_sha256,
)
from crm.connectors.shopify import SHOPIFY
from crm.models.canonical import (
    ActivityEvent,
    ActivityType,
    ComplianceKind,
    ComplianceRequest,
    CustomerRecord,
    ProductRef,
    RefundRecord,
)
from crm.models.consent import Channel, Consent, ConsentState
from crm.models.orders import CanonicalOrder
from crm.models.stores import Platform
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.builders import (
    DOMAIN,
    FIXTURE_CUSTOMER_ID,
    FIXTURE_ORDER_ID,
    NOW,
    SECRET,
    compact,
    envelope,
    fixture_bytes,
    fixture_json,
    placed_order_json,
    shopify_headers,
)
from tests.fakes import FakeStoreDirectory


def test_connector_for_names_shopify_and_refuses_unknown_platforms() -> None:
    assert connector_for("shopify") is SHOPIFY
    assert SHOPIFY.platform is Platform.SHOPIFY
    with pytest.raises(KeyError):
        connector_for("magento")


# --- headers -------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", [str.lower, str.upper, lambda name: name])
def test_headers_are_read_in_any_case(case: Any) -> None:
    body = fixture_bytes("orders/create")
    headers = {case(name): value for name, value in shopify_headers(body).items()}
    assert SHOPIFY.store_domain(headers, b"") == DOMAIN
    assert SHOPIFY.signature(headers) == sign_base64_hmac_sha256(body, SECRET)
    meta = SHOPIFY.delivery_meta(headers, b"")
    assert meta.topic == "orders/create"
    assert meta.delivery_id == "d-1"


def test_store_domain_is_lowercased_and_trimmed() -> None:
    assert SHOPIFY.store_domain({"X-Shopify-Shop-Domain": "  JSmith.MyShopify.com "}, b"") == DOMAIN


def test_delivery_meta_reads_every_delivery_header() -> None:
    meta = SHOPIFY.delivery_meta(shopify_headers(b"{}", delivery_id="545ebdd4-b7be", topic="orders/updated"), b"")
    assert meta.topic == "orders/updated"
    assert meta.delivery_id == "545ebdd4-b7be"
    assert meta.event_id == "event-545ebdd4-b7be"
    assert meta.api_version == "2026-04"
    assert meta.triggered_at == datetime(2025, 7, 10, 16, 15, 47, tzinfo=UTC)


def test_delivery_meta_without_trigger_time_is_accepted() -> None:
    assert SHOPIFY.delivery_meta(shopify_headers(b"{}", triggered_at=None), b"").triggered_at is None


@pytest.mark.parametrize("missing", ["X-Shopify-Topic", "X-Shopify-Webhook-Id"])
def test_delivery_meta_requires_topic_and_delivery_id(missing: str) -> None:
    headers = shopify_headers(b"{}")
    del headers[missing]
    with pytest.raises(MissingHeader, match=missing) as raised:
        SHOPIFY.delivery_meta(headers, b"")
    assert raised.value.status == 400


def test_blank_header_counts_as_missing() -> None:
    headers = {**shopify_headers(b"{}"), "X-Shopify-Topic": "   "}
    with pytest.raises(MissingHeader):
        SHOPIFY.delivery_meta(headers, b"")


def test_unparseable_trigger_time_is_a_missing_header() -> None:
    with pytest.raises(MissingHeader, match="Triggered-At"):
        SHOPIFY.delivery_meta(shopify_headers(b"{}", triggered_at="yesterday"), b"")


def test_missing_shop_domain_raises_missing_header() -> None:
    headers = shopify_headers(b"{}")
    del headers["X-Shopify-Shop-Domain"]
    with pytest.raises(MissingHeader, match="X-Shopify-Shop-Domain"):
        SHOPIFY.store_domain(headers, b"")


def test_missing_signature_raises_signature_missing_with_401() -> None:
    headers = shopify_headers(b"{}")
    del headers["X-Shopify-Hmac-Sha256"]
    with pytest.raises(SignatureMissing) as raised:
        SHOPIFY.signature(headers)
    assert raised.value.status == 401


# --- signatures ----------------------------------------------------------------------------------


def test_signature_is_base64_hmac_sha256_of_the_raw_bytes() -> None:
    body = fixture_bytes("orders/create")
    expected = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    assert sign_base64_hmac_sha256(body, SECRET) == expected
    assert SHOPIFY.is_signed_by({}, body, expected, [SECRET])


def test_signature_over_the_exact_bytes_only() -> None:
    pretty = fixture_bytes("orders/create")
    signature = sign_base64_hmac_sha256(pretty, SECRET)
    wire = compact(json.loads(pretty))  # the same JSON, other bytes
    assert not SHOPIFY.is_signed_by({}, wire, signature, [SECRET])
    assert not SHOPIFY.is_signed_by({}, pretty + b" ", signature, [SECRET])


def test_signature_with_another_secret_is_refused() -> None:
    body = fixture_bytes("orders/create")
    assert not SHOPIFY.is_signed_by({}, body, sign_base64_hmac_sha256(body, "someone-else"), [SECRET])


@pytest.mark.parametrize("signature", ["", "not base64!", "AAAA", "====", sign_base64_hmac_sha256(b"x", SECRET)[:-4]])
def test_malformed_signatures_are_refused(signature: str) -> None:
    assert not SHOPIFY.is_signed_by({}, b"{}", signature, [SECRET])


def test_no_secrets_verify_nothing() -> None:
    assert not SHOPIFY.is_signed_by({}, b"{}", sign_base64_hmac_sha256(b"{}", SECRET), [])


def test_rotation_accepts_old_and_new_secret_and_nothing_else() -> None:
    body = fixture_bytes("orders/create")
    secrets = ("old-secret", "new-secret")
    assert SHOPIFY.is_signed_by({}, body, sign_base64_hmac_sha256(body, "old-secret"), secrets)
    assert SHOPIFY.is_signed_by({}, body, sign_base64_hmac_sha256(body, "new-secret"), secrets)
    assert not SHOPIFY.is_signed_by({}, body, sign_base64_hmac_sha256(body, "third-secret"), secrets)


def test_signature_with_surrounding_whitespace_still_verifies() -> None:
    signature = f"  {sign_base64_hmac_sha256(b'{}', SECRET)}\n"
    assert base64_hmac_sha256_matches(b"{}", signature, [SECRET])


# --- mapping orders ------------------------------------------------------------------------------


def _orders(payload: dict[str, Any] | bytes, topic: str = "orders/create") -> list[Any]:
    body = payload if isinstance(payload, bytes) else compact(payload)
    triggered = datetime(2025, 7, 10, 16, 15, 47, tzinfo=UTC)
    return SHOPIFY.events(envelope(None, topic=topic, triggered_at=triggered), body, FakeStoreDirectory())


def test_published_orders_create_sample_maps_to_a_canonical_order() -> None:
    [order] = _orders(fixture_bytes("orders/create"))
    assert order.order_id == FIXTURE_ORDER_ID  # > 2^53: exact digits, never via float
    assert order.customer_id == FIXTURE_CUSTOMER_ID
    assert order.total_price == Decimal("404.95")
    assert isinstance(order.total_price, Decimal)
    assert order.total_refunded == Decimal("0.00")
    assert order.net_total == Decimal("0.00")  # the sample is a cancelled test order: it counts nothing
    assert order.currency == "USD"
    assert order.email == "jon@example.com"  # the order's email wins over the customer's
    assert order.phone is None
    assert (order.first_name, order.last_name) == ("John", "Smith")
    assert order.order_number == "#9999"
    assert order.financial_status == "voided"
    assert order.created_at == datetime(2022, 1, 1, 0, 0, tzinfo=UTC)
    assert order.created_at.tzinfo == UTC
    assert order.cancelled_at == datetime(2022, 1, 1, 0, 0, tzinfo=UTC)
    assert (order.workspace_id, order.store_id, order.platform) == ("ws_a", "st_a", Platform.SHOPIFY)
    assert order.version == "2022-01-01T00:00:00.000000Z|2025-07-10T16:15:47.000000Z"
    assert len(order.line_items) == len(fixture_json("orders/create")["line_items"])
    first = order.line_items[0]
    assert (first.product_id, first.sku, first.quantity, first.price) == (
        "788032119674292922", "SKU2006-001", 1, Decimal("89.99"))


def test_orders_updated_topic_maps_too() -> None:
    [order] = _orders(fixture_bytes("orders/updated"), topic="orders/updated")
    assert order.order_id == FIXTURE_ORDER_ID


def test_email_is_normalised() -> None:
    payload = {**fixture_json("orders/create"), "email": "  Jon@Example.COM "}
    [order] = _orders(payload)
    assert order.email == "jon@example.com"


def test_email_falls_back_to_contact_email_then_customer_email() -> None:
    payload = {**fixture_json("orders/create"), "email": None, "contact_email": None}
    [order] = _orders(payload)
    assert order.email == "john@example.com"
    payload = {**payload, "contact_email": "Contact@Example.com"}
    [order] = _orders(payload)
    assert order.email == "contact@example.com"


def test_phone_is_normalised_with_the_billing_country() -> None:
    payload = fixture_json("orders/create")
    payload["phone"] = "(613) 555-0123"
    payload["billing_address"] = {**payload["billing_address"], "country_code": "CA"}
    [order] = _orders(payload)
    assert order.phone == "+16135550123"


def test_refunds_are_summed_from_successful_refund_transactions() -> None:
    refund = fixture_json("refunds/create")  # two successful refund transactions: 75.00 and 10.00
    failed = {"kind": "refund", "status": "failure", "amount": "1000.00"}
    capture = {"kind": "capture", "status": "success", "amount": "404.95"}
    payload = {**fixture_json("orders/create"), "cancelled_at": None,
               "refunds": [refund, {"id": 7, "transactions": [failed, capture, {"kind": "refund", "amount": "0.05"}]}]}
    [order] = _orders(payload)
    assert order.refunds == {"890088186047892319": Decimal("85.00"), "7": Decimal("0.05")}
    assert order.total_refunded == Decimal("85.05")
    assert order.net_total == Decimal("319.90")


def test_refunds_beyond_the_total_leave_a_net_total_of_zero() -> None:
    payload = {**fixture_json("orders/create"), "total_price": "10.00",
               "refunds": [{"id": 7, "transactions": [{"kind": "refund", "status": "success", "amount": "12.00"}]}]}
    [order] = _orders(payload)
    assert order.net_total == Decimal("0.00")


def test_amounts_sent_as_json_numbers_keep_their_cents() -> None:
    body = compact(fixture_json("orders/create")).replace(b'"total_price":"404.95"', b'"total_price":404.95')
    assert b'"total_price":404.95' in body
    [order] = _orders(body)
    assert order.total_price == Decimal("404.95")


def test_trigger_time_breaks_ties_between_updates_in_the_same_second() -> None:
    body = fixture_bytes("orders/updated")
    stores = FakeStoreDirectory()
    early = SHOPIFY.events(envelope(body, triggered_at=datetime(2025, 1, 1, 0, 0, 0, 1, tzinfo=UTC)), body, stores)[0]
    late = SHOPIFY.events(envelope(body, triggered_at=datetime(2025, 1, 1, 0, 0, 0, 2, tzinfo=UTC)), body, stores)[0]
    assert early.version < late.version


@pytest.mark.parametrize("body", [b"not json", b"{", b"\xff\xfe\x00garbage", b""])
def test_non_json_body_is_not_understood(body: bytes) -> None:
    with pytest.raises(PayloadNotUnderstood, match="not valid JSON"):
        _orders(body)


@pytest.mark.parametrize("body", [b"[]", b'"order"', b"42", b"null"])
def test_json_that_is_not_an_object_is_not_understood(body: bytes) -> None:
    with pytest.raises(PayloadNotUnderstood, match="not a JSON object"):
        _orders(body)


@pytest.mark.parametrize("topic", ["app/uninstalled", "products/update", "ORDERS/CREATE"])
def test_unsupported_topic_is_not_understood(topic: str) -> None:
    body = fixture_bytes("app/uninstalled")
    with pytest.raises(PayloadNotUnderstood, match=f"unsupported Shopify topic '{topic}'"):
        _orders(body, topic=topic)


@pytest.mark.parametrize("field", ["id", "currency", "total_price", "created_at"])
def test_order_without_a_required_field_is_not_understood(field: str) -> None:
    payload = fixture_json("orders/create")
    del payload[field]
    with pytest.raises(PayloadNotUnderstood, match=field):
        _orders(payload)


def test_checkout_sample_without_an_id_is_not_an_order() -> None:
    with pytest.raises(PayloadNotUnderstood, match="not a Shopify order"):
        _orders(fixture_bytes("checkouts/create"))


def test_trigger_time_without_a_zone_is_refused_at_the_webhook() -> None:
    with pytest.raises(MissingHeader):
        SHOPIFY.delivery_meta(shopify_headers(b"{}", triggered_at="2025-07-10T16:15:47"), b"")


# --- every topic a CRM needs ---------------------------------------------------------------------

TRIGGER = datetime(2025, 7, 10, 16, 15, 47, tzinfo=UTC)
SAMPLE_TIME = datetime(2022, 1, 1, 0, 0, tzinfo=UTC)  # the samples' "2021-12-31T19:00:00-05:00"
ORDER_TOPICS = ("orders/create", "orders/updated", "orders/paid", "orders/cancelled", "orders/fulfilled")
REFUND_ID = "890088186047892319"


def _events(
    payload: dict[str, Any] | bytes, topic: str, *, triggered_at: datetime | None = TRIGGER, delivery_id: str = "d-1",
) -> list[Any]:
    body = payload if isinstance(payload, bytes) else compact(payload)
    message = envelope(None, topic=topic, triggered_at=triggered_at, delivery_id=delivery_id)
    return SHOPIFY.events(message, body, FakeStoreDirectory())


def _one(payload: dict[str, Any] | bytes, topic: str, **options: Any) -> Any:
    [event] = _events(payload, topic, **options)
    return event


@pytest.mark.parametrize("topic", ORDER_TOPICS)
def test_every_order_topic_maps_its_published_sample_to_one_order(topic: str) -> None:
    order = _one(fixture_bytes(topic), topic)
    assert isinstance(order, CanonicalOrder)
    assert order.order_id == FIXTURE_ORDER_ID
    assert order.customer_id == FIXTURE_CUSTOMER_ID
    assert order.total_price == Decimal("404.95")
    assert order.refunds == {}
    assert order.discount_codes == ()
    assert order.fulfillment_status is None
    assert (order.cart_token, order.checkout_token, order.anonymous_id) == (None, None, None)
    assert order.country == "US"  # billing (US) before the customer's default address (CA)
    assert [(item.product_id, item.variant_id, item.sku, item.category) for item in order.line_items] == [
        ("788032119674292922", None, "SKU2006-001", None),
        (None, None, "LENS-PROTECT-2YR", None),
        (None, None, "CASE-LEATHER-PREM", None),
        ("788032119674292922", None, "SKU2006-020", None),
        ("788032119674292922", None, "SKU2006-035", None),
    ]
    # buyer_accepts_marketing is true and the customer has no consent object: subscribed when ordering.
    assert order.consents == (
        Consent(channel=Channel.EMAIL, state=ConsentState.SUBSCRIBED, source=f"shopify:{topic}", at=SAMPLE_TIME),
    )
    assert order.version == "2022-01-01T00:00:00.000000Z|2025-07-10T16:15:47.000000Z"


def test_order_reads_refunds_by_id_codes_tokens_and_the_storefront_id() -> None:
    payload = placed_order_json(
        refunds=[fixture_json("refunds/create")],
        discount_codes=[{"code": "SUMMER10", "amount": "10.00", "type": "percentage"}, {"code": ""}],
        fulfillment_status="partial",
        cart_token="eeafa272cebfd4b22385bc4b645e762c",
        checkout_token="123123123",
        note_attributes=[{"name": "gift_note", "value": "happy birthday"},
                         {"name": "crm_anonymous_id", "value": " anon-7f3a "}],
    )
    payload["line_items"][0].update(variant_id=704912205188288575, product_type="Sunglasses")
    order = _one(payload, "orders/updated")
    assert order.refunds == {REFUND_ID: Decimal("85.00")}  # 75.00 + 10.00, by the refund's exact id
    assert order.net_total == Decimal("319.95")
    assert order.discount_codes == ("SUMMER10",)
    assert order.fulfillment_status == "partial"
    assert (order.cart_token, order.checkout_token) == ("eeafa272cebfd4b22385bc4b645e762c", "123123123")
    assert order.anonymous_id == "anon-7f3a"
    first = order.line_items[0]
    assert (first.variant_id, first.category) == ("704912205188288575", "Sunglasses")


@pytest.mark.parametrize("attributes", [[], [{"name": "crm_anonymous_id", "value": ""}],
                                        [{"name": "crm_anonymous_id", "value": 42}], [{"name": "other", "value": "x"}]])
def test_order_without_a_usable_storefront_id_has_no_anonymous_id(attributes: list[dict[str, Any]]) -> None:
    assert _one(placed_order_json(note_attributes=attributes), "orders/create").anonymous_id is None


def test_order_country_falls_back_to_shipping_then_the_customers_default_address() -> None:
    payload = placed_order_json(billing_address=None)
    payload["shipping_address"]["country_code"] = "GB"
    assert _one(payload, "orders/create").country == "GB"
    payload["shipping_address"] = None
    assert _one(payload, "orders/create").country == "CA"
    payload["customer"] = None
    assert _one(payload, "orders/create").country is None


@pytest.mark.parametrize(("shopify", "state"), [
    ("subscribed", ConsentState.SUBSCRIBED),
    ("unsubscribed", ConsentState.UNSUBSCRIBED),
    ("not_subscribed", ConsentState.NOT_SUBSCRIBED),
    ("pending", ConsentState.NOT_SUBSCRIBED),  # double opt-in not confirmed yet
    ("redacted", ConsentState.UNSUBSCRIBED),  # erased at the shopper's request: never message them
    ("SUBSCRIBED", ConsentState.SUBSCRIBED),
])
def test_customer_consent_objects_map_onto_the_crms_states(shopify: str, state: ConsentState) -> None:
    payload = placed_order_json(updated_at="2024-05-01T12:00:00Z")
    payload["customer"]["email_marketing_consent"] = {
        "state": shopify, "opt_in_level": "single_opt_in", "consent_updated_at": "2024-03-01T10:00:00-05:00"}
    payload["customer"]["sms_marketing_consent"] = {
        "state": shopify, "opt_in_level": "single_opt_in", "consent_updated_at": None,
        "consent_collected_from": "SHOPIFY"}
    order = _one(payload, "orders/paid")
    assert order.consents == (
        Consent(channel=Channel.EMAIL, state=state, source="shopify:orders/paid",
                at=datetime(2024, 3, 1, 15, 0, tzinfo=UTC)),
        # no consent_updated_at: the order's updated_at says when it was last known
        Consent(channel=Channel.SMS, state=state, source="shopify:orders/paid",
                at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC)),
    )


def test_a_consent_object_wins_over_the_checkout_box_and_unknown_states_say_nothing() -> None:
    payload = placed_order_json(buyer_accepts_marketing=True)
    payload["customer"]["email_marketing_consent"] = {"state": "something_new", "consent_updated_at": None}
    assert _one(payload, "orders/create").consents == ()


def test_an_unticked_marketing_box_is_no_statement() -> None:
    assert _one(placed_order_json(buyer_accepts_marketing=False), "orders/create").consents == ()


# --- refunds -------------------------------------------------------------------------------------


def test_published_refund_maps_to_a_refund_record() -> None:
    refund = _one(fixture_bytes("refunds/create"), "refunds/create")
    assert refund == RefundRecord(
        workspace_id="ws_a", store_id="st_a", platform=Platform.SHOPIFY, order_id=FIXTURE_ORDER_ID,
        refund_id=REFUND_ID, amount=Decimal("85.00"), created_at=SAMPLE_TIME)
    assert isinstance(refund.amount, Decimal)


def test_refund_counts_only_successful_refund_transactions() -> None:
    payload = fixture_json("refunds/create")
    payload["transactions"] += [
        {"kind": "refund", "status": "failure", "amount": "500.00"},
        {"kind": "refund", "status": "pending", "amount": "400.00"},
        {"kind": "void", "status": "success", "amount": "300.00"},
        {"kind": "refund", "amount": "0.10"},  # no status: an older payload listing a settled refund
    ]
    assert _one(payload, "refunds/create").amount == Decimal("85.10")


transactions = st.lists(st.fixed_dictionaries({
    "kind": st.sampled_from(["refund", "capture", "void", "sale"]),
    "status": st.sampled_from(["success", "failure", "pending", "error", None]),
    "amount": st.integers(min_value=0, max_value=10_000_000).map(lambda cents: f"{Decimal(cents) / 100:.2f}"),
}), max_size=6)


@settings(max_examples=60, deadline=None)
@given(refunds=st.lists(transactions, min_size=1, max_size=4))
def test_refunds_on_their_own_and_on_the_order_agree_by_id(refunds: list[list[dict[str, Any]]]) -> None:
    listed = [{"id": 2**60 + number, "order_id": int(FIXTURE_ORDER_ID), "created_at": "2024-01-01T00:00:00Z",
               "transactions": moves} for number, moves in enumerate(refunds)]
    order = _one(placed_order_json(refunds=listed), "orders/updated")
    records = [_one(refund, "refunds/create") for refund in listed]
    assert order.refunds == {record.refund_id: record.amount for record in records}
    expected = sum((Decimal(move["amount"]) for moves in refunds for move in moves
                    if move["kind"] == "refund" and move["status"] in ("success", None)), Decimal("0"))
    assert order.total_refunded == expected
    assert all(record.refund_id == str(2**60 + number) for number, record in enumerate(records))


# --- checkouts and carts -------------------------------------------------------------------------


@pytest.mark.parametrize(("topic", "kind"), [("checkouts/create", ActivityType.CHECKOUT_STARTED),
                                             ("checkouts/update", ActivityType.CHECKOUT_UPDATED)])
def test_published_checkout_maps_to_a_checkout_activity(topic: str, kind: ActivityType) -> None:
    event = _one(fixture_bytes(topic), topic)
    assert isinstance(event, ActivityEvent)
    assert event.type is kind
    assert event.event_id == f"{kind.value}:123123123:2022-01-01T00:00:00.000000Z"
    assert event.occurred_at == SAMPLE_TIME
    assert event.email == "example@email.com"  # the checkout's email before the customer account's
    assert event.phone is None
    assert event.customer_id == "603851970716743426"
    assert (event.first_name, event.last_name) == ("John", "Smith")
    assert (event.cart_token, event.checkout_token) == ("eeafa272cebfd4b22385bc4b645e762c", "123123123")
    assert event.url == "https://checkout.local/548380009/checkouts/123123123/recover?key=example-secret-token"
    assert (event.value, event.currency) == (Decimal("421.88"), "USD")
    ipod = ProductRef(product_id="632910392", variant_id="808950810", sku="IPOD2008PINK", title="IPod Nano - 8GB",
                      price=Decimal("199.00"), quantity=1)
    assert event.products == (ipod, ipod)
    assert event.consents == ()  # neither box ticked, no consent object
    assert event.anonymous_id is None


def test_checkout_event_ids_are_stable_across_redelivery_and_new_per_update() -> None:
    payload = fixture_json("checkouts/update")
    first = _one(payload, "checkouts/update", delivery_id="d-1", triggered_at=TRIGGER)
    again = _one(payload, "checkouts/update", delivery_id="d-2", triggered_at=None)
    later = _one({**payload, "updated_at": "2022-01-01T00:05:00Z"}, "checkouts/update")
    started = _one(payload, "checkouts/create")
    assert first.event_id == again.event_id
    assert later.event_id != first.event_id
    assert started.event_id != first.event_id  # create and the update fired with it are two events


def test_checkout_reads_contacts_consent_and_the_storefront_id() -> None:
    payload = {**fixture_json("checkouts/create"), "email": None, "phone": "(613) 555-0123",
               "buyer_accepts_marketing": True, "buyer_accepts_sms_marketing": True,
               "updated_at": "2022-01-02T00:00:00Z",
               "note_attributes": [{"name": "crm_anonymous_id", "value": "anon-1"}]}
    payload["billing_address"] = {**payload["billing_address"], "country_code": "CA"}
    event = _one(payload, "checkouts/create")
    assert event.email == "john@example.com"
    assert event.phone == "+16135550123"
    assert event.anonymous_id == "anon-1"
    assert event.consents == (
        Consent(channel=Channel.EMAIL, state=ConsentState.SUBSCRIBED, source="shopify:checkouts/create",
                at=datetime(2022, 1, 2, tzinfo=UTC)),
        Consent(channel=Channel.SMS, state=ConsentState.SUBSCRIBED, source="shopify:checkouts/create",
                at=datetime(2022, 1, 2, tzinfo=UTC)),
    )


@pytest.mark.parametrize("topic", ["carts/create", "carts/update"])
def test_published_cart_maps_to_a_cart_update(topic: str) -> None:
    event = _one(fixture_bytes(topic), topic)
    assert isinstance(event, ActivityEvent)
    assert event.type is ActivityType.CART_UPDATED
    assert event.event_id == "cart_updated:exampleCartId:2022-01-01T00:00:00.000000Z"
    assert event.cart_token == "exampleCartId"
    assert event.occurred_at == SAMPLE_TIME
    assert (event.email, event.customer_id, event.checkout_token) == (None, None, None)
    assert event.products == (ProductRef(
        product_id="788032119674292922", variant_id="704912205188288575", sku="example-shirt-s",
        title="Example T-Shirt - Small", price=Decimal("19.99"), quantity=3),)
    assert (event.value, event.currency) == (Decimal("59.97"), "USD")


def test_cart_value_sums_line_prices_and_ids_follow_the_update_time() -> None:
    payload = fixture_json("carts/update")
    second = {**payload["line_items"][0], "line_price": "10.01", "line_price_set": None}
    third = {**second, "line_price": None, "price": "2.50", "quantity": 2}
    both = {**payload, "line_items": [*payload["line_items"], second, third]}
    event = _one(both, "carts/update")
    assert event.value == Decimal("74.98")  # 59.97 + 10.01 + 2 x 2.50
    assert event.currency == "USD"
    assert _one(both, "carts/update", delivery_id="d-9").event_id == event.event_id
    assert _one({**both, "updated_at": "2022-01-01T00:00:01Z"}, "carts/update").event_id != event.event_id


def test_cart_named_only_by_its_id_or_token() -> None:
    payload = fixture_json("carts/create")
    assert _one({**payload, "token": None}, "carts/create").cart_token == "exampleCartId"
    without_id = {key: value for key, value in payload.items() if key != "id"}
    assert _one(without_id, "carts/create").cart_token == "exampleCartId"
    empty = _one({**payload, "line_items": []}, "carts/create")
    assert (empty.value, empty.currency, empty.products) == (Decimal("0.00"), None, ())


# --- customers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("topic", ["customers/create", "customers/update"])
def test_published_customer_maps_to_a_customer_record(topic: str) -> None:
    record = _one(fixture_bytes(topic), topic)
    assert record == CustomerRecord(
        workspace_id="ws_a", store_id="st_a", platform=Platform.SHOPIFY, customer_id="706405506930370084",
        email="bob@biller.com", phone=None, first_name="Bob", last_name="Biller", country="CA", tags=(),
        consents=(), created_at=SAMPLE_TIME, updated_at=SAMPLE_TIME,
        version="2022-01-01T00:00:00.000000Z|2025-07-10T16:15:47.000000Z", deleted=False)


def test_customer_reads_phone_tags_and_consent() -> None:
    payload = {**fixture_json("customers/update"), "email": " Bob@Biller.COM ", "phone": "613-555-0123",
               "tags": "vip, wholesale ,, newsletter", "updated_at": "2024-02-01T00:00:00+01:00",
               "email_marketing_consent": {"state": "subscribed", "opt_in_level": "confirmed_opt_in",
                                           "consent_updated_at": "2023-06-01T08:00:00Z"},
               "sms_marketing_consent": {"state": "redacted", "consent_updated_at": None}}
    record = _one(payload, "customers/update")
    assert record.email == "bob@biller.com"
    assert record.phone == "+16135550123"  # the default address is in Canada
    assert record.tags == ("vip", "wholesale", "newsletter")
    assert record.updated_at == datetime(2024, 1, 31, 23, 0, tzinfo=UTC)
    assert record.consents == (
        Consent(channel=Channel.EMAIL, state=ConsentState.SUBSCRIBED, source="shopify:customers/update",
                at=datetime(2023, 6, 1, 8, 0, tzinfo=UTC)),
        Consent(channel=Channel.SMS, state=ConsentState.UNSUBSCRIBED, source="shopify:customers/update",
                at=datetime(2024, 1, 31, 23, 0, tzinfo=UTC)),
    )


def test_later_customer_updates_get_later_versions() -> None:
    payload = fixture_json("customers/update")
    older = _one(payload, "customers/update")
    newer = _one({**payload, "updated_at": "2022-01-01T00:00:01Z"}, "customers/update")
    retry = _one(payload, "customers/update", triggered_at=TRIGGER.replace(microsecond=1))
    assert older.version < retry.version < newer.version


def test_published_customer_deletion_marks_the_account_deleted_at_the_trigger_time() -> None:
    record = _one(fixture_bytes("customers/delete"), "customers/delete")
    assert record.deleted is True
    assert record.customer_id == "706405506930370084"
    assert (record.email, record.phone, record.country, record.consents) == (None, None, None, ())
    assert record.created_at == record.updated_at == TRIGGER
    assert record.version == "2025-07-10T16:15:47.000000Z|2025-07-10T16:15:47.000000Z"


def test_customer_deletion_without_a_trigger_time_is_dated_when_received() -> None:
    record = _one({**fixture_json("customers/delete"), "email": "Bob@Biller.com"}, "customers/delete",
                  triggered_at=None)
    assert record.updated_at == NOW
    assert record.email == "bob@biller.com"


# --- fulfillments --------------------------------------------------------------------------------


def test_published_fulfillment_maps_to_an_order_fulfilled_activity() -> None:
    event = _one(fixture_bytes("fulfillments/create"), "fulfillments/create")
    assert isinstance(event, ActivityEvent)
    assert event.type is ActivityType.ORDER_FULFILLED
    assert event.event_id == "fulfillment:123456"
    assert event.order_id == FIXTURE_ORDER_ID
    assert event.email == "jon@example.com"
    assert event.occurred_at == SAMPLE_TIME
    assert [product.sku for product in event.products] == [
        "SKU2006-001", "LENS-PROTECT-2YR", "CASE-LEATHER-PREM", "SKU2006-020", "SKU2006-035"]
    again = _one(fixture_bytes("fulfillments/create"), "fulfillments/create", delivery_id="d-2")
    assert again.event_id == event.event_id


def test_fulfillment_without_created_at_is_dated_by_updated_at() -> None:
    payload = {**fixture_json("fulfillments/create"), "created_at": None, "updated_at": "2022-01-03T00:00:00Z",
               "email": None}
    event = _one(payload, "fulfillments/create")
    assert event.occurred_at == datetime(2022, 1, 3, tzinfo=UTC)
    assert event.email is None


# --- compliance ----------------------------------------------------------------------------------


def test_published_data_request_maps_to_a_compliance_request() -> None:
    request = _one(fixture_bytes("customers/data_request"), "customers/data_request")
    assert request == ComplianceRequest(
        workspace_id="ws_a", store_id="st_a", platform=Platform.SHOPIFY,
        request=ComplianceKind.CUSTOMER_DATA_REQUEST, request_id="9999", customer_id="191167",
        email="john@example.com",
        phone=None,  # "555-625-1199" names no country, and the payload gives none to read it with
        order_ids=("299938", "280263", "220458"), requested_at=TRIGGER)


def test_data_request_without_its_id_is_named_by_the_delivery() -> None:
    payload = {**fixture_json("customers/data_request"), "data_request": None}
    payload["customer"] = {**payload["customer"], "phone": "+1 613 555 0123"}
    request = _one(payload, "customers/data_request", delivery_id="d-77", triggered_at=None)
    assert (request.request_id, request.requested_at, request.phone) == ("d-77", NOW, "+16135550123")


def test_published_customer_redact_maps_to_a_compliance_request() -> None:
    request = _one(fixture_bytes("customers/redact"), "customers/redact", delivery_id="d-5")
    assert (request.request, request.request_id, request.customer_id, request.email, request.order_ids) == (
        ComplianceKind.CUSTOMER_REDACT, "d-5", "191167", "john@example.com", ("299938", "280263", "220458"))
    assert request.requested_at == TRIGGER


def test_published_shop_redact_maps_to_a_compliance_request() -> None:
    request = _one(fixture_bytes("shop/redact"), "shop/redact", delivery_id="d-6")
    assert (request.request, request.request_id, request.customer_id, request.order_ids) == (
        ComplianceKind.SHOP_REDACT, "d-6", None, ())
    assert request.requested_at == TRIGGER


# --- payloads a known topic cannot read ----------------------------------------------------------


def _without(payload: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in payload.items() if key not in keys}


@pytest.mark.parametrize(("topic", "change", "reason"), [
    ("orders/paid", lambda p: _without(p, "id"), "not a Shopify order: id: Field required"),
    ("orders/cancelled", lambda p: {**p, "updated_at": "2022-01-01T00:00:00"}, "not a Shopify order: updated_at"),
    ("orders/fulfilled", lambda p: {**p, "refunds": [{"transactions": []}]}, "not a Shopify order: refunds.0.id"),
    ("refunds/create", lambda p: _without(p, "order_id"), "not a Shopify refund: order_id: Field required"),
    ("refunds/create", lambda p: {**p, "transactions": [{"kind": "refund", "amount": "lots"}]},
     "not a Shopify refund: transactions.0.amount"),
    ("refunds/create", lambda p: {**p, "created_at": "2022-01-01T00:00:00"}, "not a Shopify refund: created_at"),
    ("checkouts/create", lambda p: _without(p, "token"), "not a Shopify checkout: token: Field required"),
    ("checkouts/update", lambda p: {**p, "currency": "dollars"}, "not a Shopify checkout: currency"),
    ("carts/update", lambda p: _without(p, "token", "id"), "not a Shopify cart: token: Field required"),
    ("carts/create", lambda p: {**p, "updated_at": "2022-01-01T00:00:00"}, "not a Shopify cart: updated_at"),
    ("customers/update", lambda p: {**p, "id": "bob"}, "not a Shopify customer: id"),
    ("customers/delete", lambda p: {}, "not a Shopify customer: id: Field required"),
    ("fulfillments/create", lambda p: _without(p, "order_id"), "not a Shopify fulfillment: order_id: Field required"),
    ("customers/data_request", lambda p: {**p, "orders_requested": ["x"]},
     "not a Shopify compliance request: orders_requested.0"),
    ("customers/redact", lambda p: {**p, "customer": {"id": "1.5"}}, "not a Shopify compliance request: customer.id"),
    ("shop/redact", lambda p: {**p, "shop_id": "shop"}, "not a Shopify compliance request: shop_id"),
])
def test_a_bad_field_names_itself(topic: str, change: Any, reason: str) -> None:
    with pytest.raises(PayloadNotUnderstood, match=f"^{reason}"):
        _events(change(fixture_json(topic)), topic)


def test_fulfillment_without_any_time_is_not_understood() -> None:
    payload = {**fixture_json("fulfillments/create"), "created_at": None, "updated_at": None}
    with pytest.raises(PayloadNotUnderstood, match=r"not a Shopify fulfillment: .*created_at or updated_at"):
        _events(payload, "fulfillments/create")


@pytest.mark.parametrize("topic", ["refunds/create", "customers/create", "carts/update", "shop/redact"])
def test_every_topic_needs_a_json_object(topic: str) -> None:
    with pytest.raises(PayloadNotUnderstood, match="not a JSON object"):
        _events(b"[]", topic)


def test_ids_beyond_two_to_the_53_keep_every_digit() -> None:
    payload = {**fixture_json("customers/update"), "id": 2**63 - 1}
    assert _one(payload, "customers/update").customer_id == "9223372036854775807"
    refund = {**fixture_json("refunds/create"), "id": 2**53 + 1}
    assert _one(refund, "refunds/create").refund_id == "9007199254740993"
