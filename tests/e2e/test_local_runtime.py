"""The walking skeleton over real HTTP: signed Shopify, WooCommerce and BigCommerce orders in, profiles out, on
`crm local`."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from crm.archive import FIREHOSE_PREFIX, unframe
from crm_local.demo import http

from tests.bigcommerce_api import ORDER_PATH, fake_bigcommerce_api
from tests.builders import (
    BC_SECRET,
    BC_STORE_HASH,
    BC_TOKEN,
    ROOT,
    bc_fixture_bytes,
    bc_headers,
    compact,
    custom_headers,
    custom_order_json,
    placed_order_bytes,
    placed_order_json,
    shopify_headers,
    woo_fixture_json,
    woo_headers,
    woo_ping,
    woo_wire,
)
from tests.e2e.conftest import LocalStack, start_local_stack

pytestmark = pytest.mark.e2e

DOMAIN = "e2e-shop.myshopify.com"
SECRET = "e2e-secret"


def signed(body: bytes, delivery_id: str, **overrides: Any) -> dict[str, str]:
    return shopify_headers(body, secret=overrides.pop("secret", SECRET), domain=overrides.pop("domain", DOMAIN),
                           delivery_id=delivery_id, **overrides)


def order_body(email: str, order_id: int, **changes: Any) -> bytes:
    """The published orders/create sample, for a shopper of our own (with an account of their own: one
    customer id with two emails is one person who changed address), compact as Shopify sends it."""
    sample = placed_order_json()
    account = {**sample["customer"], "id": int(hashlib.sha256(email.encode()).hexdigest()[:12], 16),
               "email": email}
    return compact({**sample, "id": order_id, "email": email, "contact_email": email, "customer": account,
                    **changes})


def wait_for_customer(stack: LocalStack, api_key: str, email: str, orders: int, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = stack.get(f"/customers?email={email}", api_key)
        if status == 200 and body["orders_count"] == orders:
            return body
        time.sleep(0.1)
    raise AssertionError(f"{email} never showed {orders} orders (last answer {status} {body})")


def archived(stack: LocalStack) -> dict[str, bytes]:
    """Every archived delivery's body by delivery id: Firehose frames and stand-alone objects."""
    s3, bucket = stack.client("s3"), stack.outputs()["ArchiveBucketName"]
    found: dict[str, bytes] = {}
    for listed in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        obj = s3.get_object(Bucket=bucket, Key=listed["Key"])
        data = obj["Body"].read()
        if listed["Key"].startswith(FIREHOSE_PREFIX):
            found.update((header.meta.delivery_id, body) for header, body in unframe(data))
        else:
            found[obj["Metadata"]["delivery-id"]] = data
    return found


def test_a_signed_order_creates_the_profile_and_a_redelivery_changes_nothing(
        local_stack: LocalStack, store: dict[str, str]) -> None:
    body = order_body("First.Buyer@Example.com ", 9_000_000_001)
    status, answer = local_stack.post("/webhooks/shopify", body, signed(body, "e2e-first"))
    assert (status, answer["status"]) == (200, "accepted")  # its speed is bench/'s to measure, not a test's

    profile = wait_for_customer(local_stack, store["api_key"], "first.buyer@example.com", orders=1)
    assert profile["total_spent"] == "404.95"
    assert profile["average_order_value"] == "404.95"
    assert profile["currency"] == "USD"
    assert profile["email"] == "first.buyer@example.com"

    assert local_stack.post("/webhooks/shopify", body, signed(body, "e2e-first"))[0] == 200
    local_stack.wait_drained()
    again = wait_for_customer(local_stack, store["api_key"], "first.buyer@example.com", orders=1)
    assert again == profile

    by_id = local_stack.get(f"/customers/{profile['profile_id']}", store["api_key"])
    assert by_id == (200, profile)


def test_an_older_update_after_a_newer_one_changes_nothing(local_stack: LocalStack, store: dict[str, str]) -> None:
    email = "late.update@example.com"
    refunded = order_body(email, 9_000_000_002, updated_at="2022-01-05T10:00:00-05:00", refunds=[
        {"id": 1, "transactions": [{"kind": "refund", "status": "success", "amount": "100.00"}]}])
    original = order_body(email, 9_000_000_002, updated_at="2022-01-01T10:00:00-05:00")
    newer_headers = signed(refunded, "e2e-newer", topic="orders/updated")
    assert local_stack.post("/webhooks/shopify", refunded, newer_headers)[0] == 200
    wait_for_customer(local_stack, store["api_key"], email, orders=1)
    assert local_stack.post("/webhooks/shopify", original, signed(original, "e2e-older"))[0] == 200
    local_stack.wait_drained()
    profile = wait_for_customer(local_stack, store["api_key"], email, orders=1)
    assert Decimal(profile["total_spent"]) == Decimal("304.95")


