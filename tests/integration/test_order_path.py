"""The signed Shopify order path, function by function, on the stack provisioned from template.yaml.

webhooks (Chalice) -> ingest queue -> profiles (SQS event) -> table -> stream -> outbox -> bus.
"""

from __future__ import annotations

import base64
import json
import os
import random
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError
from chalice.test import Client
from crm.adapters.items import from_item
from crm.adapters.messaging import SqsIngestQueue
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.stores import DynamoStoreDirectory
from crm.archive import unframe
from crm.ingestion import apply_event
from crm.models.ingest import IngestEnvelope
from crm.models.profile import OrderRecord
from crm.models.stores import Platform, StoreRegistration
from crm.profiles import profile_id_for
from crm.stores import register_store
from crm_local.lambdas import Function, load_handler
from crm_local.provision import Provisioned

from tests.aws import (
    bus_events,
    client,
    queue_arn,
    receive_all,
    reset_crm_caches,
    sqs_event,
    stream_records,
    subscribe_queue_to_bus,
)
from tests.builders import (
    DOMAIN,
    FIXTURE_ORDER_ID,
    NOW,
    SECRET,
    order,
    placed_order_bytes,
    shopify_headers,
)

pytestmark = pytest.mark.integration

UseEnv = Callable[[str], None]


@pytest.fixture
def registration(provisioned: Provisioned) -> StoreRegistration:
    directory = DynamoStoreDirectory(provisioned.outputs["TableName"])
    return register_store(directory, Platform.SHOPIFY, DOMAIN, SECRET, NOW)


@pytest.fixture
def webhooks(provisioned: Provisioned, function_env: UseEnv) -> Client:
    function_env("WebhooksFunction")
    spec = provisioned.functions["WebhooksFunction"]
    return Client(load_handler(spec.code_path, spec.handler, spec.logical_id))


def _post(webhooks: Client, body: bytes, headers: dict[str, str], platform: str = "shopify") -> Any:
    return webhooks.http.post(f"/webhooks/{platform}", headers=headers, body=body)


def _run_profiles(provisioned: Provisioned, function_env: UseEnv, messages: list[dict[str, Any]]) -> Any:
    function_env("ProfilesFunction")
    event = sqs_event(messages, queue_arn(provisioned.outputs["IngestQueueUrl"]))
    return Function(provisioned.functions["ProfilesFunction"]).invoke(event)


def _run_outbox(provisioned: Provisioned, function_env: UseEnv, records: list[dict[str, Any]]) -> Any:
    function_env("OutboxFunction")
    return Function(provisioned.functions["OutboxFunction"]).invoke({"Records": records})


