"""Messaging feedback on the stack provisioned from template.yaml, function by function:

- an SES bounce on the default bus -> SesFeedbackRule -> FlowsQueue -> flows function -> suppression list;
- an inbound STOP published on the inbound SMS topic -> FlowsQueue -> flows function -> ingest queue ->
  profiles function -> SMS consent withdrawn, on the timeline.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import botocore.client
import pytest
from crm import wiring
from crm.adapters.flow_stats import DynamoFlowCounters, DynamoMessageLedger
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.stores import DynamoStoreDirectory
from crm.adapters.suppressions import DynamoSuppressions
from crm.ingestion import apply_events
from crm.models.consent import Channel, Consent, ConsentState
from crm.models.flow_stats import MessageRecord
from crm.models.ingest import IngestEnvelope
from crm.models.messaging import MessagingSettings
from crm.models.stores import Platform, StoreRegistration
from crm.stores import register_store
from crm_local import inbound_sms
from crm_local.lambdas import Function
from crm_local.provision import Provisioned

from tests.aws import client, queue_arn, receive_all, sqs_event
from tests.builders import DOMAIN, NOW, ROOT, SECRET, customer_record

pytestmark = pytest.mark.integration

UseEnv = Callable[[str], None]
EVENTS = Path(__file__).parents[2] / "events"
OUR_NUMBER = "+12125550101"
SHOPPER_PHONE = "+14255550182"
EMAIL_ID = "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000"  # the SES samples' message id
SMS_ID = "34d9b400-c6dd-5444-820d-fbeb0f1f54cf"  # tests/fixtures/sns: SNS's sample line


class Settings:
    """The workspace's messaging settings (the API's store is another branch's; only the SMS sender matters)."""

    def messaging_settings(self, workspace_id: str) -> MessagingSettings:
        return MessagingSettings(sms_sender=OUR_NUMBER)


@pytest.fixture
def registration(provisioned: Provisioned) -> StoreRegistration:
    return register_store(DynamoStoreDirectory(provisioned.outputs["TableName"]), Platform.SHOPIFY, DOMAIN, SECRET,
                          NOW)


@pytest.fixture
def shopper(provisioned: Provisioned, registration: StoreRegistration) -> DynamoProfileRepository:
    """A shopper subscribed to email and SMS, by the store's webhook ten days ago."""
    stated = NOW - timedelta(days=10)
    record = customer_record(email="recipient@example.com", phone=SHOPPER_PHONE, updated_at=stated,
                             workspace_id=registration.workspace_id, store_id=registration.store_id)
    record = record.model_copy(update={"consents": tuple(
        Consent(channel=channel, state=ConsentState.SUBSCRIBED, source="shopify:customers/update", at=stated)
        for channel in Channel)})
    repository = DynamoProfileRepository(provisioned.outputs["TableName"])
    apply_events(repository, [record], stated)
    return repository