def test_a_wrong_signature_is_refused_and_nothing_is_stored(local_stack: LocalStack, store: dict[str, str]) -> None:
    body = order_body("forged@example.com", 9_000_000_003)
    before = archived(local_stack)
    status, answer = local_stack.post("/webhooks/shopify", body, signed(body, "e2e-forged", secret="not-the-secret"))
    assert status == 401
    assert "signature" in answer["error"]
    other_shop = local_stack.post("/webhooks/shopify", body, signed(body, "e2e-other", domain="other.myshopify.com"))
    assert other_shop[0] == 401
    local_stack.wait_drained()
    assert archived(local_stack) == before
    assert local_stack.get("/customers?email=forged@example.com", store["api_key"])[0] == 404


def test_bad_requests_get_a_4xx_naming_the_problem(local_stack: LocalStack, store: dict[str, str]) -> None:
    body = order_body("bad.request@example.com", 9_000_000_004)
    headers = signed(body, "e2e-bad")
    del headers["X-Shopify-Topic"]
    status, answer = local_stack.post("/webhooks/shopify", body, headers)
    assert (status, answer["error"]) == (400, "missing required header X-Shopify-Topic")
    assert local_stack.post("/webhooks/magento", body, signed(body, "e2e-bad"))[0] == 404
    assert local_stack.get("/customers?email=a@example.com", None)[0] == 401
    assert local_stack.get("/customers?email=a@example.com", "crm_wrong")[0] == 401
    assert local_stack.get("/customers", store["api_key"])[0] == 400
    assert local_stack.get("/customers/unknown-profile", store["api_key"])[0] == 404


def test_segment_settings_are_served_beside_segment_ids(local_stack: LocalStack, store: dict[str, str]) -> None:
    # /segments/settings is a literal path next to /segments/{segment_id}: the local gateway must prefer it.
    key = {"x-api-key": store["api_key"]}
    status, defaults = local_stack.get("/segments/settings", store["api_key"])
    assert status == 200 and defaults["vip_top_percent"] == 10
    body = json.dumps({"vip_top_percent": 20}).encode()
    assert http("PUT", local_stack.api_url + "/segments/settings", body, key) == (200, {**defaults,
                                                                                         "vip_top_percent": 20})
    assert local_stack.get("/segments/settings", store["api_key"]) == (200, {**defaults, "vip_top_percent": 20})
    status, bad = http("PUT", local_stack.api_url + "/segments/settings", b'{"vip_top_percent": 99}', key)
    assert status == 400 and bad["Message"].startswith("vip_top_percent: must be a whole number from 1 to 50")
    assert local_stack.get("/segments/builtin:vip", store["api_key"])[1]["id"] == "builtin:vip"
    assert local_stack.get("/segments/seg_0000000000000000", store["api_key"])[0] == 404


def test_a_signed_body_that_is_not_json_is_kept_dead_lettered_and_replayable(
        local_stack: LocalStack, store: dict[str, str]) -> None:
    body = b"\x00 definitely { not json"
    status, _ = local_stack.post("/webhooks/shopify", body, signed(body, "e2e-unreadable"))
    assert status == 200
    assert archived(local_stack)["e2e-unreadable"] == body

    deadline = time.monotonic() + 15
    parked: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not parked:
        listed = [json.loads(line) for line in local_stack.crm("dlq", "list").splitlines()]
        parked = [entry for entry in listed if entry["delivery_id"] == "e2e-unreadable"]
        time.sleep(0.2)
    assert parked, "the unreadable delivery was not dead-lettered"
    assert "not valid JSON" in parked[0]["reason"]

    binary = b"\xff\xfe\x00 not even UTF-8"
    assert local_stack.post("/webhooks/shopify", binary, signed(binary, "e2e-binary"))[0] == 200
    assert archived(local_stack)["e2e-binary"] == binary


