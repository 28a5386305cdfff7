"""The canonical event API (POST /events) through the webhooks Chalice app and the profiles function, on the
stack provisioned from template.yaml."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from chalice.test import Client
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.stores import DynamoStoreDirectory
from crm.clock import utc_now
from crm.models.ingest import IngestEnvelope
from crm.models.stores import Platform, StoreRegistration
from crm.profiles import profile_id_for
from crm.stores import register_store
from crm.webhooks import NOT_SIGNED_BY_A_STORE
from crm_local.lambdas import Function, load_handler
from crm_local.provision import Provisioned

from tests.aws import client, queue_arn, receive_all, sqs_event
from tests.builders import CUSTOM_DOMAIN, CUSTOM_SECRET, NOW, compact, custom_headers, custom_order_json

pytestmark = pytest.mark.integration

UseEnv = Callable[[str], None]


@pytest.fixture
def registration(provisioned: Provisioned) -> StoreRegistration:
    directory = DynamoStoreDirectory(provisioned.outputs["TableName"])
    return register_store(directory, Platform.CUSTOM, f"https://{CUSTOM_DOMAIN}/", CUSTOM_SECRET, NOW)


@pytest.fixture
def webhooks(provisioned: Provisioned, function_env: UseEnv) -> Client:
    function_env("WebhooksFunction")
    spec = provisioned.functions["WebhooksFunction"]
    return Client(load_handler(spec.code_path, spec.handler, spec.logical_id))


def _run_profiles(provisioned: Provisioned, function_env: UseEnv, messages: list[dict[str, Any]]) -> Any:
    function_env("ProfilesFunction")
    event = sqs_event(messages, queue_arn(provisioned.outputs["IngestQueueUrl"]))
    return Function(provisioned.functions["ProfilesFunction"]).invoke(event)


@pytest.mark.parametrize("path", ["/events", "/webhooks/custom"])
def test_a_signed_custom_order_becomes_a_profile(
    provisioned: Provisioned, function_env: UseEnv, registration: StoreRegistration, webhooks: Client, path: str,
) -> None:
    assert registration.domain == CUSTOM_DOMAIN
    body = compact(custom_order_json())
    headers = custom_headers(body, event_id="ev-order-1", timestamp=utc_now())

    response = webhooks.http.post(path, headers=headers, body=body)

    assert (response.status_code, response.json_body) == (200, {"status": "accepted", "delivery_id": "ev-order-1"})
    messages = receive_all(provisioned.outputs["IngestQueueUrl"])
    [envelope] = [IngestEnvelope.model_validate_json(m["Body"]) for m in messages]
    assert (envelope.platform, envelope.workspace_id, envelope.store_id) == (
        Platform.CUSTOM, registration.workspace_id, registration.store_id)
    assert envelope.meta.delivery_id == "ev-order-1"

    assert _run_profiles(provisioned, function_env, messages) == {"batchItemFailures": []}
    repository = DynamoProfileRepository(provisioned.outputs["TableName"])
    profile = repository.get_profile(registration.workspace_id,
                                     profile_id_for(registration.workspace_id, "email#ada@example.com"))
    assert profile is not None
    assert (profile.orders_count, profile.total_spent, profile.currency) == (1, Decimal("37.50"), "GBP")
    assert receive_all(provisioned.outputs["IngestDeadLetterQueueUrl"]) == []


def test_an_invalid_signed_body_is_accepted_then_dead_lettered_naming_the_field(
    provisioned: Provisioned, function_env: UseEnv, registration: StoreRegistration, webhooks: Client,
) -> None:
    body = compact({"events": [custom_order_json(), custom_order_json(order_id="1002", currency=None)]})
    response = webhooks.http.post("/events", headers=custom_headers(body, event_id="ev-batch", timestamp=utc_now()),
                                  body=body)
    assert response.status_code == 200  # authentic: kept, whatever it says

    messages = receive_all(provisioned.outputs["IngestQueueUrl"])
    assert _run_profiles(provisioned, function_env, messages) == {"batchItemFailures": []}
    [dead] = receive_all(provisioned.outputs["IngestDeadLetterQueueUrl"])
    reason = dead["MessageAttributes"]["reason"]["StringValue"]
    assert reason.startswith("events ev-batch: not a CRM event batch: events.1.currency: ")


@pytest.mark.parametrize(("change", "status", "error"), [
    ({"secret": "not-the-secret"}, 401, NOT_SIGNED_BY_A_STORE),
    ({"domain": "stranger.example"}, 401, NOT_SIGNED_BY_A_STORE),
    ({"timestamp": utc_now() - timedelta(days=1)}, 401, "webhook timestamp is outside the accepted window (a replay?)"),
    ({"event_id": ""}, 400, "missing required header X-CRM-Event-Id"),
])
def test_a_refused_request_stores_nothing(
    provisioned: Provisioned, registration: StoreRegistration, webhooks: Client,
    change: dict[str, Any], status: int, error: str,
) -> None:
    body = compact(custom_order_json())
    response = webhooks.http.post("/events", headers=custom_headers(body, **{"timestamp": utc_now(), **change}),
                                  body=body)
    assert (response.status_code, response.json_body) == (status, {"error": error})
    assert receive_all(provisioned.outputs["IngestQueueUrl"]) == []
    assert client("s3").list_objects_v2(Bucket=provisioned.outputs["ArchiveBucketName"]).get("KeyCount") == 0


def test_a_missing_signature_is_401(provisioned: Provisioned, registration: StoreRegistration,
                                    webhooks: Client) -> None:
    body = compact(custom_order_json())
    headers = custom_headers(body)
    del headers["X-CRM-Signature"]
    response = webhooks.http.post("/events", headers=headers, body=body)
    assert response.status_code == 401
    assert json.loads(response.body) == {"error": "missing X-CRM-Signature signature header"}
