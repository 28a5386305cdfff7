"""BigCommerce: Standard Webhooks signatures, thin bodies, the order read from the REST v2 API.

Quirks kept here: the body names the store (``producer: stores/{store_hash}``) and the topic
(``scope``); there is no store or topic header. Deliveries are signed per the Standard Webhooks
specification: ``webhook-signature`` holds space-separated ``v1,<base64 HMAC-SHA256>`` entries over
``{webhook-id}.{webhook-timestamp}.{raw body}``, keyed with the app's client secret (the store's
webhook secret), and ``webhook-timestamp`` must be within five minutes of now. Bodies carry only
the order id, so ingestion reads ``GET /v2/orders/{id}`` with the store's API token; that answer's
dates are RFC 2822 strings, amounts 4-decimal strings, and a guest order has ``customer_id`` 0.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crm.adapters.bigcommerce import fetch_order
from crm.connectors.base import (
    DeliveryRejected,
    PayloadNotUnderstood,
    SignatureMissing,
    first_error,
    header,
    json_object,
    unix_seconds,
)
from crm.contact import normalise_email, normalise_phone
from crm.models.canonical import CanonicalEvent
from crm.models.ingest import DeliveryMeta, IngestEnvelope
from crm.models.orders import CanonicalOrder, version_stamp
from crm.models.stores import Platform, Store
from crm.money import Amount, to_money
from crm.ports import StoreDirectory
from crm.stores import normalise_domain

ORDER_SCOPES = frozenset({
    "store/order/created", "store/order/updated", "store/order/statusUpdated", "store/order/refund/created",
})
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
TIMESTAMP_TOLERANCE = timedelta(minutes=5)
_PRODUCER_PREFIX = "stores/"

# (store hash, order id, API token) -> the v2 order, or None when the API answers 404.
OrderFetcher = Callable[[str, int, str], dict[str, Any] | None]


class BodyNotUnderstood(DeliveryRejected):
    """The body does not say which store sent it (400; nothing stored)."""


def _rfc2822(value: object) -> object:
    """BigCommerce's v2 dates ("Tue, 25 Jun 2019 16:15:35 +0000"); blank is absent."""
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            raise ValueError(f"not an RFC 2822 date: {value!r}") from None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed  # "-0000": UTC, zone unknown
    return value


class _Delivery(BaseModel):
    """The thin webhook body."""

    model_config = ConfigDict(extra="ignore")

    # Bounded: the producer becomes a table key (the store lookup) before the signature is checked.
    scope: str = Field(min_length=1, max_length=200)
    producer: str = Field(max_length=255)
    hash: str | None = None
    data: Any = None  # read only by orders(): accepting a delivery needs just the store and the scope


class _BillingAddress(BaseModel):
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    country_iso2: str | None = None


class _Order(BaseModel):
    """The fields of the v2 order the CRM reads; the rest is not kept."""

    model_config = ConfigDict(extra="ignore")

    id: int
    customer_id: int = 0
    date_created: datetime
    date_modified: datetime | None = None
    status: str | None = None
    status_id: int | None = None
    currency_code: str
    total_inc_tax: Amount
    refunded_amount: Amount = Decimal("0")
    billing_address: _BillingAddress = Field(default_factory=_BillingAddress)

    @field_validator("date_created", "date_modified", mode="before")
    @classmethod
    def _dates(cls, value: object) -> object:
        return _rfc2822(value)


def _json_object(raw_body: bytes) -> dict[str, Any] | None:
    try:
        return json_object(raw_body)
    except PayloadNotUnderstood:
        return None


def store_hash_of(producer: str) -> str | None:
    """``stores/{store_hash}`` -> the store hash, normalised like a registered domain."""
    if not producer.startswith(_PRODUCER_PREFIX):
        return None
    store_hash = normalise_domain(producer.removeprefix(_PRODUCER_PREFIX))
    return store_hash or None


