"""WooCommerce: X-WC-Webhook-* headers, base64 HMAC-SHA256 of the raw body, REST v3 order JSON.

Topics: ``order.created``/``updated``/``restored`` carry the full order; ``order.deleted`` and
``customer.deleted`` carry only ``{"id": N}``; ``customer.created``/``updated`` carry the REST v3 customer.

Quirks kept here: the store names itself by its home URL (X-WC-Webhook-Source, e.g.
``https://shop.example/``); the body is PHP's ``wp_json_encode`` (slashes escaped as ``\\/``), so only
the raw bytes verify; ``*_gmt`` timestamps are naive strings in UTC; refunds are listed with
negative totals; a guest order has ``customer_id`` 0; line item prices may be JSON numbers. When a
webhook is created WooCommerce posts an unsigned form body ``webhook_id=<id>`` with no X-WC-* headers
and expects exactly 200. No timestamp, event id or API-version header is sent, and the delivery id is
a per-second hash, so an order's ``date_modified_gmt`` is its version.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crm.connectors.base import (
    BodySignedConnector,
    MissingHeader,
    PayloadNotUnderstood,
    first_error,
    json_object,
    required_header,
)
from crm.contact import normalise_email, normalise_phone
from crm.models.canonical import CanonicalEvent, CustomerRecord, OrderRemoved
from crm.models.ingest import DeliveryMeta, IngestEnvelope
from crm.models.orders import CanonicalOrder, LineItem, version_stamp
from crm.models.stores import Platform
from crm.money import Amount, to_money
from crm.ports import StoreDirectory
from crm.stores import normalise_domain

ORDER_TOPICS = frozenset({"order.created", "order.updated", "order.restored"})
CUSTOMER_TOPICS = frozenset({"customer.created", "customer.updated"})
ORDER_DELETED = "order.deleted"
CUSTOMER_DELETED = "customer.deleted"

SOURCE_HEADER = "X-WC-Webhook-Source"
SIGNATURE_HEADER = "X-WC-Webhook-Signature"
_WC_HEADER_PREFIX = "x-wc-webhook-"
# WC_Webhook::deliver_ping(): 'body' => 'webhook_id=' . $this->get_id(), nothing else.
_PING_BODY = re.compile(rb"webhook_id=[0-9]+")
# The order statuses whose order is revenue (docs/revenue.md): payment received. pending (awaiting payment),
# on-hold (awaiting confirmation of a manual payment), failed, checkout-draft and trash are kept as unpaid;
# cancelled is cancelled.
PAID_STATUSES = frozenset({"processing", "completed", "refunded"})
FULFILLED = "fulfilled"  # the canonical fulfillment_status (crm.outbox publishes OrderFulfilled on it)


def _utc(value: datetime | None) -> datetime | None:
    """WooCommerce's *_gmt fields carry no zone but are UTC; an explicit zone is honoured."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _Billing(BaseModel):
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    country: str | None = None

    @field_validator("country")
    @classmethod
    def _iso_code(cls, value: str | None) -> str | None:
        """ISO 3166 alpha-2 as phonenumbers expects it; blank (no address yet) is absent."""
        return (value.strip().upper() or None) if value else None


class _Refund(BaseModel):
    id: int
    total: Amount = Decimal("0")


class _CouponLine(BaseModel):
    code: str = ""


class _LineItem(BaseModel):
    product_id: int | None = None
    variation_id: int = 0
    sku: str | None = None
    name: str = ""
    quantity: int = 0
    price: Amount = Decimal("0")


class _Order(BaseModel):
    """The fields of WooCommerce's REST v3 order the CRM reads; the rest stays in the archive."""

    model_config = ConfigDict(extra="ignore")

    id: int
    number: str | int | None = None
    status: str | None = None
    currency: str
    total: Amount
    customer_id: int = 0
    date_created_gmt: datetime
    date_modified_gmt: datetime | None = None
    billing: _Billing = Field(default_factory=_Billing)
    refunds: list[_Refund] = Field(default_factory=list)
    line_items: list[_LineItem] = Field(default_factory=list)
    coupon_lines: list[_CouponLine] = Field(default_factory=list)

    @field_validator("date_created_gmt", "date_modified_gmt")
    @classmethod
    def _gmt(cls, value: datetime | None) -> datetime | None:
        return _utc(value)

    def refunds_by_id(self) -> dict[str, Decimal]:
        """Refunds are listed as negative amounts; what was given back is their size."""
        return {str(refund.id): to_money(abs(refund.total)) for refund in self.refunds}


class _Customer(BaseModel):
    """The fields of WooCommerce's REST v3 customer the CRM reads."""

    model_config = ConfigDict(extra="ignore")

    id: int
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    date_created_gmt: datetime
    date_modified_gmt: datetime | None = None
    billing: _Billing = Field(default_factory=_Billing)

    @field_validator("date_created_gmt", "date_modified_gmt")
    @classmethod
    def _gmt(cls, value: datetime | None) -> datetime | None:
        return _utc(value)


class _Deleted(BaseModel):
    """What a deletion sends: WC_Webhook::build_payload() gives only the id once the resource is gone; a
    trashed order may still carry its full body, whose modification time is then the removal time."""

    model_config = ConfigDict(extra="ignore")

    id: int
    date_modified_gmt: datetime | None = None

    @field_validator("date_modified_gmt")
    @classmethod
    def _gmt(cls, value: datetime | None) -> datetime | None:
        return _utc(value)


Payload = TypeVar("Payload", bound=BaseModel)


