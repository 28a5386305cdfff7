from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

import pytest
from crm.connectors import connector_for
from crm.connectors.base import MissingHeader, PayloadNotUnderstood, SignatureMissing, sign_base64_hmac_sha256
from crm.connectors.woocommerce import WOOCOMMERCE
from crm.models.canonical import CanonicalEvent, CustomerRecord, OrderRemoved
from crm.models.orders import CanonicalOrder, version_stamp
from crm.models.stores import Platform

from tests.builders import (
    NOW,
    WOO_DOMAIN,
    WOO_ORDER_TOPICS,
    WOO_SECRET,
    compact,
    envelope,
    shopify_headers,
    woo_fixture_bytes,
    woo_fixture_json,
    woo_headers,
    woo_ping,
    woo_wire,
)
from tests.fakes import FakeStoreDirectory


def test_connector_for_names_woocommerce() -> None:
    assert connector_for("woocommerce") is WOOCOMMERCE
    assert WOOCOMMERCE.platform is Platform.WOOCOMMERCE
    assert Platform("woocommerce") is Platform.WOOCOMMERCE


# --- headers -------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["https://shop.example/", "http://shop.example", "https://SHOP.Example/",
                                    "  https://shop.example/  ", "https://shop.example/wp/"])
def test_store_is_the_host_of_the_source_url(source: str) -> None:
    assert WOOCOMMERCE.store_domain({"X-WC-Webhook-Source": source}, b"") == WOO_DOMAIN


@pytest.mark.parametrize("case", [str.lower, str.upper, lambda name: name])
def test_headers_are_read_in_any_case(case: Any) -> None:
    body = woo_fixture_bytes("order.created")
    headers = {case(name): value for name, value in woo_headers(body, delivery_id="abc123").items()}
    assert WOOCOMMERCE.store_domain(headers, b"") == WOO_DOMAIN
    assert WOOCOMMERCE.signature(headers) == sign_base64_hmac_sha256(body, WOO_SECRET)
    meta = WOOCOMMERCE.delivery_meta(headers, b"")
    assert (meta.topic, meta.delivery_id) == ("order.created", "abc123")


def test_delivery_meta_has_no_event_id_trigger_time_or_api_version() -> None:
    meta = WOOCOMMERCE.delivery_meta(woo_headers(b"{}", topic="order.updated", delivery_id="9f8e7d"), b"")
    assert (meta.topic, meta.delivery_id) == ("order.updated", "9f8e7d")
    assert (meta.event_id, meta.triggered_at, meta.api_version) == (None, None, None)


@pytest.mark.parametrize("missing", ["X-WC-Webhook-Topic", "X-WC-Webhook-Delivery-ID"])
def test_delivery_meta_requires_topic_and_delivery_id(missing: str) -> None:
    headers = woo_headers(b"{}")
    del headers[missing]
    with pytest.raises(MissingHeader, match=missing) as raised:
        WOOCOMMERCE.delivery_meta(headers, b"")
    assert raised.value.status == 400


@pytest.mark.parametrize("source", [None, "   ", "https://"])
def test_missing_or_empty_source_raises_missing_header(source: str | None) -> None:
    headers = woo_headers(b"{}")
    del headers["X-WC-Webhook-Source"]
    if source is not None:
        headers["X-WC-Webhook-Source"] = source
    with pytest.raises(MissingHeader, match="X-WC-Webhook-Source") as raised:
        WOOCOMMERCE.store_domain(headers, b"")
    assert raised.value.status == 400


def test_missing_signature_raises_signature_missing_with_401() -> None:
    headers = woo_headers(b"{}")
    del headers["X-WC-Webhook-Signature"]
    with pytest.raises(SignatureMissing, match="X-WC-Webhook-Signature") as raised:
        WOOCOMMERCE.signature(headers)
    assert raised.value.status == 401


def test_shopify_headers_name_no_woocommerce_store_or_signature() -> None:
    headers = shopify_headers(b"{}")
    with pytest.raises(SignatureMissing):
        WOOCOMMERCE.signature(headers)
    with pytest.raises(MissingHeader):
        WOOCOMMERCE.store_domain(headers, b"")


# --- signatures ----------------------------------------------------------------------------------


def test_signature_is_base64_hmac_sha256_of_the_raw_file_bytes() -> None:
    body = woo_fixture_bytes("order.created")
    expected = base64.b64encode(hmac.new(WOO_SECRET.encode(), body, hashlib.sha256).digest()).decode()
    assert woo_headers(body)["X-WC-Webhook-Signature"] == expected
    assert WOOCOMMERCE.is_signed_by({}, body, expected, [WOO_SECRET])
    assert not WOOCOMMERCE.is_signed_by({}, body, expected, ["another-secret"])


