"""`make demo`: the whole path on the embedded stack, driven over HTTP, with a short report."""

from __future__ import annotations

import json
import socket
import statistics
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer

from crm_local.operations import add_store, archived_deliveries, stack_outputs
from crm_local.runtime import LocalRuntime
from crm_local.simulation import Delivery, simulate_orders

DEMO_DOMAIN = "demo-outfitters.myshopify.com"
DEMO_SECRET = "demo-webhook-secret"
_deserializer = TypeDeserializer()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
         ) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def post_delivery(api_url: str, delivery: Delivery, domain: str, secret: str) -> tuple[int, float]:
    started = time.perf_counter()
    status, _ = http("POST", f"{api_url}/webhooks/shopify", delivery.body, delivery.headers(domain, secret))
    return status, time.perf_counter() - started


def tap_events(bus_name: str) -> str:
    """A queue subscribed to every CRM event on the bus: the demo counts what the outbox published."""
    sqs, events = boto3.client("sqs"), boto3.client("events")
    url = sqs.create_queue(QueueName="demo-event-tap")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="demo-event-tap", EventBusName=bus_name, EventPattern=json.dumps({"source": ["crm"]}))
    events.put_targets(Rule="demo-event-tap", EventBusName=bus_name, Targets=[{"Id": "tap", "Arn": arn}])
    return str(url)


def drain_tap(url: str) -> Counter[str]:
    sqs, counts = boto3.client("sqs"), Counter[str]()
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in batch:
            counts[json.loads(message["Body"])["detail-type"]] += 1
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return counts


def table_entities(table: str) -> dict[str, list[dict[str, Any]]]:
    """Every item by entity (the demo's own scan; the functions never scan)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for page in boto3.client("dynamodb").get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            plain = {k: _deserializer.deserialize(v) for k, v in item.items()}
            found.setdefault(str(plain.get("entity")), []).append(plain)
    return found


def queue_depth(url: str) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def run_demo(orders: int = 300, customers: int = 80, seed: int = 7) -> int:
    with LocalRuntime(port=free_port(), aws_port=free_port(), stack_name="crm-demo") as runtime:
        print(f"local stack up: api {runtime.api_url}, aws {runtime.aws_endpoint}")
        outputs = stack_outputs("crm-demo")
        store = add_store("crm-demo", "shopify", DEMO_DOMAIN, DEMO_SECRET)
        print(f"store {store.domain}: store_id {store.store_id}, workspace {store.workspace_id}")
        tap = tap_events(outputs["EventBusName"])
        deliveries, expected = simulate_orders(orders, customers, seed)
        # One delivery Shopify signed but nobody can read: it must be kept, not lost.
        deliveries.append(Delivery("orders/create", b"<html>not json</html>", "demo-unreadable",
                                   deliveries[0].triggered_at))
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(lambda d: post_delivery(runtime.api_url, d, DEMO_DOMAIN, DEMO_SECRET), deliveries))
        sent_seconds = time.perf_counter() - started
        forged = post_delivery(runtime.api_url, deliveries[0], DEMO_DOMAIN, "not-the-secret")[0]
        drained = runtime.wait_idle(timeout=120)
        report(runtime, store.api_key, outputs, deliveries, results, sent_seconds, forged, expected, tap, drained)
        return 0 if drained and verify(outputs["TableName"], expected) else 1


def report(runtime: LocalRuntime, api_key: str, outputs: dict[str, str], deliveries: list[Delivery],
           results: list[tuple[int, float]], sent_seconds: float, forged_status: int, expected: Any,
           tap: str, drained: bool) -> None:
    statuses = Counter(status for status, _ in results)
    latencies = sorted(seconds for _, seconds in results)
    entities = table_entities(outputs["TableName"])
    profiles = entities.get("profile", [])
    revenue = sum((Decimal(p["total_spent"]) for p in profiles), Decimal("0"))
    events = drain_tap(tap)
    print("\n== CRM demo report ==")
    print(f"webhooks sent            {len(deliveries)} in {sent_seconds:.1f} s "
          f"({len(deliveries) / sent_seconds:.0f}/s; p50 {statistics.median(latencies) * 1000:.0f} ms, "
          f"p95 {latencies[int(len(latencies) * 0.95) - 1] * 1000:.0f} ms)")
    print(f"webhooks accepted        {statuses.get(200, 0)} (other answers: "
          f"{ {k: v for k, v in statuses.items() if k != 200} or 'none'})")
    print(f"forged signature         answered {forged_status}")
    print(f"queues drained           {'yes' if drained else 'NO (timed out)'}")
    print(f"profiles                 {len(profiles)}")
    print(f"orders                   {len(entities.get('order', []))} (distinct; duplicates and stale updates ignored)")
    print(f"total revenue            {revenue:.2f} USD (net of refunds)")
    print("top customers by lifetime value (read back through GET /customers/{id}):")
    for profile in sorted(profiles, key=lambda p: Decimal(p["total_spent"]), reverse=True)[:5]:
        _, view = http("GET", f"{runtime.api_url}/customers/{profile['profile_id']}",
                       headers={"x-api-key": api_key})
        print(f"  {view['email']:<40} {view['orders_count']:>3} orders  {view['total_spent']:>9} "
              f"{view['currency']}  AOV {view['average_order_value']}")
    archive = list(archived_deliveries(outputs["ArchiveBucketName"]))
    print(f"archived deliveries      {len(archive)} (raw bodies, byte for byte; replay with `crm replay`)")
    print(f"events published         {dict(events) or 'none'}")
    print(f"ingest DLQ depth         {queue_depth(outputs['IngestDeadLetterQueueUrl'])} "
          "(the signed, unreadable delivery: archived and parked with its reason; `crm dlq list`)")


def verify(table: str, expected: Any) -> bool:
    """Compare every profile with totals computed independently from the simulated orders."""
    profiles = {p["email"]: p for p in table_entities(table).get("profile", [])}
    wrong = [email for email, (count, spent) in expected.by_email().items()
             if email not in profiles or int(profiles[email]["orders_count"]) != count
             or Decimal(profiles[email]["total_spent"]) != spent]
    print(f"verified                 {len(expected.by_email()) - len(wrong)}/{len(expected.by_email())} "
          "profiles match the expected order counts and totals to the cent")
    return not wrong