def test_a_poison_message_reaches_the_dlq_after_max_receives_without_blocking_others(
        local_stack: LocalStack, store: dict[str, str]) -> None:
    outputs = local_stack.outputs()
    poison = json.dumps({"platform": "shopify", "workspace_id": store["workspace_id"], "store_id": store["store_id"],
                         "meta": {"topic": "orders/create", "delivery_id": "e2e-poison"},
                         "received_at": "2026-11-23T10:00:00Z", "archive_key": "raw/missing-object"})
    local_stack.client("sqs").send_message(QueueUrl=outputs["IngestQueueUrl"], MessageBody=poison)
    body = order_body("neighbour@example.com", 9_000_000_005)
    assert local_stack.post("/webhooks/shopify", body, signed(body, "e2e-neighbour"))[0] == 200
    wait_for_customer(local_stack, store["api_key"], "neighbour@example.com", orders=1)

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        listed = [json.loads(line) for line in local_stack.crm("dlq", "list").splitlines()]
        if any(entry["delivery_id"] == "e2e-poison" for entry in listed):
            break
        time.sleep(0.3)
    else:
        raise AssertionError("the poison message never reached the dead-letter queue")
    poisoned = next(entry for entry in listed if entry["delivery_id"] == "e2e-poison")
    assert "retries exhausted" in poisoned["reason"]


def test_domain_events_reach_the_bus(local_stack: LocalStack, store: dict[str, str]) -> None:
    sqs, events = local_stack.client("sqs"), local_stack.client("events")
    bus = local_stack.outputs()["EventBusName"]
    url = sqs.create_queue(QueueName="e2e-tap")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="e2e-tap", EventBusName=bus, EventPattern=json.dumps({"detail-type": ["OrderPlaced"]}))
    events.put_targets(Rule="e2e-tap", EventBusName=bus, Targets=[{"Id": "tap", "Arn": arn}])
    body = order_body("events@example.com", 9_000_000_006)
    assert local_stack.post("/webhooks/shopify", body, signed(body, "e2e-events"))[0] == 200
    deadline, seen = time.monotonic() + 15, []
    while time.monotonic() < deadline and not seen:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        seen = [json.loads(m["Body"]) for m in messages]
        seen = [e for e in seen if e["detail"]["order_id"] == "9000000006"]
    assert seen, "OrderPlaced never reached the bus"
    detail = seen[0]["detail"]
    assert (detail["total_price"], detail["currency"]) == ("404.95", "USD")
    assert detail["workspace_id"] == store["workspace_id"]
    assert "email" not in detail


def test_replaying_the_archive_changes_no_profile(local_stack: LocalStack, store: dict[str, str]) -> None:
    email = "replayed@example.com"
    body = order_body(email, 9_000_000_007)
    assert local_stack.post("/webhooks/shopify", body, signed(body, "e2e-replayed"))[0] == 200
    before = wait_for_customer(local_stack, store["api_key"], email, orders=1)
    local_stack.wait_drained()

    report = json.loads(local_stack.crm("replay", "--store", store["store_id"]))
    assert report["enqueued"] >= 1
    assert report["unreadable_objects"] == []
    none = json.loads(local_stack.crm("replay", "--store", store["store_id"], "--since", "2999-01-01T00:00:00Z"))
    assert none["enqueued"] == 0
    local_stack.wait_drained()
    assert wait_for_customer(local_stack, store["api_key"], email, orders=1) == before


def test_the_published_sample_itself_is_accepted(local_stack: LocalStack, store: dict[str, str]) -> None:
    """The pretty-printed published bytes, signed as they are: accepted and applied."""
    body = placed_order_bytes()
    assert local_stack.post("/webhooks/shopify", body, signed(body, "e2e-sample"))[0] == 200
    profile = wait_for_customer(local_stack, store["api_key"], "jon@example.com", orders=1)
    assert profile["total_spent"] == "404.95"


