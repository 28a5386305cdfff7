"""The front door's store lookups, cached per container: a warm webhook makes two AWS requests (the
archive and the queue), a warm /track request two as well, and what the cache may hide stays bounded."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from chalice.test import Client
from crm.adapters import clients
from crm.adapters.secrets import SecretsManagerVault
from crm.adapters.stores import STORE_CACHE_TTL, DynamoStoreDirectory
from crm.models.stores import Platform
from crm.stores import register_store
from crm_local.lambdas import load_handler
from crm_local.provision import Provisioned

from tests.aws import client
from tests.builders import DOMAIN, NOW, SECRET, placed_order_bytes, shopify_headers

pytestmark = pytest.mark.integration

UseEnv = Callable[[str], None]
SERVICES = ("dynamodb", "secretsmanager", "firehose", "sqs", "s3")
ORIGIN = "https://shop.example"


class Clock:
    """A container's clock, moved by hand (nothing sleeps)."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class Requests:
    """Every request the crm code's own boto3 clients make, by service and operation."""

    def __init__(self) -> None:
        self.made: Counter[str] = Counter()

    def count(self, model: Any, **_: Any) -> None:
        self.made[f"{model.service_model.service_name}:{model.name}"] += 1

    def since(self, mark: Counter[str]) -> Counter[str]:
        return self.made - mark

    def attach(self) -> None:
        """Count on the clients the code uses now (switching to a function's environment makes new ones)."""
        for service in SERVICES:
            clients.client(service).meta.events.register("after-call", self.count, unique_id="test-requests")


@pytest.fixture
def requests(provisioned: Provisioned) -> Iterator[Requests]:
    counted = Requests()
    counted.attach()
    yield counted
    for service in SERVICES:
        clients.client(service).meta.events.unregister("after-call", unique_id="test-requests")


def _store_item(table: str) -> dict[str, Any]:
    found: dict[str, Any] = client("dynamodb").get_item(
        TableName=table, Key={"pk": {"S": f"STORE#shopify#{DOMAIN}"}, "sk": {"S": "STORE"}})["Item"]
    return found


def test_a_store_found_is_kept_for_the_ttl_and_then_read_again(provisioned: Provisioned, requests: Requests) -> None:
    table = provisioned.outputs["TableName"]
    registration = register_store(DynamoStoreDirectory(table), Platform.SHOPIFY, DOMAIN, SECRET, NOW,
                                  origins=[ORIGIN])
    clock = Clock()
    directory = DynamoStoreDirectory(table, SecretsManagerVault(table, clock=clock), clock=clock)

    first = requests.made.copy()
    assert directory.store_by_domain(Platform.SHOPIFY, DOMAIN) is not None
    assert requests.since(first) == Counter({"dynamodb:GetItem": 1, "secretsmanager:GetSecretValue": 1})
    warm = requests.made.copy()
    for _ in range(5):
        found = directory.store_by_domain(Platform.SHOPIFY, DOMAIN)
        assert found is not None and found.webhook_secrets == (SECRET,)
        assert directory.store_by_write_key(str(registration.write_key)) is not None
    # The write key's pointer and its store were read once; the domain's store item was already kept.
    assert requests.since(warm) == Counter({"dynamodb:GetItem": 1})

    # The store item changes (its origins): a container sees it once its copy has expired.
    item = _store_item(table)
    item["allowed_origins"] = {"L": [{"S": "https://other.example"}]}
    client("dynamodb").put_item(TableName=table, Item=item)
    clock.now += STORE_CACHE_TTL - timedelta(seconds=1)
    kept = directory.store_by_write_key(str(registration.write_key))
    assert kept is not None and kept.allowed_origins == (ORIGIN,)
    clock.now += timedelta(seconds=1)
    again = directory.store_by_write_key(str(registration.write_key))
    assert again is not None and again.allowed_origins == ("https://other.example",)
    read = directory.store_by_domain(Platform.SHOPIFY, DOMAIN)
    assert read is not None and read.allowed_origins == ("https://other.example",)


