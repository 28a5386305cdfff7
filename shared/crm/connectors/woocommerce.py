"""WooCommerce: X-WC-Webhook-* headers, base64 HMAC-SHA256 of the raw body, REST v3 order JSON.

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

from pydantic import BaseModel, ConfigDict, Field, field_validator

from crm.connectors.base import (
    BodySignedConnector,
    MissingHeader,
    required_header,
)
from crm.contact import normalise_email, normalise_phone
from crm.models.ingest import DeliveryMeta, IngestEnvelope
from crm.models.orders import CanonicalOrder, LineItem, version_stamp
from crm.models.stores import Platform
from crm.money import to_money
from crm.stores import normalise_domain

ORDER_TOPICS = frozenset({"order.created", "order.updated", "order.restored"})

SOURCE_HEADER = "X-WC-Webhook-Source"
SIGNATURE_HEADER = "X-WC-Webhook-Signature"
_WC_HEADER_PREFIX = "x-wc-webhook-"
# WC_Webhook::deliver_ping(): 'body' => 'webhook_id=' . $this->get_id(), nothing else.
_PING_BODY = re.compile(rb"webhook_id=[0-9]+")


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


class _Refund(BaseModel):
    total: Decimal = Decimal("0")


class _LineItem(BaseModel):
    product_id: int | None = None
    sku: str | None = None
    name: str = ""
    quantity: int = 0
    price: Decimal = Decimal("0")


class _Order(BaseModel):
    """The fields of WooCommerce's REST v3 order the CRM reads; the rest stays in the archive."""

    model_config = ConfigDict(extra="ignore")

    id: int
    number: str | int | None = None
    status: str | None = None
    currency: str
    total: Decimal
    customer_id: int = 0
    date_created_gmt: datetime
    date_modified_gmt: datetime | None = None
    billing: _Billing = Field(default_factory=_Billing)
    refunds: list[_Refund] = Field(default_factory=list)
    line_items: list[_LineItem] = Field(default_factory=list)

    @field_validator("date_created_gmt", "date_modified_gmt")
    @classmethod
    def _gmt(cls, value: datetime | None) -> datetime | None:
        return _utc(value)

    def refunded(self) -> Decimal:
        """Refunds are listed as negative amounts; what was given back is their size."""
        return sum((abs(refund.total) for refund in self.refunds), Decimal("0"))


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
        phone=normalise_phone(billing.phone, billing.country or None),
        customer_id=str(order.customer_id) if order.customer_id else None,  # 0 is a guest
        first_name=billing.first_name or None,
        last_name=billing.last_name or None,
        currency=order.currency.upper(),
        total_price=to_money(order.total),
        total_refunded=to_money(order.refunded()),
        financial_status=order.status,
        created_at=order.date_created_gmt,
        updated_at=updated_at,
        cancelled_at=updated_at if order.status == "cancelled" else None,
        version=version_stamp(updated_at, None),
        line_items=tuple(
            LineItem(
                product_id=str(item.product_id) if item.product_id else None,  # 0: the product is gone
                sku=item.sku or None,
                title=item.name,
                quantity=item.quantity,
                price=to_money(item.price),
            )
            for item in order.line_items
        ),
    )


WOOCOMMERCE = WooCommerceConnector()
