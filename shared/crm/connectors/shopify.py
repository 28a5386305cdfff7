"""Shopify: X-Shopify-* headers, base64 HMAC-SHA256 of the raw body, REST-shaped payloads.

Quirks kept here: header names arrive in any case (HTTP/2 lowercases them); ids exceed 2^53,
so they are parsed as integers and kept as strings; amounts are decimal strings. The payload
models are in crm.connectors.shopify_payloads; this module maps each topic family to canonical events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from crm.clock import as_utc
from crm.connectors.base import (
    BodySignedConnector,
    MissingHeader,
    TopicMapper,
    header,
    required_header,
)
from crm.connectors.shopify_payloads import (
    Address,
    Cart,
    Checkout,
    ComplianceCustomer,
    Customer,
    CustomerPayload,
    CustomersDataRequest,
    CustomersRedact,
    Fulfillment,
    LineItem,
    MarketingConsent,
    NoteAttribute,
    Order,
    RefundPayload,
    ShopRedact,
    is_paid,
)
from crm.contact import normalise_email, normalise_phone
from crm.models.canonical import (
    ActivityEvent,
    ActivityType,
    CanonicalEvent,
    ComplianceKind,
    ComplianceRequest,
    CustomerRecord,
    ProductRef,
    RefundRecord,
)
from crm.models.consent import Channel, Consent, ConsentState
from crm.models.ingest import DeliveryMeta, IngestEnvelope
from crm.models.orders import CanonicalOrder, version_stamp
from crm.models.orders import LineItem as CanonicalLineItem
from crm.models.stores import Platform
from crm.money import to_money

ORDER_TOPICS = frozenset({"orders/create", "orders/updated", "orders/paid", "orders/cancelled", "orders/fulfilled"})

# The cart attribute our storefront snippet sets, so that checkouts and orders name the browser that made them.
ANONYMOUS_ID_ATTRIBUTE = "crm_anonymous_id"

# Shopify's marketing states onto the CRM's three.
_CONSENT_STATES = {
    "subscribed": ConsentState.SUBSCRIBED,
    "unsubscribed": ConsentState.UNSUBSCRIBED,
    "not_subscribed": ConsentState.NOT_SUBSCRIBED,
    # Double opt-in not confirmed yet: the shopper has not agreed to anything so far.
    "pending": ConsentState.NOT_SUBSCRIBED,
    # The shopper's data was erased at their request: the safe reading is "never message them".
    "redacted": ConsentState.UNSUBSCRIBED,
    # The address bounces; nobody agreed to anything through it.
    "invalid": ConsentState.NOT_SUBSCRIBED,
}


class ShopifyConnector(BodySignedConnector[Order]):
    platform = Platform.SHOPIFY
    name = "Shopify"
    signature_header = "X-Shopify-Hmac-Sha256"
    order_topics = ORDER_TOPICS
    order_payload = Order

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

    def canonical(self, order: Order, envelope: IngestEnvelope) -> CanonicalOrder:
        return _canonical_order(order, envelope)

    def mappers(self) -> Mapping[str, TopicMapper]:
        return {**super().mappers(), **_MAPPERS}


# --- orders --------------------------------------------------------------------------------------


def _canonical_order(order: Order, envelope: IngestEnvelope) -> CanonicalOrder:
    customer = order.customer or Customer()
    country = _country(order.billing_address, order.shipping_address, customer.default_address)
    updated_at = order.updated_at or order.created_at
    currency, total = order.shop_total()
    return CanonicalOrder(
        workspace_id=envelope.workspace_id,
        store_id=envelope.store_id,
        platform=Platform.SHOPIFY,
        order_id=str(order.id),
        order_number=order.name,
        email=normalise_email(order.email or order.contact_email or customer.email),
        phone=normalise_phone(order.phone or customer.phone, country),
        customer_id=_id(customer.id),
        first_name=customer.first_name,
        last_name=customer.last_name,
        currency=currency.upper(),
        total_price=to_money(total),
        refunds={str(refund.id): to_money(refund.amount()) for refund in order.refunds},
        financial_status=order.financial_status,
        paid=is_paid(order.financial_status),
        created_at=order.created_at,
        updated_at=updated_at,
        cancelled_at=order.cancelled_at,
        version=version_stamp(updated_at, envelope.meta.triggered_at),
        landing_site=order.landing_site,
        referring_site=order.referring_site,
        line_items=tuple(
            CanonicalLineItem(
                product_id=_id(item.product_id),
                variant_id=_id(item.variant_id),
                sku=item.sku or None,
                title=item.title or "",
                category=item.product_type or None,
                quantity=item.quantity,
                price=to_money(item.price),
            )
            for item in order.line_items
        ),
        discount_codes=tuple(code.code for code in order.discount_codes if code.code),
        fulfillment_status=order.fulfillment_status,
        cart_token=order.cart_token or None,
        checkout_token=order.checkout_token or None,
        anonymous_id=_anonymous_id(order.note_attributes),
        country=country,
        consents=_consents(
            customer, source=_source(envelope), updated_at=updated_at,
            accepts_email=order.buyer_accepts_marketing, accepted_at=order.created_at,
        ),
    )


def _refund(payload: dict[str, Any], envelope: IngestEnvelope) -> list[CanonicalEvent]:
    refund = RefundPayload.model_validate(payload)
    return [RefundRecord(
        workspace_id=envelope.workspace_id, store_id=envelope.store_id, platform=Platform.SHOPIFY,
        order_id=str(refund.order_id), refund_id=str(refund.id), amount=to_money(refund.amount()),
        created_at=refund.created_at,
    )]


# --- customers -----------------------------------------------------------------------------------


def _customer(payload: dict[str, Any], envelope: IngestEnvelope) -> list[CanonicalEvent]:
    return [_customer_record(CustomerPayload.model_validate(payload), envelope, deleted=False)]


def _deleted_customer(payload: dict[str, Any], envelope: IngestEnvelope) -> list[CanonicalEvent]:
    return [_customer_record(CustomerPayload.model_validate(payload), envelope, deleted=True)]


def _customer_record(customer: CustomerPayload, envelope: IngestEnvelope, *, deleted: bool) -> CustomerRecord:
    # customers/delete carries no timestamps: the deletion happened when Shopify fired the webhook.
    updated_at = customer.updated_at or _delivered_at(envelope)
    country = _country(customer.default_address)
    return CustomerRecord(
        workspace_id=envelope.workspace_id,
        store_id=envelope.store_id,
        platform=Platform.SHOPIFY,
        customer_id=str(customer.id),
        email=normalise_email(customer.email),
        phone=normalise_phone(customer.phone, country),
        first_name=customer.first_name or None,
        last_name=customer.last_name or None,
        country=country,
        tags=tuple(tag.strip() for tag in (customer.tags or "").split(",") if tag.strip()),
        consents=_consents(customer, source=_source(envelope), updated_at=updated_at),
        created_at=customer.created_at or updated_at,
        updated_at=updated_at,
        version=version_stamp(updated_at, envelope.meta.triggered_at),
        deleted=deleted,
    )


# --- storefront activity -------------------------------------------------------------------------


def _checkout(kind: ActivityType) -> TopicMapper:
    def events(payload: dict[str, Any], envelope: IngestEnvelope) -> list[CanonicalEvent]:
        checkout = Checkout.model_validate(payload)
        customer = checkout.customer or Customer()
        country = _country(checkout.billing_address, checkout.shipping_address, customer.default_address)
        occurred_at = checkout.updated_at or checkout.created_at
        names = checkout.billing_address or Address()
        return [ActivityEvent(
            workspace_id=envelope.workspace_id,
            store_id=envelope.store_id,
            platform=Platform.SHOPIFY,
            # A re-delivery of the same state is the same event; each update is a new one. The type keeps
            # checkouts/create and the checkouts/update Shopify fires in the same second apart.
            event_id=f"{kind.value}:{checkout.token}:{_stamp(occurred_at)}",
            type=kind,
            occurred_at=occurred_at,
            anonymous_id=_anonymous_id(checkout.note_attributes),
            email=normalise_email(checkout.email or customer.email),
            phone=normalise_phone(checkout.phone or checkout.sms_marketing_phone or customer.phone, country),
            customer_id=_id(customer.id),
            first_name=customer.first_name or names.first_name or None,
            last_name=customer.last_name or names.last_name or None,
            cart_token=checkout.cart_token or None,
            checkout_token=checkout.token,
            url=checkout.abandoned_checkout_url or None,
            recovery_url=checkout.abandoned_checkout_url or None,
            products=_products(checkout.line_items),
            value=None if checkout.total_price is None else to_money(checkout.total_price),
            currency=checkout.currency.upper() if checkout.currency else None,
            consents=_consents(
                customer, source=_source(envelope), updated_at=occurred_at,
                accepts_email=checkout.buyer_accepts_marketing,
                accepts_sms=checkout.buyer_accepts_sms_marketing, accepted_at=occurred_at,
            ),
        )]

    return TopicMapper("checkout", events)


def _cart(payload: dict[str, Any], envelope: IngestEnvelope) -> list[CanonicalEvent]:
    cart = Cart.model_validate(payload)
    currencies = {
        line.line_price_set.shop_money.currency_code.upper()
        for line in cart.line_items
        if line.line_price_set and line.line_price_set.shop_money and line.line_price_set.shop_money.currency_code
    }
    return [ActivityEvent(
        workspace_id=envelope.workspace_id,
        store_id=envelope.store_id,
        platform=Platform.SHOPIFY,
        event_id=f"{ActivityType.CART_UPDATED.value}:{cart.token}:{_stamp(cart.updated_at)}",
        type=ActivityType.CART_UPDATED,
        occurred_at=cart.updated_at,
        cart_token=cart.token,
        products=_products(cart.line_items),
        value=to_money(sum((_line_total(line) for line in cart.line_items), Decimal("0"))),
        # A cart names no currency of its own; its lines' shop money does, when they agree.
        currency=currencies.pop() if len(currencies) == 1 else None,
    )]


def _fulfillment(payload: dict[str, Any], envelope: IngestEnvelope) -> list[CanonicalEvent]:
    fulfillment = Fulfillment.model_validate(payload)
    occurred_at = fulfillment.created_at or fulfillment.updated_at
    assert occurred_at is not None  # the payload model requires one of them
    return [ActivityEvent(
        workspace_id=envelope.workspace_id,
        store_id=envelope.store_id,
        platform=Platform.SHOPIFY,
        event_id=f"fulfillment:{fulfillment.id}",
        type=ActivityType.ORDER_FULFILLED,
        occurred_at=occurred_at,
        email=normalise_email(fulfillment.email),
        order_id=str(fulfillment.order_id),
        products=_products(fulfillment.line_items),
    )]


# --- compliance ----------------------------------------------------------------------------------


def _data_request(payload: dict[str, Any], envelope: IngestEnvelope) -> list[CanonicalEvent]:
    request = CustomersDataRequest.model_validate(payload)
    request_id = str(request.data_request.id) if request.data_request else envelope.meta.delivery_id
    return [_compliance(ComplianceKind.CUSTOMER_DATA_REQUEST, request_id, request.customer,
                        request.orders_requested, envelope)]


def _customer_redact(payload: dict[str, Any], envelope: IngestEnvelope) -> list[CanonicalEvent]:
    request = CustomersRedact.model_validate(payload)
    return [_compliance(ComplianceKind.CUSTOMER_REDACT, envelope.meta.delivery_id, request.customer,
                        request.orders_to_redact, envelope)]


def _shop_redact(payload: dict[str, Any], envelope: IngestEnvelope) -> list[CanonicalEvent]:
    ShopRedact.model_validate(payload)
    return [_compliance(ComplianceKind.SHOP_REDACT, envelope.meta.delivery_id, ComplianceCustomer(), [], envelope)]


def _compliance(
    kind: ComplianceKind, request_id: str, customer: ComplianceCustomer, order_ids: Iterable[int],
    envelope: IngestEnvelope,
) -> ComplianceRequest:
    return ComplianceRequest(
        workspace_id=envelope.workspace_id,
        store_id=envelope.store_id,
        platform=Platform.SHOPIFY,
        request=kind,
        request_id=request_id,
        customer_id=_id(customer.id),
        email=normalise_email(customer.email),
        # Compliance payloads carry no country: only a number already in international form survives.
        phone=normalise_phone(customer.phone),
        order_ids=tuple(str(order_id) for order_id in order_ids),
        requested_at=_delivered_at(envelope),
    )


# --- shared pieces -------------------------------------------------------------------------------


def _id(value: int | None) -> str | None:
    return None if value is None else str(value)


def _source(envelope: IngestEnvelope) -> str:
    return f"shopify:{envelope.meta.topic}"


def _delivered_at(envelope: IngestEnvelope) -> datetime:
    return envelope.meta.triggered_at or envelope.received_at


def _stamp(moment: datetime) -> str:
    return as_utc(moment).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _country(*addresses: Address | None) -> str | None:
    """The first address that names a country (callers pass billing, shipping, then the customer's default)."""
    for address in addresses:
        if address is not None and address.country_code:
            return address.country_code.upper()
    return None


def _anonymous_id(attributes: Iterable[NoteAttribute]) -> str | None:
    for attribute in attributes:
        if attribute.name == ANONYMOUS_ID_ATTRIBUTE and isinstance(attribute.value, str) and attribute.value.strip():
            return attribute.value.strip()
    return None


def _products(items: Iterable[LineItem]) -> tuple[ProductRef, ...]:
    return tuple(
        ProductRef(
            product_id=_id(item.product_id),
            variant_id=_id(item.variant_id),
            sku=item.sku or None,
            title=item.title or None,
            category=item.product_type or None,
            price=to_money(item.price),
            quantity=item.quantity,
            image_url=item.picture(),
        )
        for item in items
    )


def _line_total(item: LineItem) -> Decimal:
    return item.line_price if item.line_price is not None else item.price * item.quantity


def _consents(
    customer: Customer,
    *,
    source: str,
    updated_at: datetime,
    accepts_email: bool = False,
    accepts_sms: bool = False,
    accepted_at: datetime | None = None,
) -> tuple[Consent, ...]:
    """The customer's consent objects; without one, a ticked "accepts marketing" box at checkout is a
    subscription at ``accepted_at``. An unticked box is no statement at all: the shopper may have
    subscribed elsewhere."""
    consents: list[Consent] = []
    for channel, stated, ticked in (
        (Channel.EMAIL, customer.email_marketing_consent, accepts_email),
        (Channel.SMS, customer.sms_marketing_consent, accepts_sms),
    ):
        if stated is not None:
            consent = _consent(channel, stated, source, updated_at)
            if consent is not None:
                consents.append(consent)
        elif ticked:
            consents.append(Consent(channel=channel, state=ConsentState.SUBSCRIBED, source=source,
                                    at=accepted_at or updated_at))
    return tuple(consents)


def _consent(channel: Channel, stated: MarketingConsent, source: str, updated_at: datetime) -> Consent | None:
    # A state Shopify adds later is no statement we can read; the rest of the payload still counts.
    state = _CONSENT_STATES.get((stated.state or "").strip().lower())
    if state is None:
        return None
    return Consent(channel=channel, state=state, source=source, at=stated.consent_updated_at or updated_at)


_MAPPERS: dict[str, TopicMapper] = {
    "refunds/create": TopicMapper("refund", _refund),
    "customers/create": TopicMapper("customer", _customer),
    "customers/update": TopicMapper("customer", _customer),
    "customers/delete": TopicMapper("customer", _deleted_customer),
    "checkouts/create": _checkout(ActivityType.CHECKOUT_STARTED),
    "checkouts/update": _checkout(ActivityType.CHECKOUT_UPDATED),
    "carts/create": TopicMapper("cart", _cart),
    "carts/update": TopicMapper("cart", _cart),
    "fulfillments/create": TopicMapper("fulfillment", _fulfillment),
    "customers/data_request": TopicMapper("compliance request", _data_request),
    "customers/redact": TopicMapper("compliance request", _customer_redact),
    "shop/redact": TopicMapper("compliance request", _shop_redact),
}

SHOPIFY = ShopifyConnector()