def test_signed_order_becomes_a_profile_and_domain_events(
    provisioned: Provisioned, function_env: UseEnv, registration: StoreRegistration, webhooks: Client
) -> None:
    body = placed_order_bytes()

    response = _post(webhooks, body, shopify_headers(body, delivery_id="545ebdd4-b7be"))

    assert response.status_code == 200
    assert response.json_body == {"status": "accepted", "delivery_id": "545ebdd4-b7be"}

    # The webhook enqueued an envelope with the exact bytes, its one request.
    messages = receive_all(provisioned.outputs["IngestQueueUrl"])
    assert len(messages) == 1
    envelope = IngestEnvelope.model_validate_json(messages[0]["Body"])
    assert (envelope.workspace_id, envelope.store_id) == (registration.workspace_id, registration.store_id)
    bucket = provisioned.outputs["ArchiveBucketName"]
    assert "Contents" not in client("s3").list_objects_v2(Bucket=bucket, Prefix="deliveries/")

    # The profiles function archives the batch (through Firehose into the bucket), then applies it.
    assert _run_profiles(provisioned, function_env, messages) == {"batchItemFailures": []}
    [listed] = client("s3").list_objects_v2(Bucket=bucket, Prefix="deliveries/")["Contents"]
    [(header, archived)] = unframe(client("s3").get_object(Bucket=bucket, Key=listed["Key"])["Body"].read())
    assert archived == body
    assert header.meta.topic == "orders/create"
    assert header.envelope(archived) == envelope.model_copy(update={"archived": True})

    table = provisioned.outputs["TableName"]
    repository = DynamoProfileRepository(table)
    profile_id = repository.profile_id_for_identity(registration.workspace_id, "email#jon@example.com")
    assert profile_id == profile_id_for(registration.workspace_id, "email#jon@example.com")
    profile = repository.get_profile(registration.workspace_id, profile_id)
    assert profile is not None
    assert (profile.orders_count, profile.total_spent, profile.currency) == (1, Decimal("404.95"), "USD")
    assert profile.email == "jon@example.com"
    raw = client("dynamodb").get_item(TableName=table, Key={
        "pk": {"S": f"WS#{registration.workspace_id}#ORDER#{registration.store_id}#{FIXTURE_ORDER_ID}"},
        "sk": {"S": "ORDER"}})["Item"]
    stored = OrderRecord.model_validate(from_item(raw)).order
    assert stored is not None and stored.order_id == FIXTURE_ORDER_ID
    assert str(stored.total_price) == "404.95"
    assert client("sqs").receive_message(QueueUrl=provisioned.outputs["IngestDeadLetterQueueUrl"]).get(
        "Messages", []) == []

    # The outbox turns the table's stream into events: the flows' on their queue, BusEventTypes' on the bus.
    sink = subscribe_queue_to_bus(provisioned.outputs["EventBusName"], f"{provisioned.stack_name}-sink")
    records = stream_records(provisioned)
    assert _run_outbox(provisioned, function_env, records) == {"batchItemFailures": []}

    assert [e["detail-type"] for e in bus_events(sink)] == ["OrderPlaced"]
    events = bus_events(provisioned.outputs["FlowsQueueUrl"])
    # The sample order ticks "accepts marketing" (buyer_accepts_marketing): the profile's first email consent.
    assert sorted(e["detail-type"] for e in events) == [
        "ConsentChanged", "ContactCreated", "CustomerCreated", "OrderPlaced"]
    assert {e["source"] for e in events} == {"crm"}
    [placed] = [e["detail"] for e in events if e["detail-type"] == "OrderPlaced"]
    assert placed["event_id"] == f"OrderPlaced:{registration.workspace_id}:{registration.store_id}:{FIXTURE_ORDER_ID}"
    assert (placed["order_id"], placed["total_price"], placed["net_total"]) == (FIXTURE_ORDER_ID, "404.95", "404.95")
    assert placed["profile_id"] == profile_id
    assert "jon@example.com" not in json.dumps(events)  # no contact data on the bus
    [created] = [e["detail"] for e in events if e["detail-type"] == "CustomerCreated"]
    assert created["profile_id"] == profile_id


def test_redelivered_webhook_is_applied_once(
    provisioned: Provisioned, function_env: UseEnv, registration: StoreRegistration, webhooks: Client
) -> None:
    body = placed_order_bytes()
    headers = shopify_headers(body, delivery_id="same-delivery")
    assert _post(webhooks, body, headers).status_code == 200
    assert _post(webhooks, body, headers).status_code == 200  # Shopify retried: both are accepted

    messages = receive_all(provisioned.outputs["IngestQueueUrl"])
    assert len(messages) == 2
    assert _run_profiles(provisioned, function_env, messages) == {"batchItemFailures": []}

    repository = DynamoProfileRepository(provisioned.outputs["TableName"])
    profile = repository.get_profile(registration.workspace_id,
                                     profile_id_for(registration.workspace_id, "email#jon@example.com"))
    assert profile is not None
    assert (profile.orders_count, profile.total_spent, profile.revision) == (1, Decimal("404.95"), 1)

    order_records = [r for r in stream_records(provisioned)
                     if r["dynamodb"]["Keys"]["pk"]["S"].endswith(f"#ORDER#{registration.store_id}#{FIXTURE_ORDER_ID}")]
    assert [r["eventName"] for r in order_records] == ["INSERT"]


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"X-Shopify-Hmac-Sha256": "d3Jvbmc="}, 401),
        ({"X-Shopify-Shop-Domain": "stranger.myshopify.com"}, 401),
        ({"X-Shopify-Hmac-Sha256": None}, 401),
        ({"X-Shopify-Topic": None}, 400),
    ],
)
def test_refused_delivery_stores_nothing(
    provisioned: Provisioned, registration: StoreRegistration, webhooks: Client,
    change: dict[str, str | None], status: int,
) -> None:
    body = placed_order_bytes()
    headers = {**shopify_headers(body), **{k: v for k, v in change.items() if v is not None}}
    for name in [k for k, v in change.items() if v is None]:
        del headers[name]

    response = _post(webhooks, body, headers)

    assert response.status_code == status
    assert "error" in response.json_body
    assert receive_all(provisioned.outputs["IngestQueueUrl"]) == []
    assert client("s3").list_objects_v2(Bucket=provisioned.outputs["ArchiveBucketName"]).get("KeyCount") == 0


