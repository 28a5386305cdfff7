"""The flow events on the stack provisioned from template.yaml: the outbox sends exactly the flow event types
to FlowsQueue (crm.adapters.outbox_targets) in the envelope the flows function reads, puts on the bus only the
types BusEventTypes names (the predictions rule's get there), and a signed checkout arrives on the flows queue as
a CheckoutStarted with its items and recovery link, through webhooks -> profiles -> stream -> outbox."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from chalice.test import Client
from crm.adapters.messaging import EventBridgePublisher
from crm.adapters.outbox_targets import outbox_publisher
from crm.adapters.stores import DynamoStoreDirectory
from crm.flows.inbox import BusEvent, read_message
from crm.models.events import CustomerCreated, Item, OrderPlaced, ProfilesMerged
from crm.models.stores import Platform
from crm.stores import register_store
from crm_local.lambdas import Function, load_handler
from crm_local.provision import Provisioned

from tests.aws import client, queue_arn, receive_all, sqs_event, stream_records
from tests.builders import DOMAIN, NOW, SECRET, compact, fixture_json, shopify_headers

pytestmark = pytest.mark.integration

UseEnv = Callable[[str], None]


def _flows_queue(provisioned: Provisioned) -> str:
    return provisioned.outputs["FlowsQueueUrl"]


def _delivered(provisioned: Provisioned) -> list[dict[str, Any]]:
    return [json.loads(message["Body"]) for message in receive_all(_flows_queue(provisioned))]


def _placed(order_id: str = "1001") -> OrderPlaced:
    return OrderPlaced(event_id=f"OrderPlaced:ws_a:st_a:{order_id}", workspace_id="ws_a", profile_id="p1",
                       occurred_at=NOW, store_id="st_a", order_id=order_id, currency="USD", total_price="40.00",
                       net_total="40.00", order_number=f"#{order_id}",
                       items=(Item(title="Mug", quantity=2, price="20.00"),))


def test_flow_events_go_to_the_flows_queue_and_the_bus_gets_its_types_alone(
    provisioned: Provisioned, function_env: UseEnv,
) -> None:
    function_env("OutboxFunction")  # the template's FLOWS_QUEUE_URL, EVENT_BUS_NAME and BUS_EVENT_TYPES
    publisher = outbox_publisher()
    orders = [_placed(str(1000 + n)) for n in range(12)]  # two SendMessageBatch requests
    merged = ProfilesMerged(event_id="ProfilesMerged:ws_a:p2", workspace_id="ws_a", profile_id="p1",
                            occurred_at=NOW, merged_profile_id="p2")
    created = CustomerCreated(event_id="CustomerCreated:ws_a:p1", workspace_id="ws_a", profile_id="p1",
                              occurred_at=NOW)
    assert publisher.publish([*orders, merged, created]) == []

    delivered = _delivered(provisioned)
    assert sorted(m["detail"]["event_id"] for m in delivered) == sorted(
        e.event_id for e in (*orders, merged, created))
    for message in delivered:  # what the flows function reads, as EventBridge's rule delivered it
        read = read_message(json.dumps(message))
        assert isinstance(read, BusEvent) and read.detail_type == message["detail"]["type"]
    [first] = [m for m in delivered if m["detail"]["event_id"] == orders[0].event_id]
    assert OrderPlaced.model_validate(first["detail"]) == orders[0]
    # On the bus, only BusEventTypes' (by default what PredictionOrdersRule reads): the orders reach the
    # predictions queue, the merge and the new customer reach no rule.
    predicted = [json.loads(m["Body"]) for m in receive_all(provisioned.physical["PredictionsQueue"].ref)]
    assert sorted(m["detail"]["event_id"] for m in predicted) == sorted(e.event_id for e in orders)


def test_events_put_on_the_bus_stay_off_the_flows_queue(provisioned: Provisioned) -> None:
    """No rule on the bus feeds the flows queue: the outbox sends the flows' events there itself, once."""
    bus = provisioned.outputs["EventBusName"]
    assert EventBridgePublisher(bus).publish([_placed()]) == []
    client("events").put_events(Entries=[
        {"EventBusName": bus, "Source": "crm", "DetailType": "SegmentRunFinished", "Detail": "{}"},
        {"EventBusName": bus, "Source": "someone.else", "DetailType": "OrderPlaced", "Detail": "{}"},
    ])
    assert _delivered(provisioned) == []


def test_the_local_runtime_sets_the_queue_policy_for_its_senders(provisioned: Provisioned) -> None:
    attributes = client("sqs").get_queue_attributes(QueueUrl=_flows_queue(provisioned),
                                                    AttributeNames=["Policy", "RedrivePolicy"])["Attributes"]
    statements = {s["Sid"]: s for s in json.loads(attributes["Policy"])["Statement"]}
    assert set(statements) == {"SesFeedbackRule", "InboundSmsTopic"}  # one policy, every sender but the roles
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
