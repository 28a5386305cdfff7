"""POST /track on the stack provisioned from template.yaml: the Chalice app archives and enqueues,
and the profiles function reads the queued request as tracking."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from chalice.test import Client
from crm.adapters.dynamodb import DynamoStoreDirectory
from crm.archive import unframe
from crm.models.ingest import IngestEnvelope
from crm.models.stores import Platform, StoreRegistration
from crm.stores import register_store
from crm.tracking import track_events
from crm_local.lambdas import Function, load_handler
from crm_local.provision import Provisioned

from tests.aws import client, queue_arn, receive_all, sqs_event
from tests.builders import NOW

pytestmark = pytest.mark.integration

UseEnv = Callable[[str], None]
ORIGIN = "https://shop.example"


@pytest.fixture
def registration(provisioned: Provisioned) -> StoreRegistration:
    return register_store(DynamoStoreDirectory(provisioned.outputs["TableName"]), Platform.SHOPIFY,
                          "track-shop.myshopify.com", "secret", NOW, origins=[ORIGIN])


@pytest.fixture
def track(provisioned: Provisioned, function_env: UseEnv) -> Client:
    function_env("TrackFunction")
    spec = provisioned.functions["TrackFunction"]
    return Client(load_handler(spec.code_path, spec.handler, spec.logical_id))


def track_body(write_key: str, **extra: Any) -> bytes:
    return json.dumps({"write_key": write_key, "anonymous_id": "anon-1", "events": [
        {"type": "page_viewed", "event_id": "e-1", "occurred_at": "2026-03-01T12:00:00Z",
         "url": "https://shop.example/?utm_source=ig", "utm": {"source": "ig"}},
        {"type": "identify", "event_id": "e-2", "occurred_at": "2026-03-01T12:01:00Z",
         "email": "Anon@Example.com", "consent": {"email": "subscribed"}},
    ], **extra}).encode()


def test_accepted_events_are_archived_and_enqueued_then_read_as_tracking(
    provisioned: Provisioned, function_env: UseEnv, registration: StoreRegistration, track: Client,
) -> None:
    raw = track_body(registration.write_key)
    response = track.http.post("/track", body=raw, headers={"Content-Type": "text/plain;charset=UTF-8",
                                                            "Origin": ORIGIN})

    assert response.status_code == 202, response.body
    assert response.json_body == {"status": "accepted", "events": 2}
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert response.headers["Vary"] == "Origin"

    [message] = receive_all(provisioned.outputs["IngestQueueUrl"])
    envelope = IngestEnvelope.model_validate_json(message["Body"])
    assert (envelope.source, envelope.platform, envelope.workspace_id, envelope.store_id) == (
        "track", Platform.SHOPIFY, registration.workspace_id, registration.store_id)
    bucket = provisioned.outputs["ArchiveBucketName"]
    [listed] = client("s3").list_objects_v2(Bucket=bucket, Prefix="deliveries/")["Contents"]
    [(header, archived)] = unframe(client("s3").get_object(Bucket=bucket, Key=listed["Key"])["Body"].read())
    assert archived == raw
    assert header.envelope(archived) == envelope
    [page, identify] = track_events(envelope, archived)
    assert page.touch is not None and page.touch.source == "ig"
    assert identify.email == "anon@example.com"

    # The profiles function reads it as tracking (not as a Shopify webhook) and parks nothing.
    function_env("ProfilesFunction")
    event = sqs_event([message], queue_arn(provisioned.outputs["IngestQueueUrl"]))
    assert Function(provisioned.functions["ProfilesFunction"]).invoke(event) == {"batchItemFailures": []}
    assert receive_all(provisioned.outputs["IngestDeadLetterQueueUrl"]) == []


@pytest.mark.parametrize(("headers", "raw", "status"), [
    ({"Origin": "https://evil.example"}, None, 403),
    ({"Origin": ORIGIN}, track_body("wk_not_a_key"), 401),
    ({"Origin": ORIGIN}, b"[]", 400),
    ({"Origin": ORIGIN}, b" " * (33 * 1024), 413),
])
def test_refused_requests_store_nothing(
    provisioned: Provisioned, registration: StoreRegistration, track: Client, headers: dict[str, str],
    raw: bytes | None, status: int,
) -> None:
    body = raw if raw is not None else track_body(registration.write_key)
    response = track.http.post("/track", body=body, headers={"Content-Type": "application/json", **headers})
    assert response.status_code == status
    assert "error" in response.json_body
    assert "Access-Control-Allow-Origin" not in response.headers
    assert receive_all(provisioned.outputs["IngestQueueUrl"]) == []


def test_the_preflight_allows_the_write_key_header(track: Client) -> None:
    response = track.http.request("OPTIONS", "/track", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-crm-write-key"})
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "X-CRM-Write-Key" in response.headers["Access-Control-Allow-Headers"]
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