def test_unknown_platform_is_404(provisioned: Provisioned, registration: StoreRegistration, webhooks: Client) -> None:
    body = placed_order_bytes()
    response = _post(webhooks, body, shopify_headers(body), platform="magento")
    assert response.status_code == 404
    assert receive_all(provisioned.outputs["IngestQueueUrl"]) == []


def test_one_bad_record_neither_blocks_nor_drops_its_neighbours(
    provisioned: Provisioned, function_env: UseEnv, registration: StoreRegistration, webhooks: Client
) -> None:
    good = placed_order_bytes()
    not_json = b"<xml>signed but not JSON</xml>"
    assert _post(webhooks, good, shopify_headers(good, delivery_id="good")).status_code == 200
    assert _post(webhooks, not_json, shopify_headers(not_json, delivery_id="not-json")).status_code == 200
    queued = receive_all(provisioned.outputs["IngestQueueUrl"])
    assert len(queued) == 2
    # A delivery whose archived body has gone: a failure that a retry might fix.
    lost = json.loads(queued[0]["Body"]) | {"body": None, "archive_key": "raw/shopify/lost", "meta": {
        "topic": "orders/create", "delivery_id": "lost"}}
    sqs = client("sqs")
    sqs.send_message(QueueUrl=provisioned.outputs["IngestQueueUrl"], MessageBody=json.dumps(lost))
    messages = queued + receive_all(provisioned.outputs["IngestQueueUrl"])
    [lost_message] = [m for m in messages if json.loads(m["Body"])["meta"]["delivery_id"] == "lost"]

    result = _run_profiles(provisioned, function_env, messages)

    assert result == {"batchItemFailures": [{"itemIdentifier": lost_message["MessageId"]}]}
    profile = DynamoProfileRepository(provisioned.outputs["TableName"]).get_profile(
        registration.workspace_id, profile_id_for(registration.workspace_id, "email#jon@example.com"))
    assert profile is not None
    assert profile.orders_count == 1
    [dead] = receive_all(provisioned.outputs["IngestDeadLetterQueueUrl"])
    assert json.loads(dead["Body"])["meta"]["delivery_id"] == "not-json"
    reason = dead["MessageAttributes"]["reason"]["StringValue"]
    assert "not-json" in reason
    assert "not valid JSON" in reason


