"""Test data: the published Shopify and WooCommerce fixtures, signed deliveries, canonical orders and envelopes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from crm.connectors.bigcommerce import standard_webhooks_signature
from crm.models.canonical import CustomerRecord
from crm.models.ingest import DeliveryMeta, IngestEnvelope
from crm.models.orders import CanonicalOrder, version_stamp
from crm.models.stores import Platform, Store
from crm_local import wire
from crm_local.wire import compact as compact  # re-exported: the tests build deliveries from here
from crm_local.wire import woo_wire as woo_wire

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
FIXTURES = ROOT / "infra" / "crm_local" / "fixtures" / "webhooks"
SHOPIFY_FIXTURES = FIXTURES / "shopify"
WOOCOMMERCE_FIXTURES = FIXTURES / "woocommerce"

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
SECRET = "shpss_test_secret"
DOMAIN = "jsmith.myshopify.com"
TRIGGERED_AT = "2025-07-10T16:15:47.000000Z"

# The published orders/create sample.
FIXTURE_ORDER_ID = "820982911946154508"
FIXTURE_CUSTOMER_ID = "115310627314723954"


def fixture_bytes(topic: str) -> bytes:
    """The raw bytes of a published Shopify sample (sign these, never a re-serialisation)."""
    return (SHOPIFY_FIXTURES / f"{topic}.json").read_bytes()


def fixture_json(topic: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(fixture_bytes(topic))
    return payload


def placed_order_json(**overrides: Any) -> dict[str, Any]:
    """The published order sample as a live order: Shopify's sample is a cancelled, voided test order."""
    payload = fixture_json("orders/create")
    payload.update(cancelled_at=None, cancel_reason=None, financial_status="paid")
    payload.update(overrides)
    return payload


def placed_order_bytes(**overrides: Any) -> bytes:
    return compact(placed_order_json(**overrides))


def shopify_headers(
    body: bytes,
    *,
    secret: str = SECRET,
    topic: str = "orders/create",
    domain: str = DOMAIN,
    delivery_id: str = "d-1",
    triggered_at: str | None = TRIGGERED_AT,
) -> dict[str, str]:
    return wire.shopify_headers(body, secret=secret, topic=topic, domain=domain, delivery_id=delivery_id,
                                triggered_at=triggered_at)


# --- WooCommerce ---------------------------------------------------------------------------------

WOO_SECRET = "wc_test_secret"
WOO_SOURCE = "https://shop.example/"
WOO_DOMAIN = "shop.example"
WOO_ORDER_TOPICS = ("order.created", "order.updated")


def woo_fixture_bytes(topic: str) -> bytes:
    """The raw bytes of a published WooCommerce sample, e.g. ``order.created`` (sign these as they are)."""
    return (WOOCOMMERCE_FIXTURES / f"{topic}.json").read_bytes()


