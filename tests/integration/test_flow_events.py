"""The flow events on the stack provisioned from template.yaml: the bus's FlowEventsRule delivers exactly the
flow event types to FlowsQueue (moto matches the rule's pattern), and a signed checkout arrives there as a
CheckoutStarted with its items and recovery link, through webhooks -> profiles -> stream -> outbox -> bus."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from chalice.test import Client
from crm.adapters.messaging import EventBridgePublisher
from crm.adapters.stores import DynamoStoreDirectory
from crm.models.events import EVENT_SOURCE, FLOW_EVENT_TYPES, Item, OrderPlaced
from crm.models.stores import Platform
from crm.stores import register_store
from crm_local.lambdas import Function, load_handler
from crm_local.provision import Provisioned
from crm_local.template import Stack

from tests.aws import client, queue_arn, receive_all, sqs_event, stream_records
from tests.builders import DOMAIN, NOW, SECRET, compact, fixture_json, shopify_headers

pytestmark = pytest.mark.integration

UseEnv = Callable[[str], None]


def _flows_queue(provisioned: Provisioned) -> str:
    return provisioned.outputs["FlowsQueueUrl"]


def _delivered(provisioned: Provisioned) -> list[dict[str, Any]]:
    return [json.loads(message["Body"]) for message in receive_all(_flows_queue(provisioned))]


def test_the_rule_lists_every_flow_event_type(stack: Stack) -> None:
    pattern = stack.resources["FlowEventsRule"]["Properties"]["EventPattern"]
    assert pattern == {"source": [EVENT_SOURCE], "detail-type": list(FLOW_EVENT_TYPES)}


def test_an_order_placed_on_the_bus_reaches_the_flows_queue(provisioned: Provisioned) -> None:
    placed = OrderPlaced(event_id="OrderPlaced:ws_a:st_a:1001", workspace_id="ws_a", profile_id="p1",
                         occurred_at=NOW, store_id="st_a", order_id="1001", currency="USD", total_price="40.00",
                         net_total="40.00", order_number="#1001",
                         items=(Item(title="Mug", quantity=2, price="20.00"),))

    assert EventBridgePublisher(provisioned.outputs["EventBusName"]).publish([placed]) == []

    [delivered] = _delivered(provisioned)
    assert (delivered["source"], delivered["detail-type"]) == ("crm", "OrderPlaced")
    assert OrderPlaced.model_validate(delivered["detail"]) == placed


def test_other_sources_and_types_stay_off_the_flows_queue(provisioned: Provisioned) -> None:
    bus = provisioned.outputs["EventBusName"]
    client("events").put_events(Entries=[
        {"EventBusName": bus, "Source": "crm", "DetailType": "SegmentRunFinished", "Detail": "{}"},
        {"EventBusName": bus, "Source": "someone.else", "DetailType": "OrderPlaced", "Detail": "{}"},
    ])
    assert _delivered(provisioned) == []


def test_the_local_runtime_sets_the_queue_policy_for_the_rule(provisioned: Provisioned) -> None:
    attributes = client("sqs").get_queue_attributes(QueueUrl=_flows_queue(provisioned),
                                                    AttributeNames=["Policy", "RedrivePolicy"])["Attributes"]
    statements = {s["Sid"]: s for s in json.loads(attributes["Policy"])["Statement"]}
    assert set(statements) == {"FlowEventsRule", "SesFeedbackRule", "InboundSmsTopic"}  # one policy, every sender
    statement = statements["FlowEventsRule"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == \
        provisioned.physical["FlowEventsRule"].attributes["Arn"]
    assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] == 5


def test_a_signed_checkout_reaches_the_flows_queue_with_its_cart(
    provisioned: Provisioned, function_env: UseEnv,
) -> None:
    registration = register_store(DynamoStoreDirectory(provisioned.outputs["TableName"]), Platform.SHOPIFY,
                                  DOMAIN, SECRET, NOW)
    checkout = fixture_json("checkouts/create")
    checkout["line_items"][0]["image_url"] = "https://cdn.example/ipod.png"
    body = compact(checkout)
    function_env("WebhooksFunction")
    spec = provisioned.functions["WebhooksFunction"]
    webhooks = Client(load_handler(spec.code_path, spec.handler, spec.logical_id))
    response = webhooks.http.post("/webhooks/shopify", body=body,
                                  headers=shopify_headers(body, topic="checkouts/create", delivery_id="c-1"))
    assert response.status_code == 200

    function_env("ProfilesFunction")
    messages = receive_all(provisioned.outputs["IngestQueueUrl"])
    event = sqs_event(messages, queue_arn(provisioned.outputs["IngestQueueUrl"]))
    assert Function(provisioned.functions["ProfilesFunction"]).invoke(event) == {"batchItemFailures": []}
    function_env("OutboxFunction")
    records = stream_records(provisioned)
    assert Function(provisioned.functions["OutboxFunction"]).invoke({"Records": records}) == \
        {"batchItemFailures": []}

    delivered = _delivered(provisioned)
    types = sorted(message["detail-type"] for message in delivered)
    assert "CheckoutStarted" in types and "CustomerCreated" in types and "ContactCreated" in types
    [started] = [m["detail"] for m in delivered if m["detail-type"] == "CheckoutStarted"]
    assert started["workspace_id"] == registration.workspace_id
    assert started["checkout_id"] == checkout["token"]
    assert started["recovery_url"] == checkout["abandoned_checkout_url"]
    assert started["from_browser"] is False  # Shopify signed it
    assert (started["value"], started["currency"]) == (checkout["total_price"], checkout["currency"])
    first = started["items"][0]
    line = checkout["line_items"][0]
    assert (first["title"], first["quantity"], first["price"], first["image_url"]) == \
        (line["title"], line["quantity"], line["price"], "https://cdn.example/ipod.png")
    # Replaying the same stream records publishes the same ids: a consumer drops the copies.
    assert Function(provisioned.functions["OutboxFunction"]).invoke({"Records": records}) == \
        {"batchItemFailures": []}
    again = _delivered(provisioned)
    assert sorted(m["detail"]["event_id"] for m in again) == sorted(m["detail"]["event_id"] for m in delivered)
