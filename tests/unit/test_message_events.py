"""What became of each flow message (crm.messaging.feedback): SES's event records of every type and SNS's SMS
delivery status log lines, read from real-shaped samples (events/flows-ses-*.json after SES's documented
examples, tests/fixtures/sns after SNS's), recorded once per type on the message, counted on the flow's,
step's and variant's rows and written on the timeline."""

from __future__ import annotations

import base64
import copy
import gzip
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from crm.messaging.feedback import (
    MessageEvents,
    apply_ses_event,
    apply_sms_statuses,
    read_log_lines,
    read_ses_event,
    read_sms_status,
    ses_message_event,
    sms_message_event,
)
from crm.models.flow_stats import ALL_STEPS, MessageEvent, MessageEventType, MessageRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.test_feedback import World

ROOT = Path(__file__).parents[2]
WORKSPACE = "ws_0123456789abcdef"
PROFILE = "p_0123456789abcdef"
EMAIL_ID = "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000"  # the samples' SES message id
SMS_ID = "34d9b400-c6dd-5444-820d-fbeb0f1f54cf"
FAILED_SMS_ID = "1f2e3d4c-5b6a-5978-8a9b-0c1d2e3f4a5b"
SENT_AT = datetime(2026, 3, 5, 0, 40, 2, tzinfo=UTC)
NOW = datetime(2026, 3, 6, tzinfo=UTC)


def ses_sample(name: str) -> dict[str, Any]:
    detail: dict[str, Any] = json.loads((ROOT / "events" / f"flows-ses-{name}.json").read_text())["detail"]
    return detail


def sns_logs(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((ROOT / "tests" / "fixtures" / "sns" / f"{name}.json").read_text())
    return body


def subscription_event(body: dict[str, Any]) -> dict[str, Any]:
    """What CloudWatch Logs hands a subscribed function: the payload gzipped, then base64."""
    return {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(body).encode())).decode()}}


def message(message_id: str = EMAIL_ID, channel: str = "email", variant: str | None = None) -> MessageRecord:
    return MessageRecord(workspace_id=WORKSPACE, profile_id=PROFILE, message_id=message_id, channel=channel,  # type: ignore[arg-type]
                         flow_id="builtin:abandoned_checkout", flow_version=1, step_id="email_1", run_id="run_1",
                         variant=variant, trigger_type="CheckoutStarted", sent_at=SENT_AT)


class Feedback:
    """World's ports (tests.unit.test_feedback) with one flow message recorded as sent."""

    def __init__(self, *sent: MessageRecord) -> None:
        self.world = World()
        for record in sent or (message(),):
            self.world.ledger.record_sent(record)
        self.events: MessageEvents = self.world.deps.events

    def counts(self, step_id: str = ALL_STEPS, variant: str = ALL_STEPS) -> dict[str, Decimal]:
        return {name: value for row in self.world.counters.rows(WORKSPACE, "builtin:abandoned_checkout",
                                                                date(2026, 1, 1), date(2026, 12, 31))
                if (row.step_id, row.variant) == (step_id, variant) for name, value in row.counts.items()}

    def timeline(self) -> list[tuple[str, str, dict[str, Any]]]:
        held = self.world.profiles.timelines.get((WORKSPACE, PROFILE), {})
        return [(e.type, e.occurred_at.isoformat(), e.summary) for _, e in sorted(held.items())]