def test_wire_bytes_escape_slashes_and_only_those_bytes_verify() -> None:
    wire = woo_wire(woo_fixture_json("order.created"))
    assert b'"href":"https:\\/\\/example.com\\/wp-json\\/wc\\/v3\\/orders\\/727"' in wire
    assert json.loads(wire) == woo_fixture_json("order.created")  # the same JSON ...
    signature = sign_base64_hmac_sha256(wire, WOO_SECRET)
    assert WOOCOMMERCE.is_signed_by({}, wire, signature, [WOO_SECRET])
    assert not WOOCOMMERCE.is_signed_by({}, compact(json.loads(wire)), signature, [WOO_SECRET])  # ... other bytes
    assert not WOOCOMMERCE.is_signed_by({}, woo_fixture_bytes("order.created"), signature, [WOO_SECRET])
    assert not WOOCOMMERCE.is_signed_by({}, wire + b"\n", signature, [WOO_SECRET])


def test_rotation_accepts_old_and_new_secret() -> None:
    body = woo_fixture_bytes("order.updated")
    secrets = ("old-secret", "new-secret")
    assert WOOCOMMERCE.is_signed_by({}, body, sign_base64_hmac_sha256(body, "old-secret"), secrets)
    assert WOOCOMMERCE.is_signed_by({}, body, sign_base64_hmac_sha256(body, "new-secret"), secrets)
    assert not WOOCOMMERCE.is_signed_by({}, body, sign_base64_hmac_sha256(body, WOO_SECRET), secrets)


# --- the creation ping ---------------------------------------------------------------------------


def test_the_creation_ping_is_recognised() -> None:
    headers, body = woo_ping(17)
    assert body == b"webhook_id=17"
    assert WOOCOMMERCE.is_ping(headers, body)
    assert WOOCOMMERCE.is_ping({}, b"webhook_id=123456")


@pytest.mark.parametrize("body", [b"webhook_id=", b"webhook_id=17&x=1", b"webhook_id=abc", b" webhook_id=17",
                                  b"webhook_id=17\n", b"Webhook_id=17", b"{}", b""])
def test_only_the_exact_ping_body_is_a_ping(body: bytes) -> None:
    assert not WOOCOMMERCE.is_ping({}, body)


def test_a_ping_body_with_webhook_headers_is_not_a_ping() -> None:
    body = b"webhook_id=17"
    assert not WOOCOMMERCE.is_ping(woo_headers(body), body)
    assert not WOOCOMMERCE.is_ping({"x-wc-webhook-signature": "AAAA"}, body)


def test_an_order_delivery_is_not_a_ping() -> None:
    body = woo_fixture_bytes("order.created")
    assert not WOOCOMMERCE.is_ping(woo_headers(body), body)
    assert not WOOCOMMERCE.is_ping({}, body)


# --- mapping orders ------------------------------------------------------------------------------


def _events(payload: dict[str, Any] | bytes, topic: str) -> list[CanonicalEvent]:
    body = payload if isinstance(payload, bytes) else woo_wire(payload)
    return WOOCOMMERCE.events(envelope(None, topic=topic, platform=Platform.WOOCOMMERCE), body, FakeStoreDirectory())


def _orders(payload: dict[str, Any] | bytes, topic: str = "order.created") -> list[CanonicalOrder]:
    events = _events(payload, topic)
    assert all(isinstance(event, CanonicalOrder) for event in events)
    return cast(list[CanonicalOrder], events)


