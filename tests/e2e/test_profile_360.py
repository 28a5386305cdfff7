"""One shopper across two stores and the storefront, over real HTTP on `crm local`, then rebuilt from the archive.

Every Shopify topic the CRM reads, with its published payload shape and signature; WooCommerce in the same
workspace; anonymous browsing through /track that an order later ties to the shopper. Then the table's
shopper data is wiped and `crm replay` rebuilds every profile exactly.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from crm.adapters.items import from_item

from tests.builders import (
    compact,
    fixture_json,
    placed_order_json,
    shopify_headers,
    woo_fixture_json,
    woo_headers,
    woo_wire,
)
from tests.e2e.conftest import LocalStack, start_local_stack

pytestmark = pytest.mark.e2e

SHOP, SHOP_SECRET = "e2e-360.myshopify.com", "e2e-360-secret"
WOO, WOO_SECRET = "e2e-360-woo.example", "e2e-360-woo-secret"
ADA = {"email": "ada@example.com", "phone": "+12025550101", "customer_id": 7_100_000_000_001}
BROWSED_AT = datetime(2021, 12, 1, tzinfo=UTC)
SHOPPER_DATA = {"profile", "identity", "order", "customer", "event", "timeline", "timeline_lines", "privacy_request"}


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    # The browsing below predates the published samples' orders (years ago): /track accepts so old a replay only
    # when told to (docs/consent.md).
    age = (datetime.now(UTC) - BROWSED_AT).days + 1
    local = start_local_stack({"TRACK_MAX_EVENT_AGE_DAYS": str(age)})
    yield local
    local.stop()


@pytest.fixture(scope="module")
def stores(stack: LocalStack) -> dict[str, dict[str, str]]:
    shop = json.loads(stack.crm("store", "add", "--platform", "shopify", "--domain", SHOP,
                                "--webhook-secret", SHOP_SECRET))
    woo = json.loads(stack.crm("store", "add", "--platform", "woocommerce", "--domain", f"https://{WOO}/",
                               "--webhook-secret", WOO_SECRET, "--workspace", shop["workspace_id"]))
    return {"shopify": shop, "woocommerce": woo}


def shopify(stack: LocalStack, topic: str, payload: dict[str, Any], delivery_id: str,
            secret: str = SHOP_SECRET) -> int:
    body = compact(payload)
    status, _ = stack.post("/webhooks/shopify", body, shopify_headers(body, secret=secret, domain=SHOP, topic=topic,
                                                                       delivery_id=delivery_id))
    return status


def woocommerce(stack: LocalStack, topic: str, payload: dict[str, Any], delivery_id: str) -> int:
    body = woo_wire(payload)
    status, _ = stack.post("/webhooks/woocommerce", body, woo_headers(body, secret=WOO_SECRET, topic=topic,
                                                                       source=f"https://{WOO}/",
                                                                       delivery_id=delivery_id))
    return status


def track(stack: LocalStack, write_key: str, anonymous_id: str, events: list[dict[str, Any]]) -> int:
    body = json.dumps({"write_key": write_key, "anonymous_id": anonymous_id, "events": events}).encode()
    request = urllib.request.Request(stack.api_url + "/track", data=body, method="POST",
                                     headers={"Content-Type": "application/json", "Origin": f"https://{SHOP}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.status)


def ada_order(order_id: int, **changes: Any) -> dict[str, Any]:
    sample = placed_order_json()
    customer = {**sample["customer"], "id": ADA["customer_id"], "email": ADA["email"], "phone": ADA["phone"]}
    return {**sample, "id": order_id, "email": ADA["email"], "contact_email": ADA["email"], "customer": customer,
            **changes}


def _view(kind: str, **fields: Any) -> dict[str, Any]:
    # Browsing a month before the published sample order's date, which the orders below keep.
    return {"type": kind, "event_id": str(uuid.uuid4()), "occurred_at": BROWSED_AT.isoformat(), **fields}


def _successful_refunds(refund: dict[str, Any]) -> Decimal:
    return sum((Decimal(t["amount"]) for t in refund["transactions"]
                if t["kind"] == "refund" and t.get("status", "success") == "success"), Decimal("0"))


def shopper_items(stack: LocalStack) -> dict[str, dict[str, Any]]:
    """Every item of shopper data, by key, without the moments it was written at (a replay writes later)."""
    dynamodb, table = stack.client("dynamodb"), stack.outputs()["TableName"]
    found: dict[str, dict[str, Any]] = {}
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            if item.get("entity", {}).get("S") in SHOPPER_DATA:
                found[f"{item['pk']['S']}|{item['sk']['S']}"] = item
    return found


def comparable(items: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Profiles and records as they read, without processing moments and write counters."""
    kept = {}
    for key, wire in items.items():
        item = from_item(wire)  # a packed profile or order record unpacked (crm.adapters.items)
        entity = item["entity"]
        if entity in {"privacy_request", "event"}:
            continue
        kept[key] = {name: value for name, value in item.items() if name not in {"updated_at", "revision", "created_at"}
                     or entity not in {"profile", "timeline"}}
        if entity == "profile" and "unwritten_orders" in item:  # each entry stamped when its order was written
            kept[key]["unwritten_orders"] = sorted(item["unwritten_orders"])
        if entity == "timeline" and item.get("type") == "profile_merged":
            kept[key] = {"type": "profile_merged"}  # stamped when the merge happened
    return kept


