"""POST /track on the stack provisioned from template.yaml: the Chalice app archives and enqueues,
and the profiles function reads the queued request as tracking."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from chalice.test import Client
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.stores import DynamoStoreDirectory
from crm.archive import unframe
from crm.models.consent import ConsentState
from crm.models.ingest import IngestEnvelope
from crm.models.profile import Profile
from crm.models.stores import Platform, StoreRegistration
from crm.stores import register_store
from crm.tracking import track_events
from crm_local.lambdas import Function, load_handler
from crm_local.provision import Provisioned

from tests.aws import client, queue_arn, receive_all, sqs_event
from tests.builders import NOW, compact, fixture_json, shopify_headers

pytestmark = pytest.mark.integration

UseEnv = Callable[[str], None]
ORIGIN = "https://shop.example"
DOMAIN = "track-shop.myshopify.com"
SECRET = "secret"
# The track function reads the real clock: events are sent as a page would, a moment ago.
SENT_AT = datetime.now(UTC) - timedelta(minutes=2)


@pytest.fixture
def registration(provisioned: Provisioned) -> StoreRegistration:
    return register_store(DynamoStoreDirectory(provisioned.outputs["TableName"]), Platform.SHOPIFY,
                          DOMAIN, SECRET, NOW, origins=[ORIGIN])


@pytest.fixture
def track(provisioned: Provisioned, function_env: UseEnv) -> Client:
    function_env("TrackFunction")
    spec = provisioned.functions["TrackFunction"]
    return Client(load_handler(spec.code_path, spec.handler, spec.logical_id))


def track_body(write_key: str, **extra: Any) -> bytes:
    return json.dumps({"write_key": write_key, "anonymous_id": "anon-1", "events": [
        {"type": "page_viewed", "event_id": "e-1", "occurred_at": SENT_AT.isoformat(),
         "url": "https://shop.example/?utm_source=ig", "utm": {"source": "ig"}},
        {"type": "identify", "event_id": "e-2", "occurred_at": (SENT_AT + timedelta(seconds=30)).isoformat(),
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
    [page, identify] = track_events(envelope, raw)
    assert page.touch is not None and page.touch.source == "ig"
    assert identify.email == "anon@example.com"

    # The profiles function archives it, reads it as tracking (not as a Shopify webhook) and parks nothing.
    function_env("ProfilesFunction")
    event = sqs_event([message], queue_arn(provisioned.outputs["IngestQueueUrl"]))
    assert Function(provisioned.functions["ProfilesFunction"]).invoke(event) == {"batchItemFailures": []}
    assert receive_all(provisioned.outputs["IngestDeadLetterQueueUrl"]) == []
    bucket = provisioned.outputs["ArchiveBucketName"]
    [listed] = client("s3").list_objects_v2(Bucket=bucket, Prefix="deliveries/")["Contents"]
    [(header, archived)] = unframe(client("s3").get_object(Bucket=bucket, Key=listed["Key"])["Body"].read())
    assert archived == raw
    assert header.envelope(archived) == envelope.model_copy(update={"archived": True})


@pytest.mark.parametrize(("headers", "raw", "status"), [
    ({"Origin": "https://evil.example"}, None, 403),
    ({"Origin": ORIGIN}, track_body("wk_not_a_key"), 401),
    ({"Origin": ORIGIN}, b"[]", 400),
    ({"Origin": ORIGIN}, b" " * (33 * 1024), 413),
    # Refused for its age before its key is looked up.
    ({"Origin": ORIGIN}, track_body("wk_not_a_key", events=[{"type": "page_viewed", "event_id": "old", "occurred_at": (
        datetime.now(UTC) - timedelta(days=8)).isoformat()}]), 400),
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


# --- the review's reproduction: a forged identify against a shopper Shopify knows ----------------


def _run_profiles(provisioned: Provisioned, function_env: UseEnv) -> None:
    function_env("ProfilesFunction")
    messages = receive_all(provisioned.outputs["IngestQueueUrl"])
    event = sqs_event(messages, queue_arn(provisioned.outputs["IngestQueueUrl"]))
    assert Function(provisioned.functions["ProfilesFunction"]).invoke(event) == {"batchItemFailures": []}


def _signed_customer(webhooks: Client, delivery_id: str, state: str, at: datetime) -> None:
    customer = fixture_json("customers/update")
    customer.update(email="victim@example.com", first_name="Vic", updated_at=at.isoformat(),
                    email_marketing_consent={"state": state, "consent_updated_at": at.isoformat()})
    raw = compact(customer)
    headers = shopify_headers(raw, secret=SECRET, domain=DOMAIN, topic="customers/update", delivery_id=delivery_id,
                              triggered_at=at.isoformat())
    assert webhooks.http.post("/webhooks/shopify", body=raw, headers=headers).status_code == 200


def _victim(provisioned: Provisioned, registration: StoreRegistration) -> Profile:
    repository = DynamoProfileRepository(provisioned.outputs["TableName"])
    profile_id = repository.profile_id_for_identity(registration.workspace_id, "email#victim@example.com")
    assert profile_id is not None
    profile = repository.get_profile(registration.workspace_id, profile_id)
    assert profile is not None
    return profile


def test_a_forged_identify_through_post_track_grants_nothing_and_a_signed_unsubscribe_wins(
    provisioned: Provisioned, function_env: UseEnv, registration: StoreRegistration, track: Client,
) -> None:
    function_env("WebhooksFunction")
    spec = provisioned.functions["WebhooksFunction"]
    webhooks = Client(load_handler(spec.code_path, spec.handler, spec.logical_id))
    known_at = datetime.now(UTC) - timedelta(days=1)
    _signed_customer(webhooks, "signed-1", "not_subscribed", known_at)
    _run_profiles(provisioned, function_env)

    function_env("TrackFunction")
    forged = json.dumps({"write_key": registration.write_key, "anonymous_id": "attacker", "events": [
        {"type": "identify", "event_id": "forged", "occurred_at": "2099-01-01T00:00:00Z",
         "email": "victim@example.com", "phone": "+16135550199", "consent": {"email": "subscribed"},
         "url": "https://shop.example/?utm_source=evil", "utm": {"source": "evil"}}]}).encode()
    assert track.http.post("/track", body=forged, headers={"Origin": ORIGIN}).status_code == 202
    _run_profiles(provisioned, function_env)

    after_forgery = _victim(provisioned, registration)
    assert after_forgery.consents["email"].state is ConsentState.NOT_SUBSCRIBED
    assert after_forgery.consent_requests["email"].at < datetime(2099, 1, 1, tzinfo=UTC)  # clamped to receipt
    assert (after_forgery.phone, after_forgery.last_touch) == (None, None)  # no planted phone, no touch

    function_env("WebhooksFunction")
    _signed_customer(webhooks, "signed-2", "unsubscribed", datetime.now(UTC))
    _run_profiles(provisioned, function_env)
    victim = _victim(provisioned, registration)
    assert victim.consents["email"].state is ConsentState.UNSUBSCRIBED
    assert victim.consents["email"].source.startswith("shopify:")
    assert victim.consent_requests == {}
