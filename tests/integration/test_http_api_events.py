"""The front door on API Gateway's HTTP API (template.yaml IngestApi, payload format 1.0): the webhooks and
track functions answer its events as they answer the REST API's, whatever the body's content type (HTTP
APIs pass a body that is not JSON base64-encoded, and a signature is over the raw bytes)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from crm.adapters.stores import DynamoStoreDirectory
from crm.archive import unframe
from crm.clock import utc_now
from crm.models.ingest import IngestEnvelope
from crm.models.stores import Platform
from crm.stores import register_store
from crm_local.event_shapes import http_api_event
from crm_local.lambdas import Function
from crm_local.provision import Provisioned

from tests.aws import client, queue_arn, receive_all, sqs_event
from tests.builders import (
    CUSTOM_DOMAIN,
    CUSTOM_SECRET,
    DOMAIN,
    NOW,
    SECRET,
    compact,
    custom_headers,
    custom_order_json,
    placed_order_bytes,
    shopify_headers,
)

pytestmark = pytest.mark.integration

UseEnv = Callable[[str], None]
ORIGIN = "https://shop.example"


def _invoke(provisioned: Provisioned, function_env: UseEnv, name: str, event: dict[str, Any]) -> dict[str, Any]:
    function_env(name)
    answer: dict[str, Any] = Function(provisioned.functions[name]).invoke(event)
    return answer


def _archived(provisioned: Provisioned) -> list[bytes]:
    bucket = provisioned.outputs["ArchiveBucketName"]
    s3 = client("s3")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="deliveries/").get("Contents", [])
    return [raw for o in listed for _, raw in unframe(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())]


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "application/octet-stream"])
def test_a_signed_store_webhook_is_accepted_from_the_http_api(
    provisioned: Provisioned, function_env: UseEnv, content_type: str
) -> None:
    register_store(DynamoStoreDirectory(provisioned.outputs["TableName"]), Platform.SHOPIFY, DOMAIN, SECRET, NOW)
    body = placed_order_bytes()
    headers = {**shopify_headers(body, delivery_id="d-http"), "Content-Type": content_type}
    event = http_api_event("POST", "/webhooks/{platform}", "/webhooks/shopify", headers, body)
    assert event["isBase64Encoded"] is (content_type != "application/json")

    answer = _invoke(provisioned, function_env, "WebhooksFunction", event)

    assert answer["statusCode"] == 200, answer
    assert json.loads(answer["body"]) == {"status": "accepted", "delivery_id": "d-http"}
    [message] = receive_all(provisioned.outputs["IngestQueueUrl"])
    assert IngestEnvelope.model_validate_json(message["Body"]).meta.delivery_id == "d-http"
    assert _archived(provisioned) == []  # archived by the profiles function, before it applies the delivery
    event = sqs_event([message], queue_arn(provisioned.outputs["IngestQueueUrl"]))
    assert _invoke(provisioned, function_env, "ProfilesFunction", event) == {"batchItemFailures": []}
    assert _archived(provisioned) == [body]  # the exact bytes the store signed


def test_a_forged_webhook_is_refused_from_the_http_api(provisioned: Provisioned, function_env: UseEnv) -> None:
    register_store(DynamoStoreDirectory(provisioned.outputs["TableName"]), Platform.SHOPIFY, DOMAIN, SECRET, NOW)
    body = placed_order_bytes()
    event = http_api_event("POST", "/webhooks/{platform}", "/webhooks/shopify",
                           shopify_headers(body, secret="not-the-secret"), body)
    assert _invoke(provisioned, function_env, "WebhooksFunction", event)["statusCode"] == 401
    assert receive_all(provisioned.outputs["IngestQueueUrl"]) == []


def test_the_canonical_events_route_is_served_from_the_http_api(
    provisioned: Provisioned, function_env: UseEnv
) -> None:
    register_store(DynamoStoreDirectory(provisioned.outputs["TableName"]), Platform.CUSTOM, CUSTOM_DOMAIN,
                   CUSTOM_SECRET, NOW)
    body = compact(custom_order_json())
    event = http_api_event("POST", "/events", "/events", custom_headers(body, event_id="ev-http", timestamp=utc_now()),
                           body)
    answer = _invoke(provisioned, function_env, "WebhooksFunction", event)
    assert (answer["statusCode"], json.loads(answer["body"])) == (200, {"status": "accepted",
                                                                        "delivery_id": "ev-http"})


def test_track_and_its_preflight_are_served_from_the_http_api(provisioned: Provisioned, function_env: UseEnv) -> None:
    registration = register_store(DynamoStoreDirectory(provisioned.outputs["TableName"]), Platform.SHOPIFY, DOMAIN,
                                  SECRET, NOW, origins=[ORIGIN])
    preflight = http_api_event("OPTIONS", "/track", "/track", {
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"},
        b"")
    answer = _invoke(provisioned, function_env, "TrackFunction", preflight)
    assert answer["statusCode"] == 204
    assert answer["headers"]["Access-Control-Allow-Origin"] == ORIGIN

    sent_at = datetime.now(UTC) - timedelta(minutes=1)
    body = json.dumps({"write_key": registration.write_key, "anonymous_id": "anon-1", "events": [
        {"type": "page_viewed", "event_id": "e-http", "occurred_at": sent_at.isoformat(),
         "url": "https://shop.example/"}]}).encode()
    # navigator.sendBeacon sends text/plain: the HTTP API passes it base64-encoded.
    event = http_api_event("POST", "/track", "/track", {"Content-Type": "text/plain;charset=UTF-8", "Origin": ORIGIN},
                           body, source_ip="198.51.100.4")
    answer = _invoke(provisioned, function_env, "TrackFunction", event)
    assert answer["statusCode"] == 202, answer
    assert json.loads(answer["body"]) == {"status": "accepted", "events": 1}
    [message] = receive_all(provisioned.outputs["IngestQueueUrl"])
    assert IngestEnvelope.model_validate_json(message["Body"]).source == "track"