def wait_for(stack: LocalStack, api_key: str, query: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = stack.get(f"/customers?{query}", api_key)
        if status == 200 and check(body):
            return body
        time.sleep(0.2)
    raise AssertionError(f"{query} never matched (last answer {status} {body})")


def test_every_topic_one_profile_then_replay_into_an_empty_table_rebuilds_it(
        stack: LocalStack, stores: dict[str, dict[str, str]]) -> None:
    shop, api_key = stores["shopify"], stores["shopify"]["api_key"]
    anonymous_id = "anon-ada-1"
    assert track(stack, shop["write_key"], anonymous_id, [
        _view("page_viewed", url=f"https://{SHOP}/?utm_source=newsletter&utm_medium=email",
              utm={"source": "newsletter", "medium": "email", "campaign": "spring"}),
        _view("product_viewed", url=f"https://{SHOP}/products/hat",
              product={"product_id": "p-hat", "title": "Hat", "price": "20.00"}),
        _view("product_added_to_cart", product={"product_id": "p-hat", "title": "Hat", "price": "20.00"})]) == 202
    stack.wait_drained()

    checkout = {**fixture_json("checkouts/create"), "token": "ada-checkout", "email": ADA["email"],
                "customer": {"id": ADA["customer_id"], "email": ADA["email"]}}
    placed = ada_order(8001, landing_site="/?utm_source=google&utm_medium=cpc", checkout_token="ada-checkout",
                       note_attributes=[{"name": "crm_anonymous_id", "value": anonymous_id}])
    refund = {**fixture_json("refunds/create"), "order_id": 8001}
    deliveries = [
        ("checkouts/create", checkout), ("checkouts/update", {**checkout, "updated_at": "2022-01-01T01:00:00Z"}),
        ("orders/create", placed), ("orders/paid", {**placed, "updated_at": "2022-01-01T02:00:00Z"}),
        ("refunds/create", refund),
        ("orders/fulfilled", {**placed, "updated_at": "2022-01-01T03:00:00Z", "fulfillment_status": "fulfilled"}),
        ("fulfillments/create", {**fixture_json("fulfillments/create"), "order_id": 8001, "email": ADA["email"]}),
        ("orders/create", ada_order(8002)),
        ("orders/cancelled", ada_order(8002, cancelled_at="2022-01-02T00:00:00Z", updated_at="2022-01-02T00:00:00Z")),
        ("customers/create", {**fixture_json("customers/create"), "id": ADA["customer_id"], "email": ADA["email"],
                              "phone": ADA["phone"]}),
        ("customers/update", {**fixture_json("customers/update"), "id": ADA["customer_id"], "email": ADA["email"],
                              "phone": ADA["phone"], "updated_at": "2030-01-01T00:00:00Z"}),
        ("carts/create", fixture_json("carts/create")),
        ("carts/update", fixture_json("carts/update")),
        ("customers/delete", {**fixture_json("customers/delete"), "id": 999_999}),
        ("customers/data_request", {**fixture_json("customers/data_request"), "shop_domain": SHOP,
                                    "customer": {"id": ADA["customer_id"], "email": ADA["email"], "phone": None}}),
    ]
    for number, (topic, payload) in enumerate(deliveries):
        assert shopify(stack, topic, payload, f"ada-{number}") == 200, topic
    assert shopify(stack, "orders/create", placed, "ada-again") == 200  # a re-delivery
    # Signed for another store, or sent to another platform's route: refused, nothing stored.
    assert shopify(stack, "orders/create", placed, "forged", secret=WOO_SECRET) == 401
    forged = compact(placed)
    assert stack.post("/webhooks/woocommerce", forged, shopify_headers(forged, secret=SHOP_SECRET, domain=SHOP))[0] in (
        400, 401)

    woo_order = {**woo_fixture_json("order.created"), "id": 9001}
    woo_order["billing"] = {**woo_order["billing"], "email": ADA["email"].upper()}
    assert woocommerce(stack, "order.created", woo_order, "ada-woo-1") == 200
    stack.wait_drained()

    profile = wait_for(stack, api_key, f"email={ADA['email']}", lambda body: len(body["store_ids"]) == 2)
    expected = (Decimal(placed["total_price"]) - _successful_refunds(refund) + Decimal(woo_order["total"]))
    assert (profile["orders_count"], profile["cancelled_count"]) == (2, 1)
    assert Decimal(profile["total_spent"]) == expected.quantize(Decimal("0.01"))
    assert profile["merged_from"], "the anonymous browser merged into the shopper"
    assert f"anon#{shop['store_id']}#{anonymous_id}" in profile["identities"]
    assert profile["activity_counts"]["product_viewed"] == 1
    assert profile["activity_counts"]["checkout_started"] == 1
    assert profile["first_touch"]["source"] == "newsletter"
    assert profile["last_touch"]["source"] == "google"
    assert profile["phone"] == ADA["phone"]
    assert wait_for(stack, api_key, "phone=%2B12025550101", lambda body: True)["profile_id"] == profile["profile_id"]

    status, first = stack.get(f"/customers/{profile['profile_id']}/timeline?limit=4", api_key)
    assert status == 200 and len(first["entries"]) == 4 and first["next_cursor"]
    status, second = stack.get(f"/customers/{profile['profile_id']}/timeline?limit=4&cursor={first['next_cursor']}",
                               api_key)
    assert status == 200 and second["entries"][0]["occurred_at"] <= first["entries"][-1]["occurred_at"]
    status, rest = stack.get(f"/customers/{profile['profile_id']}/timeline?limit=100", api_key)
    kinds = {e["type"] for e in rest["entries"]}
    assert {"order", "refund", "order_cancelled", "checkout_started", "product_viewed", "order_fulfilled",
            "account_created", "profile_merged"} <= kinds
    assert stack.queue_busy(stack.outputs()["IngestDeadLetterQueueUrl"]) == 0

    # Replay from the archive into an empty table reproduces every profile exactly.
    before = shopper_items(stack)
    dynamodb, table = stack.client("dynamodb"), stack.outputs()["TableName"]
    for key in before:
        pk, sk = key.split("|", 1)
        dynamodb.delete_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}})
    assert shopper_items(stack) == {}
    report = json.loads(stack.crm("replay"))
    assert report["unreadable_objects"] == []
    stack.wait_drained(timeout=60)
    after = shopper_items(stack)
    assert comparable(after) == comparable(before)