# --- reading SES's records -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "kind", "at", "link", "detail"), [
    ("send", MessageEventType.SENT, "2026-03-05T00:40:02.012000+00:00", None, None),
    ("delivery", MessageEventType.DELIVERED, "2026-03-05T00:40:02.912000+00:00", None, None),
    ("open", MessageEventType.OPENED, "2026-03-05T09:12:30.652000+00:00", None, None),
    ("click", MessageEventType.CLICKED, "2026-03-05T09:13:25.570000+00:00",
     "https://shop.example.com/cart?utm_source=crm", None),
    ("bounce", MessageEventType.BOUNCED, "2026-03-05T00:41:02.669000+00:00", None, "Permanent General"),
    ("complaint", MessageEventType.COMPLAINED, None, None, None),
    ("delivery-delay", MessageEventType.DELIVERY_DELAYED, "2026-03-05T00:55:40.641000+00:00", None,
     "TransientCommunicationFailure"),
    ("reject", MessageEventType.REJECTED, "2026-03-05T00:40:02.012000+00:00", None, "Bad content"),
    ("rendering-failure", MessageEventType.RENDERING_FAILED, "2026-03-05T00:40:02.012000+00:00", None,
     "Attribute 'first_name' is not present in the rendering data."),
])
def test_every_ses_event_type_is_a_message_event_at_sess_time(name: str, kind: MessageEventType, at: str | None,
                                                              link: str | None, detail: str | None) -> None:
    record = ses_sample(name)
    event = ses_message_event(read_ses_event(record))
    assert event is not None
    assert (event.message_id, event.type, event.link) == (record["mail"]["messageId"], kind, link)
    if at is not None:
        assert (event.at.isoformat(), event.detail) == (at, detail)


def test_a_soft_bounce_is_a_delay_and_a_not_spam_complaint_or_a_subscription_is_nothing() -> None:
    bounce = ses_sample("bounce") | {"bounce": {**ses_sample("bounce")["bounce"], "bounceType": "Transient",
                                                "bounceSubType": "MailboxFull"}}
    soft = ses_message_event(read_ses_event(bounce))
    assert soft is not None and (soft.type, soft.detail) == (MessageEventType.DELIVERY_DELAYED,
                                                             "Transient MailboxFull")
    complaint = ses_sample("complaint")
    complaint["complaint"]["complaintFeedbackType"] = "not-spam"
    assert ses_message_event(read_ses_event(complaint)) is None
    assert ses_message_event(read_ses_event({**ses_sample("send"), "eventType": "Subscription"})) is None
    # A record without its part (an open without "open") states nothing.
    assert ses_message_event(read_ses_event({"eventType": "Open", "mail": ses_sample("open")["mail"]})) is None


def test_a_click_on_the_unsubscribe_link_is_no_click() -> None:
    record = ses_sample("click")
    record["click"]["link"] = "https://abc.execute-api.us-east-1.amazonaws.com/v1/unsubscribe/k.c.s"
    assert ses_message_event(read_ses_event(record)) is None


# --- reading SNS's SMS delivery status -------------------------------------------------------------------------

def test_sns_delivery_status_lines_are_read_from_the_subscription_payload() -> None:
    [line] = read_log_lines(subscription_event(sns_logs("sms-delivery-status")))
    event = sms_message_event(read_sms_status(line))
    assert event == MessageEvent(message_id=SMS_ID, type=MessageEventType.DELIVERED,
                                 at=datetime(2026, 3, 5, 0, 40, 34, 558000, tzinfo=UTC))
    [failed] = read_log_lines(subscription_event(sns_logs("sms-delivery-failure")))
    assert sms_message_event(read_sms_status(failed)) == MessageEvent(
        message_id=FAILED_SMS_ID, type=MessageEventType.FAILED, at=datetime(2026, 3, 5, 0, 40, 35, 559000, tzinfo=UTC),
        detail="Unknown error attempting to reach phone")


def test_a_control_message_has_no_lines_and_a_foreign_event_is_refused() -> None:
    control = {"messageType": "CONTROL_MESSAGE", "owner": "CloudwatchLogs", "logGroup": "", "logStream": "",
               "subscriptionFilters": [], "logEvents": [{"id": "", "timestamp": 1, "message": "CWL CONTROL MESSAGE"}]}
    assert read_log_lines(subscription_event(control)) == []
    for foreign in ({"awslogs": {"data": "not base64!"}}, {"awslogs": {}},
                    {"awslogs": {"data": base64.b64encode(b"not gzip").decode()}}):
        with pytest.raises(ValueError, match="not a CloudWatch Logs subscription event"):
            read_log_lines(foreign)


