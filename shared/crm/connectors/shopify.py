"""Shopify: X-Shopify-* headers, base64 HMAC-SHA256 of the raw body, REST-shaped payloads.

Quirks kept here: header names arrive in any case (HTTP/2 lowercases them); ids exceed 2^53,
so they are parsed as integers and kept as strings; amounts are decimal strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from crm.connectors.base import (
    BodySignedConnector,
    MissingHeader,
    header,
    required_header,
)
from crm.contact import normalise_email, normalise_phone
from crm.models.ingest import DeliveryMeta, IngestEnvelope
from crm.models.orders import CanonicalOrder, LineItem, version_stamp
from crm.models.stores import Platform
from crm.money import to_money

ORDER_TOPICS = frozenset({"orders/create", "orders/updated"})


class _Transaction(BaseModel):
    kind: str | None = None
    status: str | None = None
    amount: Decimal = Decimal("0")


class _Refund(BaseModel):
    transactions: list[_Transaction] = Field(default_factory=list)


class _Address(BaseModel):
    country_code: str | None = None


class _Customer(BaseModel):
    id: int | None = None
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    default_address: _Address | None = None


class _LineItem(BaseModel):
    product_id: int | None = None
    sku: str | None = None
    title: str = ""
    quantity: int = 0
    price: Decimal = Decimal("0")


class _Order(BaseModel):
    """The fields of Shopify's order payload the CRM reads; the rest stays in the archive."""

    model_config = ConfigDict(extra="ignore")

    id: int
    name: str | None = None
    email: str | None = None
    contact_email: str | None = None
    phone: str | None = None
    currency: str
    total_price: Decimal
    financial_status: str | None = None
    created_at: AwareDatetime
    updated_at: AwareDatetime | None = None
    cancelled_at: AwareDatetime | None = None
    landing_site: str | None = None
    referring_site: str | None = None
    customer: _Customer | None = None
    billing_address: _Address | None = None
    refunds: list[_Refund] = Field(default_factory=list)
    line_items: list[_LineItem] = Field(default_factory=list)

    def refunded(self) -> Decimal:
        return sum(
            (
                t.amount
                for r in self.refunds
                for t in r.transactions
                if t.kind == "refund" and t.status in (None, "success")
            ),
            Decimal("0"),
        )


class ShopifyConnector(BodySignedConnector[_Order]):
    platform = Platform.SHOPIFY
    name = "Shopify"
    signature_header = "X-Shopify-Hmac-Sha256"
    order_topics = ORDER_TOPICS
    order_payload = _Order

    def store_domain(self, headers: Mapping[str, str], raw_body: bytes) -> str:
        return required_header(headers, "X-Shopify-Shop-Domain").lower()

    def delivery_meta(self, headers: Mapping[str, str], raw_body: bytes) -> DeliveryMeta:
        try:
            return DeliveryMeta(
                topic=required_header(headers, "X-Shopify-Topic"),
                delivery_id=required_header(headers, "X-Shopify-Webhook-Id"),
                event_id=header(headers, "X-Shopify-Event-Id"),
                triggered_at=header(headers, "X-Shopify-Triggered-At"),
                api_version=header(headers, "X-Shopify-API-Version"),
            )
        except ValidationError as error:
            raise MissingHeader(f"a valid X-Shopify-Triggered-At ({error.errors()[0]['msg']})") from None

    def canonical(self, order: _Order, envelope: IngestEnvelope) -> CanonicalOrder:
        return _canonical(order, envelope)


def _canonical(order: _Order, envelope: IngestEnvelope) -> CanonicalOrder:
    customer = order.customer or _Customer()
    country = (order.billing_address or customer.default_address or _Address()).country_code
    updated_at = order.updated_at or order.created_at
    return CanonicalOrder(
        workspace_id=envelope.workspace_id,
        store_id=envelope.store_id,
        platform=Platform.SHOPIFY,
        order_id=str(order.id),
        order_number=order.name,
        email=normalise_email(order.email or order.contact_email or customer.email),
        phone=normalise_phone(order.phone or customer.phone, country),
        customer_id=str(customer.id) if customer.id is not None else None,
        first_name=customer.first_name,
        last_name=customer.last_name,
        currency=order.currency.upper(),
        total_price=to_money(order.total_price),
        total_refunded=to_money(order.refunded()),
        financial_status=order.financial_status,
        created_at=order.created_at,
        updated_at=updated_at,
        cancelled_at=order.cancelled_at,
        version=version_stamp(updated_at, envelope.meta.triggered_at),
        landing_site=order.landing_site,
        referring_site=order.referring_site,
        line_items=tuple(
            LineItem(
                product_id=str(item.product_id) if item.product_id is not None else None,
                sku=item.sku or None,
                title=item.title,
                quantity=item.quantity,
                price=to_money(item.price),
            )
            for item in order.line_items
        ),
    )


SHOPIFY = ShopifyConnector()