def test_published_order_created_sample_maps_to_a_canonical_order() -> None:
    [order] = _orders(woo_fixture_bytes("order.created"))
    assert (order.workspace_id, order.store_id, order.platform) == ("ws_a", "st_a", Platform.WOOCOMMERCE)
    assert order.order_id == "727"
    assert order.order_number == "727"
    assert order.email == "john.doe@example.com"
    assert order.phone is None  # "(555) 555-5555": 555 is no US area code, so not a valid number
    assert order.customer_id is None  # customer_id 0: a guest
    assert (order.first_name, order.last_name) == ("John", "Doe")
    assert order.currency == "USD"
    assert order.total_price == Decimal("29.35")  # 6.00 + 12.00 items, 10.00 shipping, 1.35 tax
    assert isinstance(order.total_price, Decimal)
    assert order.total_refunded == Decimal("0.00")
    assert order.net_total == Decimal("29.35")
    assert order.financial_status == "processing"
    # date_created_gmt "2017-03-22T19:28:02" (date_created is the shop's local time, UTC-3)
    assert order.created_at == datetime(2017, 3, 22, 19, 28, 2, tzinfo=UTC)
    assert order.created_at.tzinfo == UTC
    assert order.updated_at == datetime(2017, 3, 22, 19, 28, 8, tzinfo=UTC)
    assert order.cancelled_at is None
    assert order.version.startswith("2017-03-22T19:28:08.000000Z|")
    assert order.version == version_stamp(datetime(2017, 3, 22, 19, 28, 8, tzinfo=UTC), None)
    assert order.landing_site is None and order.referring_site is None
    first, second = order.line_items
    assert (first.product_id, first.sku, first.title, first.quantity, first.price) == (
        "93", None, "Woo Single #1", 2, Decimal("3.00"))
    assert (second.product_id, second.sku, second.title, second.quantity, second.price) == (
        "22", "Bar3", "Ship Your Idea &ndash; Color: Black, Size: M Test", 1, Decimal("12.00"))


def test_published_order_updated_sample_is_a_newer_version_of_the_same_order() -> None:
    [created] = _orders(woo_fixture_bytes("order.created"))
    [updated] = _orders(woo_fixture_bytes("order.updated"), topic="order.updated")
    assert updated.order_id == created.order_id == "727"
    assert updated.financial_status == "completed"
    assert updated.updated_at == datetime(2017, 3, 22, 19, 30, 35, tzinfo=UTC)
    assert updated.created_at == created.created_at
    assert updated.version > created.version
    assert updated.total_price == Decimal("29.35")


@pytest.mark.parametrize("topic", [*WOO_ORDER_TOPICS, "order.restored"])
def test_order_topics_map_the_wire_bytes(topic: str) -> None:
    [order] = _orders(woo_fixture_json("order.updated"), topic=topic)
    assert order.order_id == "727"


def test_refunds_are_listed_negative_and_summed_as_positive() -> None:
    payload = {**woo_fixture_json("order.updated"),
               "refunds": [{"id": 730, "reason": "damaged", "total": "-10.00"},
                           {"id": 731, "reason": "", "total": "-5.35"}]}
    [order] = _orders(payload)
    assert order.refunds == {"730": Decimal("10.00"), "731": Decimal("5.35")}
    assert order.total_refunded == Decimal("15.35")
    assert order.net_total == Decimal("14.00")


def test_a_cancelled_order_is_cancelled_at_its_modification_time() -> None:
    payload = {**woo_fixture_json("order.updated"), "status": "cancelled",
               "date_modified_gmt": "2017-03-23T08:00:00"}
    [order] = _orders(payload, topic="order.updated")
    assert order.financial_status == "cancelled"
    assert order.cancelled_at == datetime(2017, 3, 23, 8, 0, tzinfo=UTC)
    assert order.cancelled_at == order.updated_at


def test_gmt_dates_with_an_explicit_zone_are_converted_not_replaced() -> None:
    payload = {**woo_fixture_json("order.created"), "date_modified_gmt": "2017-03-22T16:28:08-03:00"}
    [order] = _orders(payload)
    assert order.updated_at == datetime(2017, 3, 22, 19, 28, 8, tzinfo=UTC)


def test_a_missing_modification_date_falls_back_to_the_creation_date() -> None:
    payload = {**woo_fixture_json("order.created"), "date_modified_gmt": None}
    [order] = _orders(payload)
    assert order.updated_at == order.created_at == datetime(2017, 3, 22, 19, 28, 2, tzinfo=UTC)


def test_email_and_phone_are_normalised_with_the_billing_country() -> None:
    payload = woo_fixture_json("order.created")
    payload["billing"] = {**payload["billing"], "email": "  John.Doe@Example.COM ", "phone": "(613) 555-0123",
                          "country": "CA"}
    [order] = _orders(payload)
    assert order.email == "john.doe@example.com"
    assert order.phone == "+16135550123"
    payload["billing"] = {**payload["billing"], "phone": "020 7946 0018", "country": "GB"}
    [order] = _orders(payload)
    assert order.phone == "+442079460018"


def test_a_guest_without_contact_details_has_none() -> None:
    payload = woo_fixture_json("order.created")
    payload["billing"] = {"first_name": "", "last_name": "", "email": "", "phone": "", "country": ""}
    [order] = _orders(payload)
    assert (order.email, order.phone, order.first_name, order.last_name) == (None, None, None, None)