@pytest.mark.parametrize("line", ["not json", "{}", '{"notification": {"messageId": "m", "timestamp": "yesterday"},'
                                                    ' "status": "SUCCESS"}',
                                  '{"notification": {"messageId": "m", "timestamp": "2026-03-05 00:40:34.558"},'
                                  ' "status": "PENDING"}'])
def test_a_line_that_is_no_delivery_status_is_refused(line: str) -> None:
    with pytest.raises(ValueError):
        read_sms_status(line)


# --- recording: once per type, counted, on the timeline --------------------------------------------------------

def test_an_open_counts_once_on_the_flow_row_and_its_steps_variant_row_of_its_day() -> None:
    feedback = Feedback(message(variant="split_1:2"))
    opened = ses_message_event(read_ses_event(ses_sample("open")))
    assert opened is not None
    assert feedback.events.record(opened, WORKSPACE, PROFILE) == "recorded"
    assert feedback.events.record(opened.model_copy(update={"at": NOW}), WORKSPACE, PROFILE) == "repeated"
    for row in ((ALL_STEPS, ALL_STEPS), ("email_1", "split_1:2")):
        assert feedback.counts(*row) == {"opened": Decimal(1)}, row
    assert feedback.counts("email_1") == {}  # a variant's step row is the step's (crm.flows.counting)
    stored = feedback.world.ledger.find(EMAIL_ID, WORKSPACE, PROFILE)
    assert stored is not None and stored.events == {MessageEventType.OPENED: opened.at}
    assert feedback.timeline() == [("email_opened", "2026-03-05T09:12:30.652000+00:00", {
        "flow_id": "builtin:abandoned_checkout", "step_id": "email_1", "channel": "email", "message_id": EMAIL_ID})]


def test_a_message_outside_any_split_counts_on_the_flow_and_step_rows() -> None:
    feedback = Feedback()
    opened = ses_message_event(read_ses_event(ses_sample("open")))
    assert opened is not None and feedback.events.record(opened, WORKSPACE, PROFILE) == "recorded"
    rows = feedback.world.counters.rows(WORKSPACE, "builtin:abandoned_checkout", date(2026, 3, 5), date(2026, 3, 5))
    assert [(r.step_id, r.variant, r.counts) for r in rows] == [
        (ALL_STEPS, ALL_STEPS, {"opened": Decimal(1)}), ("email_1", ALL_STEPS, {"opened": Decimal(1)})]


def test_an_emails_delivery_event_is_noted_and_counts_nothing_since_its_send_counted_it() -> None:
    feedback = Feedback()
    delivered = ses_message_event(read_ses_event(ses_sample("delivery")))
    assert delivered is not None and feedback.events.record(delivered, WORKSPACE, PROFILE) == "recorded"
    stored = feedback.world.ledger.find(EMAIL_ID, WORKSPACE, PROFILE)
    assert stored is not None and MessageEventType.DELIVERED in stored.events
    assert feedback.world.counters.items == {}
    assert feedback.timeline() == []  # every send has its flow_message line: a delivery adds none


def test_a_click_without_an_open_counts_an_open_too_and_a_later_open_adds_nothing() -> None:
    feedback = Feedback()
    clicked = ses_message_event(read_ses_event(ses_sample("click")))
    opened = ses_message_event(read_ses_event(ses_sample("open")))
    assert clicked is not None and opened is not None
    feedback.events.record(clicked, WORKSPACE, PROFILE)
    assert feedback.events.record(opened, WORKSPACE, PROFILE) == "repeated"
    assert feedback.counts() == {"opened": Decimal(1), "clicked": Decimal(1)}
    stored = feedback.world.ledger.find(EMAIL_ID, WORKSPACE, PROFILE)
    assert stored is not None and stored.clicked_links == ("https://shop.example.com/cart?utm_source=crm",)
    # Both at the click's time (the timeline orders lines of one moment by their type).
    assert {(line, at) for line, at, _ in feedback.timeline()} == {
        ("email_opened", "2026-03-05T09:13:25.570000+00:00"), ("email_clicked", "2026-03-05T09:13:25.570000+00:00")}