@pytest.fixture
def requests(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every AWS request made from here on, as service:operation (the cost of feedback, docs/deliverability.md)."""
    made: list[str] = []
    original = botocore.client.BaseClient._make_api_call

    def counting(client: botocore.client.BaseClient, operation: str, params: dict[str, Any]) -> Any:
        made.append(f"{client.meta.service_model.service_name}:{operation}")
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    return made


def _flows_queue(provisioned: Provisioned) -> str:
    return provisioned.physical["FlowsQueue"].ref


def _run(provisioned: Provisioned, function_env: UseEnv, function: str, queue_url: str,
         messages: list[dict[str, Any]]) -> Any:
    function_env(function)
    return Function(provisioned.functions[function]).invoke(sqs_event(messages, queue_arn(queue_url)))


def _ses_event(workspace_id: str, configuration_set: str, name: str = "flows-ses-bounce.json") -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    event["detail"]["mail"]["tags"].update({"workspace": [workspace_id], "ses:configuration-set": [configuration_set]})
    return event


def _put_on_default_bus(event: dict[str, Any]) -> None:
    answer = client("events").put_events(Entries=[{
        "Source": event["source"], "DetailType": event["detail-type"], "Detail": json.dumps(event["detail"]),
        "Resources": event["resources"], "EventBusName": "default"}])
    assert answer["FailedEntryCount"] == 0


def test_a_hard_bounce_of_our_configuration_set_reaches_the_flows_function_and_suppresses(
    provisioned: Provisioned, function_env: UseEnv, registration: StoreRegistration, requests: list[str]
) -> None:
    configuration_set = provisioned.outputs["MessagesConfigurationSetName"]
    _put_on_default_bus(_ses_event(registration.workspace_id, "another-apps-set"))  # not ours: not routed
    _put_on_default_bus(_ses_event(registration.workspace_id, configuration_set))
    messages = receive_all(_flows_queue(provisioned))
    assert [json.loads(m["Body"])["detail"]["mail"]["tags"]["ses:configuration-set"] for m in messages] == \
        [[configuration_set]]

    function_env("FlowsFunction")
    event = sqs_event(messages, queue_arn(_flows_queue(provisioned)))
    requests.clear()
    assert Function(provisioned.functions["FlowsFunction"]).invoke(event) == {"batchItemFailures": []}
    # One write unit per hard bounce, and two reads to learn that the message is no flow message (the record
    # where its tags say, then a pointer by its id: none for an email, unless a merge moved it).
    assert requests == ["dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:GetItem"]
    suppressions = DynamoSuppressions(provisioned.outputs["TableName"])
    assert suppressions.suppression(registration.workspace_id, "recipient@example.com") == \
        ("hard bounce (General, 5.1.1)", datetime(2026, 3, 5, 0, 41, 2, 669000, tzinfo=UTC))
    assert not suppressions.is_suppressed("ws_other", "recipient@example.com")


def _flow_message(workspace_id: str, message_id: str, channel: str = "email") -> MessageRecord:
    return MessageRecord(workspace_id=workspace_id, profile_id="p_0123456789abcdef", message_id=message_id,
                         channel=channel, flow_id="builtin:abandoned_checkout", flow_version=1,  # type: ignore[arg-type]
                         step_id="email_1", run_id="run_1", variant="split_1:2", trigger_type="CheckoutStarted",
                         sent_at=datetime(2026, 3, 5, 0, 40, 2, tzinfo=UTC))


def _counts(table: str, workspace_id: str) -> dict[tuple[str, str], dict[str, Decimal]]:
    rows = DynamoFlowCounters(table).rows(workspace_id, "builtin:abandoned_checkout", date(2026, 3, 5),
                                          date(2026, 3, 5))
    return {(row.step_id, row.variant): row.counts for row in rows}


def test_two_opens_of_a_flow_message_count_once_on_its_rows_and_its_delivery_never_reaches_the_queue(
    provisioned: Provisioned, function_env: UseEnv, registration: StoreRegistration, requests: list[str]
) -> None:
    table, workspace = provisioned.outputs["TableName"], registration.workspace_id
    DynamoMessageLedger(table).record_sent(_flow_message(workspace, EMAIL_ID))
    configuration_set = provisioned.outputs["MessagesConfigurationSetName"]
    for name in ("flows-ses-delivery.json", "flows-ses-open.json", "flows-ses-open.json", "flows-ses-send.json"):
        _put_on_default_bus(_ses_event(workspace, configuration_set, name))
    messages = receive_all(_flows_queue(provisioned))
    # "Email Sent" and "Email Delivered" stay on the default bus: the service recorded the send, and counted it
    # delivered (crm.flows.counting), already.
    assert sorted(json.loads(m["Body"])["detail-type"] for m in messages) == ["Email Opened", "Email Opened"]

    function_env("FlowsFunction")
    requests.clear()
    assert Function(provisioned.functions["FlowsFunction"]).invoke(
        sqs_event(messages, queue_arn(_flows_queue(provisioned)))) == {"batchItemFailures": []}
    # Per event: the record by its tags' partition, the conditional update; per first one, its two counter rows
    # in one write (one item carries both: crm.adapters.flow_stats), and the open's timeline line.
    assert requests.count("dynamodb:GetItem") == 2 and requests.count("dynamodb:UpdateItem") == 2 + 1
    assert _counts(table, workspace) == {key: {"opened": Decimal(1)} for key in (
        ("-", "-"), ("email_1", "split_1:2"))}
    lines = DynamoProfileRepository(table).timeline(workspace, ["p_0123456789abcdef"], None, 10)
    # The open's line, and the send's: the message's record (crm.adapters.flow_stats), found by SES's tags
    # (workspace, profile, the moment it was sent) in one read.
    assert [(e.type, e.ref) for e in lines] == [("email_opened", f"{EMAIL_ID}:opened"), ("flow_message", EMAIL_ID)]


def test_sns_sms_delivery_status_lines_reach_the_flows_function_and_count(
    provisioned: Provisioned, function_env: UseEnv, registration: StoreRegistration, requests: list[str]
) -> None:
    table, workspace = provisioned.outputs["TableName"], registration.workspace_id
    DynamoMessageLedger(table).record_sent(_flow_message(workspace, SMS_ID, "sms"))
    body = json.loads((ROOT / "tests" / "fixtures" / "sns" / "sms-delivery-status.json").read_text())
    event = {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(body).encode())).decode()}}
    function_env("FlowsFunction")
    requests.clear()
    assert Function(provisioned.functions["FlowsFunction"]).invoke(event) == {}
    # The status names no workspace: the pointer, then the record; the update, the line (a put), and at the
    # invocation's end its counters (flow-wide and the step's, one write for all its lines: crm.flows.batch_counts).
    assert requests == ["dynamodb:GetItem", "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem",
                        "dynamodb:UpdateItem"]
    assert _counts(table, workspace)[("-", "-")] == {"delivered": Decimal(1)}
    assert Function(provisioned.functions["FlowsFunction"]).invoke(event) == {}  # Lambda's retry counts nothing
    assert _counts(table, workspace)[("email_1", "split_1:2")] == {"delivered": Decimal(1)}


def test_an_inbound_stop_withdraws_sms_consent_through_the_profiles_path(
    provisioned: Provisioned, function_env: UseEnv, registration: StoreRegistration,
    shopper: DynamoProfileRepository, monkeypatch: pytest.MonkeyPatch, requests: list[str],
) -> None:
    # As two-way SMS does: the reply's JSON published on the stack's inbound topic.
    inbound_id = inbound_sms.reply(provisioned.outputs["InboundSmsTopicArn"], SHOPPER_PHONE, OUR_NUMBER, "Stop",
                                   sns=client("sns"))
    messages = receive_all(_flows_queue(provisioned))
    assert [json.loads(m["Body"])["Type"] for m in messages] == ["Notification"]

    function_env("FlowsFunction")
    monkeypatch.setattr(wiring, "messaging_store", cache(Settings))
    event = sqs_event(messages, queue_arn(_flows_queue(provisioned)))
    requests.clear()
    assert Function(provisioned.functions["FlowsFunction"]).invoke(event) == {"batchItemFailures": []}
    # The workspaces (one Query), the phone's identity and its profile, then the statement queued (the profiles
    # function archives it).
    # (the identity's link read with the profile named after it, in one BatchGetItem: docs/profile-writes.md)
    assert requests == ["dynamodb:Query", "dynamodb:BatchGetItem", "dynamodb:BatchGetItem", "sqs:SendMessage"]

    statements = receive_all(provisioned.outputs["IngestQueueUrl"])
    [envelope] = [IngestEnvelope.model_validate_json(m["Body"]) for m in statements]
    assert (envelope.source, envelope.workspace_id, envelope.store_id, envelope.meta.delivery_id) == \
        ("statement", registration.workspace_id, registration.store_id, f"sms:{inbound_id}")
    assert _run(provisioned, function_env, "ProfilesFunction", provisioned.outputs["IngestQueueUrl"], statements) == \
        {"batchItemFailures": []}

    profile_id = shopper.profile_id_for_identity(registration.workspace_id, f"phone#{SHOPPER_PHONE}")
    profile = shopper.get_profile(registration.workspace_id, profile_id or "")
    assert profile is not None
    assert (profile.consents["sms"].state, profile.consents["sms"].source) == (ConsentState.UNSUBSCRIBED, "sms STOP")
    assert profile.consents["email"].state is ConsentState.SUBSCRIBED
    lines = [e.summary for e in shopper.timeline(registration.workspace_id, [profile.profile_id], None, 50)
             if e.type == "consent_changed" and e.summary["source"] == "sms STOP"]
    assert lines == [{"channel": "sms", "old": "subscribed", "new": "unsubscribed", "source": "sms STOP"}]


def test_a_complaint_suppresses_and_queues_the_email_consent_statement(
    provisioned: Provisioned, function_env: UseEnv, registration: StoreRegistration,
    shopper: DynamoProfileRepository, requests: list[str],
) -> None:
    _put_on_default_bus(_ses_event(registration.workspace_id, provisioned.outputs["MessagesConfigurationSetName"],
                                   "flows-ses-complaint.json"))
    messages = receive_all(_flows_queue(provisioned))
    function_env("FlowsFunction")
    event = sqs_event(messages, queue_arn(_flows_queue(provisioned)))
    requests.clear()
    assert Function(provisioned.functions["FlowsFunction"]).invoke(event) == {"batchItemFailures": []}
    assert requests == ["dynamodb:UpdateItem", "dynamodb:BatchGetItem", "dynamodb:BatchGetItem", "sqs:SendMessage",
                        "dynamodb:GetItem", "dynamodb:GetItem"]
    assert DynamoSuppressions(provisioned.outputs["TableName"]).is_suppressed(registration.workspace_id,
                                                                             "recipient@example.com")
    [statement] = [IngestEnvelope.model_validate_json(m["Body"])
                   for m in receive_all(provisioned.outputs["IngestQueueUrl"])]
    assert (statement.source, statement.meta.topic) == ("statement", "statement/email")