def test_a_registered_customer_keeps_their_id() -> None:
    [order] = _orders({**woo_fixture_json("order.created"), "customer_id": 25})
    assert order.customer_id == "25"


def test_line_item_prices_sent_as_json_numbers_keep_their_cents() -> None:
    payload = woo_fixture_json("order.created")
    body = woo_wire(payload).replace(b'"price":12}', b'"price":12.99}').replace(b'"price":3}', b'"price":0.1}')
    assert b'"price":12.99}' in body and b'"price":0.1}' in body
    [order] = _orders(body)
    assert [item.price for item in order.line_items] == [Decimal("0.10"), Decimal("12.99")]


def test_a_number_sent_as_an_integer_is_kept_as_a_string() -> None:
    [order] = _orders({**woo_fixture_json("order.created"), "number": 727})
    assert order.order_number == "727"


@pytest.mark.parametrize("topic", ["product.updated", "coupon.created", "action.woocommerce_new_order",
                                   "order.trashed"])
def test_other_topics_are_not_understood(topic: str) -> None:
    with pytest.raises(PayloadNotUnderstood, match=f"unsupported WooCommerce topic '{topic}'"):
        _orders(b'{"id":727}', topic=topic)


@pytest.mark.parametrize("body", [b"not json", b"{", b"\xff\xfe\x00garbage", b"", b"webhook_id=17"])
def test_non_json_body_is_not_understood(body: bytes) -> None:
    with pytest.raises(PayloadNotUnderstood, match="not valid JSON"):
        _orders(body)


@pytest.mark.parametrize("body", [b"[]", b'"order"', b"42", b"null"])
def test_json_that_is_not_an_object_is_not_understood(body: bytes) -> None:
    with pytest.raises(PayloadNotUnderstood, match="not a JSON object"):
        _orders(body)


@pytest.mark.parametrize("field", ["id", "currency", "total", "date_created_gmt"])
def test_order_without_a_required_field_is_not_understood(field: str) -> None:
    payload = woo_fixture_json("order.created")
    del payload[field]
    with pytest.raises(PayloadNotUnderstood, match=f"not a WooCommerce order: {field}"):
        _orders(payload)


@pytest.mark.parametrize(("field", "value"), [("total", "lots"), ("date_created_gmt", "yesterday"),
                                              ("currency", "dollars"), ("total", "-1.00")])
def test_order_with_an_invalid_field_is_not_understood(field: str, value: str) -> None:
    with pytest.raises(PayloadNotUnderstood, match=field.split("_")[0]):
        _orders({**woo_fixture_json("order.created"), field: value})


def test_a_customer_body_under_an_order_topic_is_not_an_order() -> None:
    with pytest.raises(PayloadNotUnderstood, match="not a WooCommerce order"):
        _orders(woo_fixture_bytes("customer.created"))


def test_published_samples_have_no_refunds_coupons_or_consents_and_name_variants_and_country() -> None:
    [order] = _orders(woo_fixture_bytes("order.created"))
    assert order.refunds == {}
    assert order.discount_codes == ()
    assert order.consents == ()  # WooCommerce core has no marketing consent field
    assert order.country == "US"
    simple, variable = order.line_items
    assert (simple.variant_id, simple.category) == (None, None)  # variation_id 0: a simple product
    assert (variable.variant_id, variable.category) == ("23", None)


def test_coupon_codes_become_discount_codes() -> None:
    payload = {**woo_fixture_json("order.updated"),
               "coupon_lines": [{"id": 321, "code": "summer10", "discount": "2.00", "discount_tax": "0.00"},
                                {"id": 322, "code": "freeship", "discount": "10.00", "discount_tax": "0.00"}]}
    [order] = _orders(payload, topic="order.updated")
    assert order.discount_codes == ("summer10", "freeship")


def test_a_refund_without_an_id_is_not_understood() -> None:
    payload = {**woo_fixture_json("order.updated"), "refunds": [{"reason": "", "total": "-1.00"}]}
    with pytest.raises(PayloadNotUnderstood, match=r"not a WooCommerce order: refunds\.0\.id"):
        _orders(payload)


# --- deletions and customers ---------------------------------------------------------------------


def test_order_deleted_with_only_an_id_is_removed_when_received() -> None:
    [removed] = _events(b'{"id":727}', "order.deleted")
    assert isinstance(removed, OrderRemoved)
    assert (removed.workspace_id, removed.store_id, removed.platform) == ("ws_a", "st_a", Platform.WOOCOMMERCE)
    assert removed.order_id == "727"
    assert removed.removed_at == NOW


