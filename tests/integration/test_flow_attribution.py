"""Attribution on the stack from template.yaml (moto): a Shopify order whose shopper clicked a flow email
becomes an OrderPlaced (webhooks -> profiles -> stream -> outbox -> bus -> flows queue) that the flows function
credits to that email (the attribution, the counters and the timeline line in the table); its refund comes the
same way as an OrderRefunded and takes its amount off. Every call within the functions' roles."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from chalice.test import Client
from crm.adapters.flow_definitions import DynamoFlowCatalogue
from crm.adapters.flow_stats import DynamoAttributions, DynamoFlowCounters, DynamoMessageLedger
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.stores import DynamoStoreDirectory
from crm.flows.builtin import ABANDONED_CHECKOUT, BUILTIN_FLOWS
from crm.models.flow_stats import ALL_STEPS, MessageEvent, MessageEventType, MessageRecord
from crm.models.flows import FlowRecord, FlowStatus
from crm.models.stores import Platform
from crm.stores import register_store
from crm_local.lambdas import Function, load_handler
from crm_local.provision import Provisioned

from tests.aws import queue_arn, receive_all, sqs_event, stream_records
from tests.builders import DOMAIN, FIXTURE_ORDER_ID, SECRET, compact, fixture_json, placed_order_json, shopify_headers

pytestmark = pytest.mark.integration

UseEnv = Callable[[str], None]
ORDERED_AT = datetime.fromisoformat(placed_order_json()["created_at"]).astimezone(UTC)


def _webhook(provisioned: Provisioned, function_env: UseEnv, topic: str, payload: dict[str, Any],
             delivery: str) -> None:
    function_env("WebhooksFunction")
    spec = provisioned.functions["WebhooksFunction"]
    body = compact(payload)
    response = Client(load_handler(spec.code_path, spec.handler, spec.logical_id)).http.post(
        "/webhooks/shopify", body=body, headers=shopify_headers(body, topic=topic, delivery_id=delivery))
    assert response.status_code == 200
    function_env("ProfilesFunction")
    url = provisioned.outputs["IngestQueueUrl"]
    assert Function(provisioned.functions["ProfilesFunction"]).invoke(
        sqs_event(receive_all(url), queue_arn(url))) == {"batchItemFailures": []}


def _outbox_then_flows(provisioned: Provisioned, function_env: UseEnv,
                       monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The outbox over the whole stream (earlier records again: their events are the same ids), then the flows
    function over what the bus put on its queue; the detail-types it read."""
    function_env("OutboxFunction")
    assert Function(provisioned.functions["OutboxFunction"]).invoke({"Records": stream_records(provisioned)}) == \
        {"batchItemFailures": []}
    function_env("FlowsFunction")
    monkeypatch.delitem(sys.modules, "crm_function_FlowsFunction", raising=False)
    url = provisioned.outputs["FlowsQueueUrl"]
    messages = receive_all(url)
    assert Function(provisioned.functions["FlowsFunction"]).invoke(sqs_event(messages, queue_arn(url))) == \
        {"batchItemFailures": []}
    return [json.loads(m["Body"])["detail-type"] for m in messages]


def test_an_order_after_a_clicked_reminder_is_attributed_and_its_refund_taken_off(
        provisioned: Provisioned, function_env: UseEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    table = provisioned.outputs["TableName"]
    registration = register_store(DynamoStoreDirectory(table), Platform.SHOPIFY, DOMAIN, SECRET,
                                  ORDERED_AT - timedelta(days=30))
    workspace, store_id = registration.workspace_id, registration.store_id
    _webhook(provisioned, function_env, "orders/create", placed_order_json(), "o-1")
    profiles = DynamoProfileRepository(table)
    profile_id = profiles.profile_id_for_identity(workspace, "email#jon@example.com")
    assert profile_id is not None
    # The abandoned-checkout flow, saved (a workspace that never saved a flow attributes nothing), and the
    # reminder it sent, clicked two hours before the order.
    DynamoFlowCatalogue(table).put_flow(FlowRecord(
        workspace_id=workspace, flow_id=ABANDONED_CHECKOUT, status=FlowStatus.LIVE, version=1,
        definition=BUILTIN_FLOWS[ABANDONED_CHECKOUT], created_at=ORDERED_AT - timedelta(days=10),
        updated_at=ORDERED_AT - timedelta(days=10)), None)
    reminder = MessageRecord(workspace_id=workspace, profile_id=profile_id, message_id="ses-msg-1", channel="email",
                             flow_id=ABANDONED_CHECKOUT, flow_version=1, step_id="email_1", run_id="run-1",
                             trigger_type="CheckoutStarted", sent_at=ORDERED_AT - timedelta(hours=3))
    ledger = DynamoMessageLedger(table)
    ledger.record_sent(reminder)
    ledger.note_event(reminder, MessageEvent(message_id="ses-msg-1", type=MessageEventType.CLICKED,
                                             at=ORDERED_AT - timedelta(hours=2), link="https://shop.example/cart"))

    assert "OrderPlaced" in _outbox_then_flows(provisioned, function_env, monkeypatch)

    attributions = DynamoAttributions(table)
    held = attributions.get(workspace, store_id, FIXTURE_ORDER_ID)
    assert held is not None
    assert (held.message_id, held.touch, held.revenue, held.currency, held.recovered_checkout) == (
        "ses-msg-1", "email_click", Decimal("404.95"), "USD", True)
    day = ORDERED_AT.date()
    rows = {(r.step_id, r.variant): r.counts for r in DynamoFlowCounters(table).rows(workspace, ABANDONED_CHECKOUT,
                                                                                     day, day)}
    assert rows[(ALL_STEPS, ALL_STEPS)] == {"converted": 1, "revenue": Decimal("404.95"), "recovered": 1,
                                            "recovered_revenue": Decimal("404.95")}
    assert rows[("email_1", ALL_STEPS)]["converted"] == 1
    lines = [e for e in profiles.timeline(workspace, [profile_id], None, 50) if e.type == "order_attributed"]
    assert [line.summary["message_id"] for line in lines] == ["ses-msg-1"]

    _webhook(provisioned, function_env, "refunds/create", fixture_json("refunds/create"), "r-1")
    read = _outbox_then_flows(provisioned, function_env, monkeypatch)
    assert read.count("OrderRefunded") == 1 and "OrderPlaced" in read  # the replay's OrderPlaced: not twice

    rows = {(r.step_id, r.variant): r.counts for r in DynamoFlowCounters(table).rows(workspace, ABANDONED_CHECKOUT,
                                                                                     day, day)}
    assert rows[(ALL_STEPS, ALL_STEPS)] == {"converted": 1, "revenue": Decimal("319.95"), "recovered": 1,
                                            "recovered_revenue": Decimal("319.95")}
    refunded = attributions.get(workspace, store_id, FIXTURE_ORDER_ID)
    assert refunded is not None and refunded.refunded == Decimal("85.00")