def _parse(model: type[Payload], body: bytes, what: str) -> Payload:
    try:
        return model.model_validate(json_object(body))
    except ValidationError as error:
        raise PayloadNotUnderstood(f"not a WooCommerce {what}: {first_error(error)}") from None
    except (ValueError, ArithmeticError) as error:
        raise PayloadNotUnderstood(f"not a WooCommerce {what}: {error}") from None


class WooCommerceConnector(BodySignedConnector[_Order]):
    platform = Platform.WOOCOMMERCE
    name = "WooCommerce"
    signature_header = SIGNATURE_HEADER
    order_topics = ORDER_TOPICS
    order_payload = _Order

    def store_domain(self, headers: Mapping[str, str], raw_body: bytes) -> str:
        domain = normalise_domain(required_header(headers, SOURCE_HEADER))
        if not domain:
            raise MissingHeader(f"a valid {SOURCE_HEADER} (the store's home URL)")
        return domain

    def is_ping(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        """The creation ping: exactly ``webhook_id=<digits>`` and no X-WC-Webhook-* header at all."""
        if any(name.lower().startswith(_WC_HEADER_PREFIX) for name in headers):
            return False
        return _PING_BODY.fullmatch(raw_body) is not None

    def delivery_meta(self, headers: Mapping[str, str], raw_body: bytes) -> DeliveryMeta:
        return DeliveryMeta(
            topic=required_header(headers, "X-WC-Webhook-Topic"),
            delivery_id=required_header(headers, "X-WC-Webhook-Delivery-ID"),
        )

    def events(self, envelope: IngestEnvelope, body: bytes, stores: StoreDirectory) -> list[CanonicalEvent]:
        topic = envelope.meta.topic
        if topic in ORDER_TOPICS:
            return super().events(envelope, body, stores)
        if topic == ORDER_DELETED:
            deleted = _parse(_Deleted, body, "deleted order")
            return [OrderRemoved(
                workspace_id=envelope.workspace_id, store_id=envelope.store_id, platform=Platform.WOOCOMMERCE,
                order_id=str(deleted.id), removed_at=deleted.date_modified_gmt or envelope.received_at,
            )]
        if topic in CUSTOMER_TOPICS:
            return [_customer(_parse(_Customer, body, "customer"), envelope)]
        if topic == CUSTOMER_DELETED:
            gone = _parse(_Deleted, body, "deleted customer")
            # The body has no dates: the delivery's arrival is the best time we know for the deletion.
            return [CustomerRecord(
                workspace_id=envelope.workspace_id, store_id=envelope.store_id, platform=Platform.WOOCOMMERCE,
                customer_id=str(gone.id), created_at=envelope.received_at, updated_at=envelope.received_at,
                version=version_stamp(envelope.received_at, None), deleted=True,
            )]
        raise PayloadNotUnderstood(f"unsupported WooCommerce topic {topic!r}")

    def canonical(self, order: _Order, envelope: IngestEnvelope) -> CanonicalOrder:
        return _canonical(order, envelope)


def _canonical(order: _Order, envelope: IngestEnvelope) -> CanonicalOrder:
    billing = order.billing
    updated_at = order.date_modified_gmt or order.date_created_gmt
    return CanonicalOrder(
        workspace_id=envelope.workspace_id,
        store_id=envelope.store_id,
        platform=Platform.WOOCOMMERCE,
        order_id=str(order.id),
        order_number=None if order.number is None else str(order.number),
        email=normalise_email(billing.email),
        phone=normalise_phone(billing.phone, billing.country),
        customer_id=str(order.customer_id) if order.customer_id else None,  # 0 is a guest
        first_name=billing.first_name or None,
        last_name=billing.last_name or None,
        currency=order.currency.upper(),
        total_price=to_money(order.total),
        refunds=order.refunds_by_id(),
        financial_status=order.status,
        paid=order.status is None or order.status in PAID_STATUSES,
        created_at=order.date_created_gmt,
        updated_at=updated_at,
        cancelled_at=updated_at if order.status == "cancelled" else None,
        version=version_stamp(updated_at, None),
        line_items=tuple(
            LineItem(
                product_id=str(item.product_id) if item.product_id else None,  # 0: the product is gone
                variant_id=str(item.variation_id) if item.variation_id else None,  # 0: a simple product
                sku=item.sku or None,
                title=item.name,
                quantity=item.quantity,
                price=to_money(item.price),
            )
            for item in order.line_items
        ),
        discount_codes=tuple(coupon.code for coupon in order.coupon_lines if coupon.code),
        # WooCommerce has no shipping state of its own: "completed" is the merchant's "fulfilled and done".
        fulfillment_status=FULFILLED if order.status == "completed" else None,
        country=billing.country,
        # No consents: WooCommerce core has no marketing-consent field (plugins keep their own in meta_data).
    )


def _customer(customer: _Customer, envelope: IngestEnvelope) -> CustomerRecord:
    billing = customer.billing
    updated_at = customer.date_modified_gmt or customer.date_created_gmt
    return CustomerRecord(
        workspace_id=envelope.workspace_id,
        store_id=envelope.store_id,
        platform=Platform.WOOCOMMERCE,
        customer_id=str(customer.id),
        # The account's own email is the login; the billing email is only a fallback for old accounts.
        email=normalise_email(customer.email) or normalise_email(billing.email),
        phone=normalise_phone(billing.phone, billing.country),
        first_name=customer.first_name or billing.first_name or None,
        last_name=customer.last_name or billing.last_name or None,
        country=billing.country,
        created_at=customer.date_created_gmt,
        updated_at=updated_at,
        version=version_stamp(updated_at, None),
    )


WOOCOMMERCE = WooCommerceConnector()