def woo_fixture_json(topic: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(woo_fixture_bytes(topic))
    return payload


def woo_headers(
    body: bytes,
    *,
    secret: str = WOO_SECRET,
    topic: str = "order.created",
    source: str = WOO_SOURCE,
    delivery_id: str = "wc-d-1",
    webhook_id: str = "17",
) -> dict[str, str]:
    """The headers WC_Webhook::deliver() sends."""
    return wire.woo_headers(body, secret=secret, topic=topic, source=source, delivery_id=delivery_id,
                            webhook_id=webhook_id)


def woo_ping(webhook_id: int = 17) -> tuple[dict[str, str], bytes]:
    """WC_Webhook::deliver_ping(): a form body ``webhook_id=<id>``, no X-WC-* headers, no signature."""
    return ({"User-Agent": wire.WOO_USER_AGENT,
             "Content-Type": "application/x-www-form-urlencoded"}, f"webhook_id={webhook_id}".encode())


def store(
    *, workspace_id: str = "ws_a", store_id: str = "st_a", domain: str = DOMAIN, secrets: tuple[str, ...] = (SECRET,),
    platform: Platform = Platform.SHOPIFY, write_key: str | None = None, origins: tuple[str, ...] = (),
) -> Store:
    return Store(store_id=store_id, workspace_id=workspace_id, platform=platform, domain=domain,
                 webhook_secrets=secrets, created_at=NOW, write_key=write_key, allowed_origins=origins)


def envelope(
    body: bytes | None,
    *,
    topic: str = "orders/create",
    delivery_id: str = "d-1",
    triggered_at: datetime | None = None,
    workspace_id: str = "ws_a",
    store_id: str = "st_a",
    archive_key: str = "raw/shopify/st_a/key",
    platform: Platform = Platform.SHOPIFY,
) -> IngestEnvelope:
    return IngestEnvelope(
        platform=platform, workspace_id=workspace_id, store_id=store_id,
        meta=DeliveryMeta(topic=topic, delivery_id=delivery_id, triggered_at=triggered_at),
        received_at=NOW, archive_key=archive_key, body=None if body is None else body.decode(),
    )


def cents(amount: int) -> Decimal:
    return (Decimal(amount) / 100).quantize(Decimal("0.01"))


def order(
    order_id: str = "1001",
    *,
    workspace_id: str = "ws_a",
    store_id: str = "st_a",
    email: str | None = "shopper@example.com",
    phone: str | None = None,
    total: Decimal = Decimal("10.00"),
    refunded: Decimal = Decimal("0.00"),
    created_at: datetime = NOW - timedelta(days=1),
    updated_at: datetime | None = None,
    triggered_at: datetime | None = None,
    first_name: str | None = None,
    currency: str = "USD",
    paid: bool = True,
) -> CanonicalOrder:
    updated = updated_at or created_at
    return CanonicalOrder(
        workspace_id=workspace_id, store_id=store_id, platform=Platform.SHOPIFY, order_id=order_id,
        email=email, phone=phone, first_name=first_name, currency=currency, total_price=total, paid=paid,
        total_refunded=refunded, created_at=created_at, updated_at=updated,
        version=version_stamp(updated, triggered_at),
    )


def customer_record(
    customer_id: str = "c1", *, email: str | None = "shopper@example.com", phone: str | None = None,
    updated_at: datetime = NOW - timedelta(days=1), first_name: str | None = None, store_id: str = "st_a",
    workspace_id: str = "ws_a", deleted: bool = False,
) -> CustomerRecord:
    return CustomerRecord(
        workspace_id=workspace_id, store_id=store_id, platform=Platform.SHOPIFY, customer_id=customer_id,
        email=email, phone=phone, first_name=first_name, created_at=updated_at - timedelta(days=30),
        updated_at=updated_at, version=version_stamp(updated_at, None), deleted=deleted,
    )


# --- BigCommerce ---------------------------------------------------------------------------------

BIGCOMMERCE_FIXTURES = FIXTURES / "bigcommerce"
BC_SECRET = "bc_client_secret"
BC_TOKEN = "bc_access_token"
BC_STORE_HASH = "abc123"
BC_ORDER_SCOPES = ("store/order/created", "store/order/updated", "store/order/statusUpdated",
                   "store/order/refund/created")


def bc_fixture_bytes(scope: str, store_hash: str = BC_STORE_HASH) -> bytes:
    """A published thin body, e.g. ``store/order/created``, with its ``{store_hash}`` placeholder filled in."""
    raw = (BIGCOMMERCE_FIXTURES / f"{scope}.json").read_bytes()
    return raw.replace(b"stores/{store_hash}", f"stores/{store_hash}".encode())


def bc_order_json() -> dict[str, Any]:
    """A hand-built GET /v2/orders/250 answer following the documented shape (fixtures/.../api/README.md)."""
    payload: dict[str, Any] = json.loads((BIGCOMMERCE_FIXTURES / "api" / "v2_order_250.json").read_bytes())
    return payload


def bc_headers(
    body: bytes,
    *,
    secret: str = BC_SECRET,
    webhook_id: str = "msg_2b9Qn1",
    timestamp: datetime = NOW,
    signatures: tuple[str, ...] | None = None,
) -> dict[str, str]:
    """Standard Webhooks headers as BigCommerce sends them (``signatures`` overrides the computed one)."""
    stamp = str(int(timestamp.timestamp()))
    signature = " ".join(signatures) if signatures is not None else standard_webhooks_signature(
        webhook_id, stamp, body, secret)
    return {"Content-Type": "application/json", "webhook-id": webhook_id, "webhook-timestamp": stamp,
            "webhook-signature": signature}


def bc_store(*, api_token: str | None = BC_TOKEN, secrets: tuple[str, ...] = (BC_SECRET,)) -> Store:
    return Store(store_id="st_bc", workspace_id="ws_a", platform=Platform.BIGCOMMERCE, domain=BC_STORE_HASH,
                 webhook_secrets=secrets, created_at=NOW, api_token=api_token)


# --- custom storefronts (POST /events) -------------------------------------------------------------

CUSTOM_SECRET = "crm_custom_secret"
CUSTOM_DOMAIN = "shop.custom.example"


def custom_order_json(**overrides: Any) -> dict[str, Any]:
    """An order in the canonical event API's schema (docs/events-api.md)."""
    payload: dict[str, Any] = {
        "type": "order", "order_id": "1001", "order_number": "#1001", "email": " Ada@Example.com ",
        "phone": "020 7946 0018", "country": "gb", "customer_id": "c-17", "first_name": "Ada",
        "last_name": "Lovelace", "currency": "gbp", "total_price": "42.50", "refunds": {"rf-1": "5.00"},
        "financial_status": "partially_refunded", "created_at": "2026-02-28T10:00:00Z",
        "updated_at": "2026-02-28T11:30:00+01:00",
        "line_items": [{"product_id": "p-1", "variant_id": "p-1-red", "sku": "MUG-RED", "title": "Mug",
                        "category": "Kitchen", "quantity": 2, "price": "12.50"},
                       {"title": "Tea", "quantity": 1, "price": 17.5}],
        "discount_codes": ["SPRING10"],
    }
    payload.update(overrides)
    return payload


def custom_headers(
    body: bytes,
    *,
    secret: str = CUSTOM_SECRET,
    domain: str = CUSTOM_DOMAIN,
    event_id: str = "ev-1",
    timestamp: datetime = NOW,
) -> dict[str, str]:
    """The headers a custom storefront sends with a body signed, with its timestamp, at ``timestamp``."""
    return wire.events_headers(body, secret=secret, store=domain, event_id=event_id, sent_at=timestamp)


def custom_store(*, secrets: tuple[str, ...] = (CUSTOM_SECRET,)) -> Store:
    return Store(store_id="st_custom", workspace_id="ws_a", platform=Platform.CUSTOM, domain=CUSTOM_DOMAIN,
                 webhook_secrets=secrets, created_at=NOW)
