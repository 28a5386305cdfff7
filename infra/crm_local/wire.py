"""What Shopify and WooCommerce put on the wire: their published sample payloads, their JSON encodings and
their signed headers; and what a custom storefront sends to POST /events. Shared by the demo's simulation and
the tests, so both sign exactly as the platforms (and docs/events-api.md) do."""

from __future__ import annotations

import json
from datetime import datetime
from importlib import resources
from typing import Any

from crm.connectors.base import sign_base64_hmac_sha256

SHOPIFY_API_VERSION = "2026-04"
WOO_USER_AGENT = "WooCommerce/10.2.1 Hookshot (WordPress/6.8.2)"


def _fixture(platform: str, name: str) -> bytes:
    return resources.files("crm_local").joinpath(f"fixtures/webhooks/{platform}/{name}.json").read_bytes()


def shopify_fixture(topic: str) -> bytes:
    """The raw bytes of a published Shopify sample, e.g. ``orders/create`` (sign these, never a re-serialisation)."""
    return _fixture("shopify", topic)


def woo_fixture(topic: str) -> bytes:
    """The raw bytes of a published WooCommerce sample, e.g. ``order.created``."""
    return _fixture("woocommerce", topic)


def compact(payload: dict[str, Any]) -> bytes:
    """A payload as Shopify puts it on the wire: compact JSON."""
    return json.dumps(payload, separators=(",", ":")).encode()


def woo_wire(payload: dict[str, Any]) -> bytes:
    """A payload as WooCommerce puts it on the wire: PHP's wp_json_encode, compact, with ``/`` escaped as ``\\/``
    and non-ASCII as ``\\uXXXX``."""
    return json.dumps(payload, separators=(",", ":")).replace("/", "\\/").encode()


def shopify_headers(body: bytes, *, secret: str, topic: str, domain: str, delivery_id: str,
                    triggered_at: str | None) -> dict[str, str]:
    """The headers Shopify sends with a webhook; a retry repeats the webhook id (and so the event id)."""
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": sign_base64_hmac_sha256(body, secret),
        "X-Shopify-Shop-Domain": domain,
        "X-Shopify-API-Version": SHOPIFY_API_VERSION,
        "X-Shopify-Webhook-Id": delivery_id,
        "X-Shopify-Event-Id": f"event-{delivery_id}",
    }
    if triggered_at is not None:
        headers["X-Shopify-Triggered-At"] = triggered_at
    return headers


def woo_headers(body: bytes, *, secret: str, topic: str, source: str, delivery_id: str,
                webhook_id: str) -> dict[str, str]:
    """The headers WC_Webhook::deliver() sends."""
    resource, _, event = topic.partition(".")
    return {
        "Content-Type": "application/json",
        "User-Agent": WOO_USER_AGENT,
        "X-WC-Webhook-Source": source,
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": resource,
        "X-WC-Webhook-Event": event,
        "X-WC-Webhook-Signature": sign_base64_hmac_sha256(body, secret),
        "X-WC-Webhook-ID": webhook_id,
        "X-WC-Webhook-Delivery-ID": delivery_id,
    }


def events_headers(body: bytes, *, secret: str, store: str, event_id: str, sent_at: datetime) -> dict[str, str]:
    """The headers a custom storefront sends to POST /events: the signature covers ``{timestamp}.{body}``."""
    timestamp = str(int(sent_at.timestamp()))
    return {
        "Content-Type": "application/json",
        "X-CRM-Store": store,
        "X-CRM-Event-Id": event_id,
        "X-CRM-Timestamp": timestamp,
        "X-CRM-Signature": sign_base64_hmac_sha256(f"{timestamp}.".encode() + body, secret),
    }