def test_a_signed_woocommerce_order_creates_the_profile_and_the_creation_ping_gets_200(
        local_stack: LocalStack, store: dict[str, str]) -> None:
    woo: dict[str, str] = json.loads(local_stack.crm(
        "store", "add", "--platform", "woocommerce", "--domain", "https://e2e-woo.example/",
        "--webhook-secret", "e2e-woo-secret"))
    assert (woo["platform"], woo["domain"]) == ("woocommerce", "e2e-woo.example")

    before = archived(local_stack)
    ping_headers, ping = woo_ping(42)
    assert local_stack.post("/webhooks/woocommerce", ping, ping_headers) == (200, {"status": "ping acknowledged"})
    local_stack.wait_drained()
    assert archived(local_stack) == before  # the ping stores nothing

    payload = woo_fixture_json("order.created")
    payload.update(id=9_100_000_001, number="9100000001",
                   billing={**payload["billing"], "email": " Woo.Buyer@Example.com", "phone": "(613) 555-0123",
                            "country": "CA"})
    body = woo_wire(payload)  # compact, slashes escaped: the bytes WooCommerce signs and sends
    headers = woo_headers(body, secret="e2e-woo-secret", source="https://e2e-woo.example/", delivery_id="e2e-woo-1")
    status, answer = local_stack.post("/webhooks/woocommerce", body, headers)
    assert (status, answer) == (200, {"status": "accepted", "delivery_id": "e2e-woo-1"})

    profile = wait_for_customer(local_stack, woo["api_key"], "woo.buyer@example.com", orders=1)
    assert profile["total_spent"] == "29.35"
    assert profile["currency"] == "USD"
    assert profile["email"] == "woo.buyer@example.com"
    assert profile["phone"] == "+16135550123"
    assert archived(local_stack)["e2e-woo-1"] == body
    # Another workspace's key does not see the shopper.
    assert local_stack.get("/customers?email=woo.buyer@example.com", store["api_key"])[0] == 404

    forged = woo_headers(body, secret="not-the-secret", source="https://e2e-woo.example/", delivery_id="e2e-woo-2")
    assert local_stack.post("/webhooks/woocommerce", body, forged)[0] == 401
    shopify_signed = signed(body, "e2e-woo-3")  # a Shopify delivery sent to the WooCommerce route
    assert local_stack.post("/webhooks/woocommerce", body, shopify_signed)[0] == 401


def test_a_custom_storefront_posts_a_signed_order_to_events_and_the_customer_appears(
        local_stack: LocalStack, store: dict[str, str]) -> None:
    shop: dict[str, str] = json.loads(local_stack.crm(
        "store", "add", "--platform", "custom", "--domain", "https://e2e-custom.example/",
        "--webhook-secret", "e2e-custom-secret"))
    assert (shop["platform"], shop["domain"]) == ("custom", "e2e-custom.example")

    body = compact(custom_order_json(order_id="e2e-c-1", email=" Custom.Buyer@Example.com", total_price=59.9,
                                     refunds={"rf-1": "9.90"}))
    assert b'"total_price":59.9,' in body  # a JSON number: read as exactly 59.90, never a float
    headers = custom_headers(body, secret="e2e-custom-secret", domain="e2e-custom.example", event_id="e2e-custom-1",
                             timestamp=datetime.now(UTC))
    status, answer = local_stack.post("/events", body, headers)
    assert (status, answer) == (200, {"status": "accepted", "delivery_id": "e2e-custom-1"})

    profile = wait_for_customer(local_stack, shop["api_key"], "custom.buyer@example.com", orders=1)
    assert (profile["total_spent"], profile["currency"]) == ("50.00", "GBP")
    assert profile["phone"] == "+442079460018"
    assert archived(local_stack)["e2e-custom-1"] == body
    assert local_stack.get("/customers?email=custom.buyer@example.com", store["api_key"])[0] == 404

    # The generic path is the same endpoint; a retry of the same order changes nothing.
    retry = custom_headers(body, secret="e2e-custom-secret", domain="e2e-custom.example", event_id="e2e-custom-1",
                           timestamp=datetime.now(UTC))
    assert local_stack.post("/webhooks/custom", body, retry)[0] == 200
    forged = custom_headers(body, secret="not-the-secret", domain="e2e-custom.example", event_id="e2e-custom-2",
                            timestamp=datetime.now(UTC))
    assert local_stack.post("/events", body, forged)[0] == 401
    stale = custom_headers(body, secret="e2e-custom-secret", domain="e2e-custom.example", event_id="e2e-custom-3",
                           timestamp=datetime.now(UTC) - timedelta(minutes=10))
    assert local_stack.post("/events", body, stale)[0] == 401
    del retry["X-CRM-Event-Id"]
    assert local_stack.post("/events", body, retry) == (400, {"error": "missing required header X-CRM-Event-Id"})
    local_stack.wait_drained()
    assert wait_for_customer(local_stack, shop["api_key"], "custom.buyer@example.com", orders=1) == profile