def test_a_missing_store_is_never_kept(provisioned: Provisioned) -> None:
    table = provisioned.outputs["TableName"]
    directory = DynamoStoreDirectory(table)
    assert directory.store_by_domain(Platform.SHOPIFY, DOMAIN) is None
    assert directory.store_by_write_key("wk_not_yet") is None

    registration = register_store(DynamoStoreDirectory(table), Platform.SHOPIFY, DOMAIN, SECRET, NOW)
    # Registered a moment after the container looked: found at once, not after a minute.
    assert directory.store_by_domain(Platform.SHOPIFY, DOMAIN) is not None
    assert directory.store_by_write_key(str(registration.write_key)) is not None


def test_no_ttl_reads_the_table_every_time(provisioned: Provisioned, requests: Requests) -> None:
    table = provisioned.outputs["TableName"]
    register_store(DynamoStoreDirectory(table), Platform.SHOPIFY, DOMAIN, SECRET, NOW)
    directory = DynamoStoreDirectory(table, cache_ttl=timedelta(0))
    directory.store_by_domain(Platform.SHOPIFY, DOMAIN)
    mark = requests.made.copy()
    for _ in range(3):
        directory.store_by_domain(Platform.SHOPIFY, DOMAIN)
    assert requests.since(mark) == Counter({"dynamodb:GetItem": 3})


def test_a_warm_webhooks_container_makes_one_request_per_delivery(
    provisioned: Provisioned, function_env: UseEnv, requests: Requests
) -> None:
    register_store(DynamoStoreDirectory(provisioned.outputs["TableName"]), Platform.SHOPIFY, DOMAIN, SECRET, NOW)
    function_env("WebhooksFunction")
    requests.attach()
    spec = provisioned.functions["WebhooksFunction"]
    webhooks = Client(load_handler(spec.code_path, spec.handler, spec.logical_id))
    body = placed_order_bytes()

    def post(delivery_id: str) -> Counter[str]:
        mark = requests.made.copy()
        answer = webhooks.http.post("/webhooks/shopify", body=body,
                                    headers=shopify_headers(body, delivery_id=delivery_id))
        assert answer.status_code == 200, answer.body
        return requests.since(mark)

    # The queue's message carries the body; the profiles function archives it (crm.archive.archive_messages).
    assert post("d-cold") == Counter({"dynamodb:GetItem": 1, "secretsmanager:GetSecretValue": 1,
                                      "sqs:SendMessage": 1})
    for n in range(3):
        assert post(f"d-warm-{n}") == Counter({"sqs:SendMessage": 1})


def test_a_warm_track_container_makes_one_request_per_request(
    provisioned: Provisioned, function_env: UseEnv, requests: Requests
) -> None:
    registration = register_store(DynamoStoreDirectory(provisioned.outputs["TableName"]), Platform.SHOPIFY, DOMAIN,
                                  SECRET, NOW, origins=[ORIGIN])
    function_env("TrackFunction")
    requests.attach()
    spec = provisioned.functions["TrackFunction"]
    track = Client(load_handler(spec.code_path, spec.handler, spec.logical_id))
    sent_at = datetime.now(UTC) - timedelta(minutes=1)

    def post(event_id: str) -> Counter[str]:
        body = json.dumps({"write_key": registration.write_key, "anonymous_id": "anon-1", "events": [
            {"type": "page_viewed", "event_id": event_id, "occurred_at": sent_at.isoformat(),
             "url": "https://shop.example/"}]})
        mark = requests.made.copy()
        answer = track.http.post("/track", body=body, headers={"Content-Type": "text/plain", "Origin": ORIGIN})
        assert answer.status_code == 202, answer.body
        return requests.since(mark)

    assert post("e-cold") == Counter({"dynamodb:GetItem": 2, "sqs:SendMessage": 1})
    for n in range(3):
        assert post(f"e-warm-{n}") == Counter({"sqs:SendMessage": 1})