def test_order_deleted_with_a_modification_time_is_removed_then() -> None:
    [removed] = _events(woo_fixture_json("order.updated"), "order.deleted")  # a trashed order's full body
    assert isinstance(removed, OrderRemoved)
    assert removed.order_id == "727"
    assert removed.removed_at == datetime(2017, 3, 22, 19, 30, 35, tzinfo=UTC)


@pytest.mark.parametrize("topic", ["order.deleted", "customer.deleted"])
@pytest.mark.parametrize("body", [b"{}", b'{"id":"seven"}', b'{"id":null}'])
def test_a_deletion_without_an_integer_id_is_not_understood(topic: str, body: bytes) -> None:
    with pytest.raises(PayloadNotUnderstood, match=r"not a WooCommerce deleted (order|customer): id"):
        _events(body, topic)


def test_published_customer_created_sample_maps_to_a_customer_record() -> None:
    [customer] = _events(woo_fixture_bytes("customer.created"), "customer.created")
    assert isinstance(customer, CustomerRecord)
    assert (customer.workspace_id, customer.store_id, customer.platform) == ("ws_a", "st_a", Platform.WOOCOMMERCE)
    assert customer.customer_id == "25"
    assert customer.email == "john.doe@example.com"
    assert customer.phone is None  # "(555) 555-5555" is not a valid US number
    assert (customer.first_name, customer.last_name, customer.country) == ("John", "Doe", "US")
    assert customer.created_at == datetime(2017, 3, 21, 19, 9, 28, tzinfo=UTC)  # date_created_gmt
    assert customer.updated_at == datetime(2017, 3, 21, 19, 9, 30, tzinfo=UTC)  # date_modified_gmt
    assert customer.version == "2017-03-21T19:09:30.000000Z|0001-01-01T00:00:00.000000Z"
    assert (customer.tags, customer.consents, customer.deleted) == ((), (), False)


def test_published_customer_updated_sample_is_a_newer_version_with_the_new_name() -> None:
    [created] = _events(woo_fixture_bytes("customer.created"), "customer.created")
    [updated] = _events(woo_fixture_bytes("customer.updated"), "customer.updated")
    assert isinstance(created, CustomerRecord) and isinstance(updated, CustomerRecord)
    assert updated.customer_id == created.customer_id == "25"
    assert (updated.first_name, updated.last_name) == ("James", "Doe")
    assert updated.updated_at == datetime(2017, 3, 21, 19, 12, 28, tzinfo=UTC)
    assert updated.created_at == created.created_at
    assert updated.version > created.version


def test_customer_contact_details_are_normalised_with_the_billing_country() -> None:
    payload = woo_fixture_json("customer.updated")
    payload.update(email=" James.Doe@Example.COM ", date_modified_gmt=None)
    payload["billing"] = {**payload["billing"], "phone": "020 7946 0018", "country": "gb"}
    [customer] = _events(payload, "customer.updated")
    assert isinstance(customer, CustomerRecord)
    assert customer.email == "james.doe@example.com"
    assert customer.phone == "+442079460018"
    assert customer.country == "GB"
    assert customer.updated_at == customer.created_at  # no modification date: the creation date


def test_a_customer_without_an_account_email_falls_back_to_the_billing_email() -> None:
    payload = {**woo_fixture_json("customer.created"), "email": "", "first_name": "", "last_name": ""}
    [customer] = _events(payload, "customer.created")
    assert isinstance(customer, CustomerRecord)
    assert customer.email == "john.doe@example.com"
    assert (customer.first_name, customer.last_name) == ("John", "Doe")


@pytest.mark.parametrize("field", ["id", "date_created_gmt"])
def test_a_customer_without_a_required_field_is_not_understood(field: str) -> None:
    payload = woo_fixture_json("customer.created")
    del payload[field]
    with pytest.raises(PayloadNotUnderstood, match=f"not a WooCommerce customer: {field}"):
        _events(payload, "customer.created")


def test_customer_deleted_is_a_deleted_record_timed_at_arrival() -> None:
    [gone] = _events(b'{"id":25}', "customer.deleted")
    assert isinstance(gone, CustomerRecord)
    assert gone.customer_id == "25"
    assert gone.deleted is True
    assert gone.created_at == gone.updated_at == NOW
    assert gone.version == version_stamp(NOW, None)
    assert (gone.email, gone.phone, gone.first_name) == (None, None, None)