def _delivery(raw_body: bytes) -> _Delivery:
    payload = _json_object(raw_body)
    if payload is None:
        raise BodyNotUnderstood("BigCommerce body is not a JSON object")
    try:
        return _Delivery.model_validate(payload)
    except ValidationError as error:
        raise BodyNotUnderstood(f"BigCommerce body is missing {first_error(error)}") from None


def standard_webhooks_signature(webhook_id: str, timestamp: str, raw_body: bytes, secret: str) -> str:
    """``v1,<base64 HMAC-SHA256>`` as a Standard Webhooks sender computes it (tests sign with it)."""
    message = f"{webhook_id}.{timestamp}.".encode() + raw_body
    return "v1," + base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


class BigCommerceConnector:
    platform = Platform.BIGCOMMERCE

    def __init__(self, fetch: OrderFetcher = fetch_order) -> None:
        self._fetch = fetch

    def store_domain(self, headers: Mapping[str, str], raw_body: bytes) -> str:
        """The store hash from the body's ``producer`` (raises BodyNotUnderstood, a 400)."""
        delivery = _delivery(raw_body)
        store_hash = store_hash_of(delivery.producer)
        if store_hash is None:
            raise BodyNotUnderstood(f"BigCommerce producer {delivery.producer!r} is not stores/{{store_hash}}")
        return store_hash

    def signature(self, headers: Mapping[str, str]) -> str:
        for name in (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER):
            if header(headers, name) is None:
                raise SignatureMissing(f"missing {name} header (Standard Webhooks signature)")
        return header(headers, SIGNATURE_HEADER) or ""

    def is_ping(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        return False  # BigCommerce sends no unsigned pings

    def is_signed_by(
        self, headers: Mapping[str, str], raw_body: bytes, signature: str, secrets: Iterable[str]
    ) -> bool:
        """Any ``v1,`` entry of the header matches any secret, compared in constant time."""
        webhook_id = header(headers, ID_HEADER)
        timestamp = header(headers, TIMESTAMP_HEADER)
        if webhook_id is None or timestamp is None:
            return False
        candidates: list[bytes] = []
        for entry in signature.split():
            version, _, value = entry.partition(",")
            if version != "v1":
                continue
            try:
                candidates.append(base64.b64decode(value, validate=True))
            except (binascii.Error, ValueError):
                continue
        message = f"{webhook_id}.{timestamp}.".encode() + raw_body
        matched = False
        for secret in secrets:
            digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
            for candidate in candidates:
                matched |= hmac.compare_digest(digest, candidate)
        return matched

    def is_fresh(self, headers: Mapping[str, str], now: datetime) -> bool:
        """``webhook-timestamp`` (Unix seconds) within five minutes of now, either way: stops replays."""
        sent_at = unix_seconds(header(headers, TIMESTAMP_HEADER))
        return sent_at is not None and abs(sent_at - now) <= TIMESTAMP_TOLERANCE

    def delivery_meta(self, headers: Mapping[str, str], raw_body: bytes) -> DeliveryMeta:
        delivery = _delivery(raw_body)
        delivery_id = header(headers, ID_HEADER) or delivery.hash
        if not delivery_id:
            raise BodyNotUnderstood(f"BigCommerce delivery has neither a {ID_HEADER} header nor a body hash")
        return DeliveryMeta(topic=delivery.scope, delivery_id=delivery_id)

    def events(self, envelope: IngestEnvelope, body: bytes, stores: StoreDirectory) -> list[CanonicalEvent]:
        topic = envelope.meta.topic
        if topic not in ORDER_SCOPES:
            raise PayloadNotUnderstood(f"unsupported BigCommerce scope {topic!r}")
        try:
            delivery = _delivery(body)
        except BodyNotUnderstood as error:
            raise PayloadNotUnderstood(str(error)) from None
        order_id = delivery.data.get("id") if isinstance(delivery.data, dict) else None
        if not isinstance(order_id, int) or isinstance(order_id, bool):
            raise PayloadNotUnderstood("BigCommerce body has no integer data.id")
        store, token = self._store(envelope, delivery, stores)
        payload = self._fetch(store.domain, order_id, token)
        if payload is None:
            raise PayloadNotUnderstood(f"order {order_id} not found in store {store.domain}")
        return [map_order(payload, envelope)]

    def _store(self, envelope: IngestEnvelope, delivery: _Delivery, stores: StoreDirectory) -> tuple[Store, str]:
        """The registered store that sent it (found again by the producer) and its API token."""
        store_hash = store_hash_of(delivery.producer)
        store = stores.store_by_domain(Platform.BIGCOMMERCE, store_hash) if store_hash else None
        if store is None or (store.workspace_id, store.store_id) != (envelope.workspace_id, envelope.store_id):
            raise PayloadNotUnderstood(
                f"BigCommerce store {store_hash!r} is no longer registered as {envelope.store_id}")
        if not store.api_token:
            raise PayloadNotUnderstood(f"BigCommerce store {store.store_id} has no API token")
        return store, store.api_token


# BigCommerce's order statuses (v2 status_id) whose order is revenue (docs/revenue.md): payment taken or
# authorized. 0 Incomplete, 1 Pending, 6 Declined, 7 Awaiting Payment and 12 Manual Verification Required are
# kept as unpaid; 5 Cancelled is cancelled.
PAID_STATUS_IDS = frozenset({2, 3, 4, 8, 9, 10, 11, 13, 14})
PAID_STATUSES = frozenset({"Shipped", "Partially Shipped", "Refunded", "Awaiting Pickup", "Awaiting Shipment",
                           "Completed", "Awaiting Fulfillment", "Disputed", "Partially Refunded"})
# The v2 statuses whose goods left the store (2 Shipped, 10 Completed; 3 Partially Shipped is not yet all).
SHIPPED_STATUS_IDS = frozenset({2, 10})
SHIPPED_STATUSES = frozenset({"Shipped", "Completed"})


def _fulfillment_status(order: _Order) -> str | None:
    shipped = (order.status_id in SHIPPED_STATUS_IDS if order.status_id is not None
               else order.status in SHIPPED_STATUSES)
    return "fulfilled" if shipped else None


def _paid(order: _Order) -> bool:
    if order.status_id is not None:
        return order.status_id in PAID_STATUS_IDS
    return order.status is None or order.status in PAID_STATUSES


def _canonical(order: _Order, envelope: IngestEnvelope) -> CanonicalOrder:
    billing = order.billing_address
    updated_at = order.date_modified or order.date_created
    return CanonicalOrder(
        workspace_id=envelope.workspace_id,
        store_id=envelope.store_id,
        platform=Platform.BIGCOMMERCE,
        order_id=str(order.id),
        order_number=str(order.id),
        email=normalise_email(billing.email),
        phone=normalise_phone(billing.phone, billing.country_iso2 or None),
        customer_id=str(order.customer_id) if order.customer_id else None,  # 0 is a guest
        first_name=billing.first_name or None,
        last_name=billing.last_name or None,
        currency=order.currency_code.upper(),
        total_price=to_money(order.total_inc_tax),
        total_refunded=to_money(order.refunded_amount),
        financial_status=order.status,
        paid=_paid(order),
        created_at=order.date_created,
        updated_at=updated_at,
        cancelled_at=updated_at if order.status == "Cancelled" else None,
        version=version_stamp(updated_at, None),
        fulfillment_status=_fulfillment_status(order),
    )


def map_order(payload: Mapping[str, Any], envelope: IngestEnvelope) -> CanonicalOrder:
    """Map a v2 order response (raises PayloadNotUnderstood)."""
    try:
        return _canonical(_Order.model_validate(dict(payload)), envelope)
    except ValidationError as error:
        raise PayloadNotUnderstood(f"not a BigCommerce v2 order: {first_error(error)}") from None
    except (ValueError, ArithmeticError) as error:
        raise PayloadNotUnderstood(f"not a BigCommerce v2 order: {error}") from None


BIGCOMMERCE = BigCommerceConnector()
