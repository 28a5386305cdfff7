"""The flows function on the stack from template.yaml (moto): bus events and Scheduler wake-ups off the flows
queue, runs and claims in the table, one-time schedules in the stack's group, every call within FlowsFunction's
role. The ports other branches build (catalogue, templates, suppressions, senders, renderer) are fakes here."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import botocore.client
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.exceptions import ClientError
from crm import clock, wiring
from crm.adapters import keys
from crm.adapters.flow_runs import DynamoRunStore
from crm.adapters.flow_stats import DynamoFlowCounters, DynamoMessageLedger
from crm.adapters.items import from_item, wire_key
from crm.adapters.profiles import DynamoProfileRepository
from crm.flows.builtin import ABANDONED_CHECKOUT, BUILTIN_FLOWS
from crm.flows.engine import last_send
from crm.models.canonical import ComplianceRequest
from crm.models.consent import Consent, ConsentState
from crm.models.events import CheckoutStarted, DomainEvent, Item, OrderPlaced
from crm.models.flows import FlowRecord, FlowStatus, RunStatus, StepOutcome, WakeUp, schedule_name
from crm.models.messaging import EmailTemplate, TemplateRecord
from crm.models.profile import new_profile
from crm.ports import Change, IdentityLink
from crm_local.lambdas import Function
from crm_local.provision import Provisioned

from tests.aws import client, queue_arn, receive_all, sqs_event
from tests.builders import ROOT
from tests.fakes import (
    FakeEmailSender,
    FakeFlowCatalogue,
    FakeMessageComposer,
    FakeMessagingStore,
    FakeSmsSender,
    FakeSuppressions,
)

pytestmark = pytest.mark.integration

WS = "ws1"
START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
UseEnv = Callable[[str], None]


@dataclass
class Flows:
    provisioned: Provisioned
    email: FakeEmailSender

    @property
    def queue_url(self) -> str:
        return self.provisioned.outputs["FlowsQueueUrl"]

    @property
    def group(self) -> str:
        return self.provisioned.outputs["FlowScheduleGroup"]

    def put(self, body: str) -> None:
        client("sqs").send_message(QueueUrl=self.queue_url, MessageBody=body)

    def publish(self, event: DomainEvent) -> None:
        """As the bus's rule delivers a crm event to the queue (EventBridge's envelope)."""
        self.put(json.dumps({"version": "0", "id": "e-1", "source": "crm", "account": "123456789012",
                             "detail-type": event.type, "time": event.occurred_at.isoformat(),  # type: ignore[attr-defined]
                             "region": "us-east-1", "resources": [], "detail": event.model_dump(mode="json")}))

    def run_function(self) -> dict[str, Any]:
        messages = receive_all(self.queue_url)
        answer: dict[str, Any] = Function(self.provisioned.functions["FlowsFunction"]).invoke(
            sqs_event(messages, queue_arn(self.queue_url)))
        return answer

    def schedule(self, run_id: str, step_id: str) -> dict[str, Any]:
        found: dict[str, Any] = client("scheduler").get_schedule(Name=schedule_name(run_id, step_id),
                                                                 GroupName=self.group)
        return found

    def fire(self, run_id: str, step_id: str) -> None:
        """What EventBridge Scheduler does when the schedule comes due: its Input to its target, then DELETE."""
        found = self.schedule(run_id, step_id)
        assert found["Target"]["Arn"] == queue_arn(self.queue_url)
        self.put(found["Target"]["Input"])
        client("scheduler").delete_schedule(Name=found["Name"], GroupName=self.group)


@pytest.fixture
def flows(provisioned: Provisioned, function_env: UseEnv, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flows]:
    function_env("FlowsFunction")
    # Powertools reads the metrics namespace when the module loads: load it afresh with this stack's
    # environment, as a new Lambda container would, whatever another test loaded before.
    monkeypatch.delitem(sys.modules, "crm_function_FlowsFunction", raising=False)
    monkeypatch.setattr(clock, "_shift", START - datetime.now(UTC))
    email = FakeEmailSender()
    live = FlowRecord(workspace_id=WS, flow_id=ABANDONED_CHECKOUT, status=FlowStatus.LIVE,
                      definition=BUILTIN_FLOWS[ABANDONED_CHECKOUT], created_at=START, updated_at=START)
    templates = [TemplateRecord(workspace_id=WS, template_id=t, created_at=START, updated_at=START,
                                template=EmailTemplate(name=t, subject=t, html="<p>Your cart</p>"))
                 for t in ("builtin:abandoned_checkout_1", "builtin:abandoned_checkout_2")]
    for name, fake in (("flow_catalogue", FakeFlowCatalogue(live)), ("messaging_store", FakeMessagingStore(*templates)),
                       ("suppressions", FakeSuppressions()), ("email_sender", email), ("sms_sender", FakeSmsSender()),
                       ("message_composer", FakeMessageComposer())):
        monkeypatch.setattr(wiring, name, cache(lambda fake=fake: fake))  # cached: wiring.reset clears it
    consent = Consent(channel="email", state=ConsentState.SUBSCRIBED, source="shopify:customers/update",
                      at=START - timedelta(days=9))
    profile = new_profile(WS, "p1", START - timedelta(days=9)).model_copy(
        update={"email": "ann@example.com", "consents": {"email": consent}, "identities": ("email#ann@example.com",)})
    DynamoProfileRepository(provisioned.outputs["TableName"]).commit(Change(
        WS, profiles=((profile, None),), identities=(IdentityLink("email#ann@example.com", "p1", None),)))
    yield Flows(provisioned, email)


def _later(monkeypatch: pytest.MonkeyPatch, by: timedelta) -> None:
    monkeypatch.setattr(clock, "_shift", clock._shift + by)


def _checkout(at: datetime) -> CheckoutStarted:
    return CheckoutStarted(event_id="checkout-c1", workspace_id=WS, profile_id="p1", occurred_at=at, store_id="st",
                           checkout_id="c1", items=(Item(title="Mug", price="12.00"),))


def test_a_checkout_waits_in_a_one_time_schedule_then_sends_once(flows: Flows, monkeypatch: pytest.MonkeyPatch) -> None:
    event = _checkout(clock.utc_now())
    flows.publish(event)
    flows.publish(event)  # the bus delivered it twice
    assert flows.run_function() == {"batchItemFailures": []}
    runs = DynamoRunStore(flows.provisioned.outputs["TableName"]).runs_of_profile(WS, "p1")
    [run] = runs
    schedule = flows.schedule(run.run_id, "wait_4h")
    # at() in UTC to the second, never early.
    assert run.wake_at is not None
    assert timedelta(hours=4) <= run.wake_at - run.entered_at < timedelta(hours=4, seconds=1)
    due = datetime.strptime(schedule["ScheduleExpression"], "at(%Y-%m-%dT%H:%M:%S)").replace(tzinfo=UTC)
    assert timedelta(0) <= due - run.wake_at < timedelta(seconds=1)
    assert (schedule["ScheduleExpressionTimezone"], schedule["ActionAfterCompletion"],
            schedule["FlexibleTimeWindow"]) == ("UTC", "DELETE", {"Mode": "OFF"})
    assert schedule["Target"]["RoleArn"] == flows.provisioned.physical["FlowsSchedulerRole"].attributes["Arn"]
    assert WakeUp.model_validate_json(schedule["Target"]["Input"]).step_id == "wait_4h"

    _later(monkeypatch, timedelta(hours=4))
    flows.fire(run.run_id, "wait_4h")
    [wake] = receive_all(flows.queue_url)
    for _ in range(2):  # SQS delivers the wake-up twice
        answer = Function(flows.provisioned.functions["FlowsFunction"]).invoke(
            sqs_event([wake], queue_arn(flows.queue_url)))
        assert answer == {"batchItemFailures": []}
    assert [e.subject for e in flows.email.sent] == ["builtin:abandoned_checkout_1"]

    store = DynamoRunStore(flows.provisioned.outputs["TableName"])
    [run] = store.runs_of_profile(WS, "p1")
    assert run.next_step == "wait_24h" and run.wake_at == datetime.fromisoformat(event.occurred_at.isoformat()) + \
        timedelta(hours=24)
    assert [(s.outcome, s.message_id) for s in run.steps if s.step_id == "email_1"] == [(StepOutcome.SENT, "ses-1")]
    # The step's claim, whose outcome is its message's record (what a redelivery finds if the run's save is lost).
    claim = store.step_claim(run, "email_1")
    assert claim is not None
    # Found as the feedback finds it, by SES's tags: the record's partition and moment, the claim's.
    recorded = DynamoMessageLedger(flows.provisioned.outputs["TableName"]).find("ses-1", WS, "p1", claim.at)
    assert recorded is not None and (recorded.run_id, recorded.step_id) == (run.run_id, "email_1")
    # Smart Sending's last send is the run's record of it (crm.flows.engine.last_send), nothing apart.
    last = last_send(store.runs_of_profile(WS, "p1"), "email")
    assert last is not None and last == next(s.at for s in run.steps if s.step_id == "email_1")
    assert timedelta(0) <= claim.at - last < timedelta(seconds=1)
    timeline = DynamoProfileRepository(flows.provisioned.outputs["TableName"]).timeline(WS, ["p1"], None, 10)
    assert [(e.type, e.summary["step_id"]) for e in timeline] == [("flow_message", "email_1")]
    # The line is the record (one item: crm.adapters.flow_stats), at the claim's moment.
    assert (timeline[0].occurred_at, timeline[0].ref, timeline[0].summary["run_id"]) == (claim.at, "ses-1", run.run_id)


def test_an_order_ends_the_run_and_deletes_its_schedule(flows: Flows, monkeypatch: pytest.MonkeyPatch) -> None:
    flows.publish(_checkout(clock.utc_now()))
    assert flows.run_function() == {"batchItemFailures": []}
    [run] = DynamoRunStore(flows.provisioned.outputs["TableName"]).runs_of_profile(WS, "p1")
    _later(monkeypatch, timedelta(hours=1))
    flows.publish(OrderPlaced(event_id="order-o1", workspace_id=WS, profile_id="p1", occurred_at=clock.utc_now(),
                              store_id="st", order_id="o1", currency="USD", total_price="12.00", net_total="12.00"))
    assert flows.run_function() == {"batchItemFailures": []}
    [run] = DynamoRunStore(flows.provisioned.outputs["TableName"]).runs_of_profile(WS, "p1")
    assert (run.status, run.exit_reason) == (RunStatus.EXITED, "exit_event:OrderPlaced")
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        flows.schedule(run.run_id, "wait_4h")


def test_a_bad_record_fails_alone(flows: Flows) -> None:
    flows.put("not json at all")
    flows.put(json.dumps({"source": "crm", "detail-type": "CheckoutStarted", "detail": {"checkout_id": "c9"}}))
    flows.publish(_checkout(clock.utc_now()))
    messages = receive_all(flows.queue_url)
    answer = Function(flows.provisioned.functions["FlowsFunction"]).invoke(
        sqs_event(messages, queue_arn(flows.queue_url)))
    failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
    assert failed == {m["MessageId"] for m in messages[:2]}
    assert len(DynamoRunStore(flows.provisioned.outputs["TableName"]).runs_of_profile(WS, "p1")) == 1


def test_runs_are_kept_in_the_profiles_partition(flows: Flows) -> None:
    flows.publish(_checkout(clock.utc_now()))
    assert flows.run_function() == {"batchItemFailures": []}
    [run] = DynamoRunStore(flows.provisioned.outputs["TableName"]).runs_of_profile(WS, "p1")
    item = client("dynamodb").get_item(TableName=flows.provisioned.outputs["TableName"],
                                       Key=wire_key(keys.flow_run(WS, "p1", run.run_id)))["Item"]
    assert from_item(item)["entity"] == "flow_run" and item["pk"]["S"] == keys.profile(WS, "p1")["pk"]


def test_an_erasure_deletes_the_shoppers_runs_and_their_schedules(flows: Flows, function_env: UseEnv) -> None:
    flows.publish(_checkout(clock.utc_now()))
    assert flows.run_function() == {"batchItemFailures": []}
    [run] = DynamoRunStore(flows.provisioned.outputs["TableName"]).runs_of_profile(WS, "p1")
    request = ComplianceRequest.model_validate({
        "workspace_id": WS, "store_id": "st", "platform": "shopify", "kind": "compliance",
        "request": "customer_redact", "request_id": "redact-1", "email": "ann@example.com",
        "requested_at": clock.utc_now().isoformat()})
    function_env("PrivacyFunction")
    url = flows.provisioned.outputs["PrivacyQueueUrl"]
    client("sqs").send_message(QueueUrl=url, MessageBody=request.model_dump_json())
    answer = Function(flows.provisioned.functions["PrivacyFunction"]).invoke(sqs_event(receive_all(url),
                                                                                       queue_arn(url)))
    assert answer == {"batchItemFailures": []}
    assert DynamoRunStore(flows.provisioned.outputs["TableName"]).runs_of_profile(WS, "p1") == []
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        flows.schedule(run.run_id, "wait_4h")


def test_the_sample_wake_up_of_no_run_is_dropped_as_stale(flows: Flows) -> None:
    sample = json.loads((ROOT / "events" / "flows-sqs-wakeup.json").read_text())
    answer = Function(flows.provisioned.functions["FlowsFunction"]).invoke(sample)
    assert answer == {"batchItemFailures": []} and flows.email.sent == []


def test_a_wake_up_that_sends_costs_a_handful_of_requests(flows: Flows, monkeypatch: pytest.MonkeyPatch) -> None:
    """The budget bench/flows.py reports: waking from the 4 h delay, sending email 1 and scheduling the 24 h wait."""
    flows.publish(_checkout(clock.utc_now()))
    assert flows.run_function() == {"batchItemFailures": []}
    [run] = DynamoRunStore(flows.provisioned.outputs["TableName"]).runs_of_profile(WS, "p1")
    _later(monkeypatch, timedelta(hours=4))
    flows.fire(run.run_id, "wait_4h")
    delivery = sqs_event(receive_all(flows.queue_url), queue_arn(flows.queue_url))
    made: list[str] = []
    runs_read_consistently: list[bool] = []
    original = botocore.client.BaseClient._make_api_call

    def counting(client: Any, operation: str, params: dict[str, Any]) -> Any:
        made.append(f"{client.meta.service_model.service_name}:{operation}")
        if operation == "Query" and params["ExpressionAttributeValues"].get(":prefix") == {"S": "FLOWRUN#"}:
            runs_read_consistently.append(params["ConsistentRead"])
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    answer = Function(flows.provisioned.functions["FlowsFunction"]).invoke(delivery)
    assert answer == {"batchItemFailures": []} and len(flows.email.sent) == 1
    # Reads: the profile with its segments (one Query), the profile's runs (one eventually consistent Query: the
    # run is found among them, and Smart Sending's last send is their records, crm.flows.engine.last_send);
    # writes: the claim, the run (once); the message record, which is the step's record and its timeline line
    # too (no pointer for an email: SES's tags find it, crm.adapters.flow_stats), one ADD for the counters rows
    # the delivery touched (flow-wide, wait_4h, email_1: crm.flows.counting; one item carries them all); the
    # next wait's schedule.
    # (The catalogue, settings, template, suppression and SES calls are fakes here.)
    assert sorted(made) == sorted([
        "dynamodb:Query", "dynamodb:Query", "dynamodb:PutItem",
        "dynamodb:PutItem", "scheduler:CreateSchedule",
        "dynamodb:PutItem", "dynamodb:UpdateItem"])
    assert runs_read_consistently == [False]
    # What the stats read: the message recorded where the feedback looks for it, the send counted.
    table = flows.provisioned.outputs["TableName"]
    claim = DynamoRunStore(table).step_claim(run, "email_1")
    assert claim is not None
    recorded = DynamoMessageLedger(table).find("ses-1", WS, run.profile_id, claim.at)
    assert recorded is not None and (recorded.run_id, recorded.step_id) == (run.run_id, "email_1")
    day = clock.utc_now().date()
    assert {(row.step_id, name): value for row in DynamoFlowCounters(table).rows(WS, ABANDONED_CHECKOUT, day, day)
            for name, value in row.counts.items() if name == "sent"} == {("-", "sent"): 1, ("email_1", "sent"): 1}


def test_a_send_lost_between_claim_and_answer_emits_the_metric_the_alarm_watches(
        flows: Flows, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stack: Any) -> None:
    flows.publish(_checkout(clock.utc_now()))
    assert flows.run_function() == {"batchItemFailures": []}
    [run] = DynamoRunStore(flows.provisioned.outputs["TableName"]).runs_of_profile(WS, "p1")
    _later(monkeypatch, timedelta(hours=4))
    flows.fire(run.run_id, "wait_4h")
    delivery = sqs_event(receive_all(flows.queue_url), queue_arn(flows.queue_url))
    flows.email.crash_next = True
    function = Function(flows.provisioned.functions["FlowsFunction"])
    with pytest.raises(BatchProcessingError):  # the whole batch failed: SQS delivers it again
        function.invoke(delivery)
    _later(monkeypatch, timedelta(minutes=6))  # the queue's visibility timeout
    capsys.readouterr()
    assert function.invoke(delivery) == {"batchItemFailures": []}
    assert flows.email.sent == []

    alarm = stack.resources["FlowStepUnknownAlarm"]["Properties"]
    [emf] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    [directive] = emf["_aws"]["CloudWatchMetrics"]
    namespace = alarm["Namespace"]["Fn::Sub"].replace("${AWS::StackName}", flows.provisioned.stack_name)
    assert directive["Namespace"] == namespace
    assert {"Name": alarm["MetricName"]} in [{"Name": m["Name"]} for m in directive["Metrics"]]
    assert emf[alarm["MetricName"]] == [1.0]
    [dimension] = alarm["Dimensions"]
    assert emf[dimension["Name"]] == dimension["Value"] and [dimension["Name"]] in directive["Dimensions"]


def _shopper(table: str, profile_id: str, email: str) -> None:
    consent = Consent(channel="email", state=ConsentState.SUBSCRIBED, source="shopify:customers/update",
                      at=START - timedelta(days=9))
    profile = new_profile(WS, profile_id, START - timedelta(days=9)).model_copy(
        update={"email": email, "consents": {"email": consent}, "identities": (f"email#{email}",)})
    DynamoProfileRepository(table).commit(Change(
        WS, profiles=((profile, None),), identities=(IdentityLink(f"email#{email}", profile_id, None),)))


def test_a_batch_counts_on_its_flows_rows_in_one_write_at_its_end(flows: Flows,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Three shoppers' checkouts and a bad record in one batch, then their three wake-ups in another: each batch
    writes the flow's counters once (crm.flows.batch_counts), and the rows hold every delivery's counts."""
    table = flows.provisioned.outputs["TableName"]
    for profile_id in ("p2", "p3"):
        _shopper(table, profile_id, f"{profile_id}@example.com")
    for profile_id in ("p1", "p2", "p3"):
        flows.publish(_checkout(clock.utc_now()).model_copy(update={"profile_id": profile_id,
                                                                     "event_id": f"checkout-{profile_id}"}))
    flows.put("not json at all")
    counter_writes: list[str] = []
    original = botocore.client.BaseClient._make_api_call

    def counting(client: Any, operation: str, params: dict[str, Any]) -> Any:
        if operation == "UpdateItem" and "#FLOWSTATS#" in params["Key"]["pk"]["S"]:
            counter_writes.append(params["Key"]["sk"]["S"])
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    answer = flows.run_function()
    assert len(answer["batchItemFailures"]) == 1  # the bad record, alone
    assert len(counter_writes) == 1
    runs = DynamoRunStore(table)
    started = [run for p in ("p1", "p2", "p3") for run in runs.runs_of_profile(WS, p)]
    assert len(started) == 3

    _later(monkeypatch, timedelta(hours=4))
    for run in started:
        flows.fire(run.run_id, "wait_4h")
    assert flows.run_function() == {"batchItemFailures": []}
    assert len(counter_writes) == 2 and len(flows.email.sent) == 3
    day = clock.utc_now().date()
    rows = {(row.step_id, name): value for row in DynamoFlowCounters(table).rows(WS, ABANDONED_CHECKOUT, day, day)
            for name, value in row.counts.items()}
    assert {key: rows.get(key) for key in [("-", "entered"), ("-", "sent"), ("wait_4h", "recipients"),
                                           ("email_1", "recipients"), ("email_1", "sent")]} == {
        ("-", "entered"): 3, ("-", "sent"): 3, ("wait_4h", "recipients"): 3, ("email_1", "recipients"): 3,
        ("email_1", "sent"): 3}