def test_the_runtime_runs_on_a_provisioned_table_too() -> None:
    # TableCapacity=provisioned (docs/scale.md): the table and its index with capacity and auto scaling; the
    # webhook path works the same (moto does not throttle).
    stack = start_local_stack(arguments=["--parameter-overrides", "TableCapacity=provisioned"])
    try:
        table = stack.client("dynamodb").describe_table(TableName=stack.outputs()["TableName"])["Table"]
        assert table["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
        shop = json.loads(stack.crm("store", "add", "--platform", "shopify", "--domain", DOMAIN,
                                    "--webhook-secret", SECRET))
        body = order_body("provisioned.buyer@example.com", 9_000_000_031)
        assert stack.post("/webhooks/shopify", body, signed(body, "e2e-provisioned"))[0] == 200
        wait_for_customer(stack, shop["api_key"], "provisioned.buyer@example.com", orders=1)
    finally:
        assert stack.stop() == 0


def test_sigterm_stops_the_runtime_cleanly() -> None:
    stack = start_local_stack()
    assert stack.stop() == 0
    assert "stopped" in "".join(stack.output)


def test_the_demo_runs_and_verifies_its_own_totals(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "crm_local.cli", "demo", "--shoppers", "40", "--seed", "3",
                           "--out-dir", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "40/40 shoppers match" in done.stdout
    assert "merges match" in done.stdout
    assert "MISMATCH" not in done.stdout
    assert "ingest DLQ depth         1" in done.stdout
    assert "(= the simulation's" in done.stdout and "the groups partition them" in done.stdout
    written = (tmp_path / "builtin-vip.csv").read_bytes()
    assert written.startswith(b"\xef\xbb\xbf")  # the export's byte order mark: Excel reads the file as UTF-8
    exported = written.decode("utf-8-sig").splitlines()
    assert exported[0] == "email,phone,first_name,last_name,orders_count,total_spent,last_order_at"
    assert len(exported) > 1 and f"{len(exported) - 1} rows and a header" in done.stdout
    # Its last word: where the console was and how to sign in (the stack stops after it without --serve).
    last = done.stdout.rstrip().splitlines()[-2:]
    assert re.fullmatch(r"console: http://127\.0\.0\.1:\d+/console  sign in as \S+@\S+ with password \S{12,}",
                        last[0]), last
    assert "`crm demo --serve` keeps it up" in last[1]


def test_a_taken_port_is_a_clear_error_not_a_hang() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "crm_local.cli", "local", "--port", "0", "--aws-port", str(port)],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr


def test_a_thin_bigcommerce_delivery_is_read_back_from_the_api_into_a_profile() -> None:
    """A stack of its own, started with BIGCOMMERCE_API_URL pointing at a loopback BigCommerce API."""
    with fake_bigcommerce_api() as api:
        stack = start_local_stack({"BIGCOMMERCE_API_URL": api.url})
        try:
            with pytest.raises(subprocess.CalledProcessError) as refused:
                stack.crm("store", "add", "--platform", "bigcommerce", "--domain", BC_STORE_HASH,
                          "--webhook-secret", BC_SECRET)
            assert "--api-token" in refused.value.stderr
            registered = json.loads(stack.crm("store", "add", "--platform", "bigcommerce", "--domain",
                                              BC_STORE_HASH, "--webhook-secret", BC_SECRET, "--api-token", BC_TOKEN))
            body = bc_fixture_bytes("store/order/created")
            now = datetime.now(UTC)

            stale = stack.post("/webhooks/bigcommerce", body, bc_headers(body, timestamp=now - timedelta(minutes=10)))
            assert stale[0] == 401 and "timestamp" in stale[1]["error"]
            status, answer = stack.post("/webhooks/bigcommerce", body, bc_headers(body, webhook_id="msg_e2e",
                                                                                  timestamp=now))
            assert (status, answer["delivery_id"]) == (200, "msg_e2e")

            profile = wait_for_customer(stack, registered["api_key"], "janedoe@example.com", orders=1)
            assert Decimal(profile["total_spent"]) == Decimal("50.00")  # 60.98 less 10.98 refunded
            assert [path for path, _ in api.requests] == [ORDER_PATH]
            assert api.requests[0][1]["x-auth-token"] == BC_TOKEN
        finally:
            stack.stop()