def test_outbox_fails_the_invocation_when_the_bus_refuses_the_request(
    provisioned: Provisioned, function_env: UseEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused PutEvents request must fail the invocation, so Lambda retries the batch: no event is lost."""
    assert apply_event(DynamoProfileRepository(provisioned.outputs["TableName"]), order("1"), NOW)
    records = stream_records(provisioned)
    entities = sorted(r["dynamodb"]["NewImage"]["entity"]["S"] for r in records if r["eventName"] == "INSERT")
    assert entities == ["identity", "identity", "order", "profile", "timeline"]
    function_env("OutboxFunction")
    monkeypatch.setenv("EVENT_BUS_NAME", f"{provisioned.stack_name}-no-such-bus")
    reset_crm_caches()

    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        Function(provisioned.functions["OutboxFunction"]).invoke({"Records": records})


def test_large_delivery_travels_through_the_archive(
    provisioned: Provisioned, function_env: UseEnv, registration: StoreRegistration, webhooks: Client
) -> None:
    payload = json.loads(placed_order_bytes()) | {"note": "n" * 250_000}
    body = json.dumps(payload, separators=(",", ":")).encode()
    assert _post(webhooks, body, shopify_headers(body, delivery_id="large")).status_code == 200
    messages = receive_all(provisioned.outputs["IngestQueueUrl"])
    assert len(messages) == 1
    assert len(messages[0]["Body"]) < 10_000  # the body stays in S3; the message only points at it
    envelope = IngestEnvelope.model_validate_json(messages[0]["Body"])
    assert envelope.body is None
    assert envelope.archive_key is not None
    archived = client("s3").get_object(Bucket=provisioned.outputs["ArchiveBucketName"], Key=envelope.archive_key)
    assert archived["Body"].read() == body
    assert archived["Metadata"]["topic"] == "orders/create"

    assert _run_profiles(provisioned, function_env, messages) == {"batchItemFailures": []}

    profile = DynamoProfileRepository(provisioned.outputs["TableName"]).get_profile(
        registration.workspace_id, profile_id_for(registration.workspace_id, "email#jon@example.com"))
    assert profile is not None
    assert profile.total_spent == Decimal("404.95")


def test_a_delivery_the_queue_refuses_is_answered_503_so_the_platform_retries(
    provisioned: Provisioned, function_env: UseEnv, registration: StoreRegistration, webhooks: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*_: object) -> None:
        raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "try again"}}, "SendMessage")

    queue_url = provisioned.outputs["IngestQueueUrl"]
    monkeypatch.setattr(SqsIngestQueue, "enqueue", refuse)
    body = placed_order_bytes()
    response = _post(webhooks, body, shopify_headers(body, delivery_id="unstorable"))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert receive_all(queue_url) == []


def test_a_batch_the_archive_refuses_is_not_applied_and_comes_back_whole(
    provisioned: Provisioned, function_env: UseEnv, registration: StoreRegistration, webhooks: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bodies = [placed_order_bytes(id=n) for n in (1, 2)]
    for n, body in enumerate(bodies):
        assert _post(webhooks, body, shopify_headers(body, delivery_id=f"d-{n}")).status_code == 200
    messages = receive_all(provisioned.outputs["IngestQueueUrl"])
    function_env("ProfilesFunction")
    stream = os.environ["ARCHIVE_STREAM"]
    monkeypatch.setenv("ARCHIVE_STREAM", f"{provisioned.stack_name}-no-such-stream")
    reset_crm_caches()
    event = sqs_event(messages, queue_arn(provisioned.outputs["IngestQueueUrl"]))
    # The invocation fails: SQS makes every record visible again (and dead-letters them after maxReceiveCount).
    with pytest.raises(ClientError, match="ResourceNotFound"):
        Function(provisioned.functions["ProfilesFunction"]).invoke(event)
    table = provisioned.outputs["TableName"]
    assert "Item" not in client("dynamodb").get_item(TableName=table, Key={
        "pk": {"S": f"WS#{registration.workspace_id}#ORDER#{registration.store_id}#1"}, "sk": {"S": "ORDER"}})
    bucket = provisioned.outputs["ArchiveBucketName"]
    assert "Contents" not in client("s3").list_objects_v2(Bucket=bucket, Prefix="deliveries/")

    # The batch again, the archive back: archived in one record, then applied.
    monkeypatch.setenv("ARCHIVE_STREAM", stream)
    reset_crm_caches()
    assert _run_profiles(provisioned, function_env, messages) == {"batchItemFailures": []}
    [listed] = client("s3").list_objects_v2(Bucket=bucket, Prefix="deliveries/")["Contents"]
    archived = unframe(client("s3").get_object(Bucket=bucket, Key=listed["Key"])["Body"].read())
    assert [(header.meta.delivery_id, body) for header, body in archived] == [("d-0", bodies[0]), ("d-1", bodies[1])]
    assert "Item" in client("dynamodb").get_item(TableName=table, Key={
        "pk": {"S": f"WS#{registration.workspace_id}#ORDER#{registration.store_id}#1"}, "sk": {"S": "ORDER"}})


def test_a_signed_order_the_table_cannot_hold_is_parked_at_once_with_its_reason(
    provisioned: Provisioned, function_env: UseEnv, registration: StoreRegistration, webhooks: Client
) -> None:
    """A line item title of 600 KB makes items over DynamoDB's 400 KB: no retry can store it, so it is parked on
    its first attempt (archived, replayable once the code can hold it), not retried until the queue gives up. The
    title is random text: a packed item deflates what repeats (crm.adapters.items)."""
    payload = json.loads(placed_order_bytes())
    payload["line_items"][0]["title"] = base64.b64encode(random.Random(7).randbytes(450_000)).decode()
    body = json.dumps(payload, separators=(",", ":")).encode()
    assert _post(webhooks, body, shopify_headers(body, delivery_id="too-big")).status_code == 200
    messages = receive_all(provisioned.outputs["IngestQueueUrl"])

    assert _run_profiles(provisioned, function_env, messages) == {"batchItemFailures": []}

    [dead] = receive_all(provisioned.outputs["IngestDeadLetterQueueUrl"])
    reason = dead["MessageAttributes"]["reason"]["StringValue"]
    assert reason.startswith("orders/create too-big: the table refused it: ")
    assert "maximum allowed size" in reason