def test_an_event_on_no_flow_message_counts_nothing() -> None:
    feedback = Feedback()
    event = MessageEvent(message_id="double-opt-in-email", type=MessageEventType.OPENED, at=NOW)
    assert feedback.events.record(event, WORKSPACE) == "not a flow message"
    assert feedback.world.counters.items == {} and feedback.timeline() == []


def test_a_hard_bounce_still_suppresses_and_now_counts_on_its_message() -> None:
    feedback = Feedback()
    outcome = apply_ses_event(ses_sample("bounce"), feedback.world.deps, NOW)
    assert outcome.suppressed == 1 and outcome.details["message_event"] == "recorded"
    # The send counted it delivered (crm.flows.counting); its bounce takes that back.
    assert feedback.counts("email_1") == {"bounced": Decimal(1), "delivered": Decimal(-1)}
    [(line, _, summary)] = feedback.timeline()
    assert (line, summary["detail"]) == ("email_bounced", "Permanent General")
    # SES redelivers: the suppression stands, nothing is counted twice.
    assert apply_ses_event(ses_sample("bounce"), feedback.world.deps, NOW).details["message_event"] == "repeated"
    assert feedback.counts("email_1") == {"bounced": Decimal(1), "delivered": Decimal(-1)}


def test_sms_delivery_statuses_count_delivered_and_note_failures_on_the_timeline() -> None:
    feedback = Feedback(message(SMS_ID, "sms"), message(FAILED_SMS_ID, "sms"))
    both = sns_logs("sms-delivery-status")
    both["logEvents"] += sns_logs("sms-delivery-failure")["logEvents"] + [{"id": "x", "timestamp": 1,
                                                                          "message": "no status"}]
    outcome = apply_sms_statuses(subscription_event(both), feedback.world.deps)
    assert outcome.details == {"sms_statuses": {"recorded": 2, "not a delivery status": 1}}
    assert feedback.counts() == {"delivered": Decimal(1)}  # a carrier's failure is no counter: its line says it
    assert [(line, summary.get("detail")) for line, _, summary in feedback.timeline()] == [
        ("sms_delivered", None), ("sms_failed", "Unknown error attempting to reach phone")]
    assert apply_sms_statuses(subscription_event(both), feedback.world.deps).details == {
        "sms_statuses": {"repeated": 2, "not a delivery status": 1}}
    assert apply_sms_statuses({"awslogs": {"data": "?"}}, feedback.world.deps).ignored is not None


EVENT_SAMPLES = ("send", "delivery", "open", "click", "bounce", "complaint", "delivery-delay", "reject")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(EVENT_SAMPLES), max_size=20))
def test_any_order_and_repetition_of_ses_events_counts_each_type_at_most_once(names: list[str]) -> None:
    feedback = Feedback(message(variant="split_1:1"))
    for name in names:
        event = ses_message_event(read_ses_event(copy.deepcopy(ses_sample(name))))
        assert event is not None
        feedback.events.record(event, WORKSPACE, PROFILE)
    seen = set(names) | ({"open"} if "click" in names else set())
    # An email's delivery was counted by its send: the first bounce or rejection takes it back, the Delivery
    # event adds nothing.
    expected = {counter: Decimal(1) for sample, counter in (
        ("open", "opened"), ("click", "clicked"), ("bounce", "bounced"), ("complaint", "complained"))
        if sample in seen}
    if seen & {"bounce", "reject"}:
        expected["delivered"] = Decimal(-1)
    for row in ((ALL_STEPS, ALL_STEPS), ("email_1", "split_1:1")):
        assert feedback.counts(*row) == expected
