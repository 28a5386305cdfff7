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
from crm.models.stores import Platform

from tests.builders import (
    DOMAIN,
    FIXTURE_CUSTOMER_ID,
    FIXTURE_ORDER_ID,
    SECRET,
    compact,
    envelope,
    fixture_bytes,
    fixture_json,
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
               "refunds": [refund, {"transactions": [failed, capture, {"kind": "refund", "amount": "0.05"}]}]}
    [order] = _orders(payload)
    assert order.total_refunded == Decimal("85.05")
    assert order.net_total == Decimal("319.90")


def test_refunds_beyond_the_total_leave_a_net_total_of_zero() -> None:
    payload = {**fixture_json("orders/create"), "total_price": "10.00",
               "refunds": [{"transactions": [{"kind": "refund", "status": "success", "amount": "12.00"}]}]}
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


@pytest.mark.parametrize("topic", ["customers/create", "refunds/create", "carts/update", "app/uninstalled"])
def test_unsupported_topic_is_not_understood(topic: str) -> None:
    with pytest.raises(PayloadNotUnderstood, match="unsupported Shopify topic"):
        _orders(fixture_bytes(topic), topic=topic)


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
