"""The local runtime's SES mailbox simulator (crm_local.mailbox_simulator): which addresses it answers, and the
events it publishes, read back by crm.messaging.feedback as SES's own."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from crm.messaging.feedback import read_ses_event, ses_feedback
from crm_local.mailbox_simulator import EventDestination, SentEmail, ses_events, simulator_mailbox

AT = datetime(2026, 3, 5, 9, 30, tzinfo=UTC)
OURS = EventDestination("crm-messages", frozenset({"bounce", "complaint", "delivery", "reject"}),
                        "arn:aws:events:us-east-1:123456789012:event-bus/default")


@pytest.mark.parametrize(("address", "mailbox"), [
    ("bounce@simulator.amazonses.com", "bounce"), ("bounce+alice@simulator.amazonses.com", "bounce"),
    ("Complaint+Bob@Simulator.AmazonSES.com", "complaint"), ("success@simulator.amazonses.com", "success"),
    ("Shopper <ooto+1@simulator.amazonses.com>", "ooto"),
    ("suppressionlist@simulator.amazonses.com", "suppressionlist"),
    ("bounce@example.com", None), ("bouncer@simulator.amazonses.com", None), ("bounce@amazonses.com", None),
    ("not an address", None),
])
def test_which_addresses_are_the_simulators(address: str, mailbox: str | None) -> None:
    assert simulator_mailbox(address) == mailbox


def sent(*to: str, configuration_set: str | None = "crm-messages") -> SentEmail:
    return SentEmail.of({"FromEmailAddress": "Shop <shop@shop.example>", "Destination": {"ToAddresses": list(to)},
                         "ConfigurationSetName": configuration_set,
                         "EmailTags": [{"Name": "workspace", "Value": "ws_1"}, {"Name": "flow", "Value": "f"}]},
                        "0100-abc")


def events(email: SentEmail, *destinations: EventDestination) -> list[dict[str, object]]:
    return list(ses_events(email, list(destinations) or [OURS], "123456789012", "us-east-1", AT))


def test_a_bounce_is_published_as_ses_does_and_feedback_suppresses_it() -> None:
    [entry] = events(sent("bounce+alice@simulator.amazonses.com"))
    assert (entry["Source"], entry["DetailType"], entry["EventBusName"]) == \
        ("aws.ses", "Email Bounced", OURS.bus_arn)
    detail = json.loads(str(entry["Detail"]))
    assert detail["mail"]["tags"]["ses:configuration-set"] == ["crm-messages"]
    assert detail["mail"]["tags"]["workspace"] == ["ws_1"]
    assert detail["mail"]["messageId"] == "0100-abc"
    feedback = ses_feedback(read_ses_event(detail))
    assert [(s.address, s.reason, s.at) for s in feedback.suppress] == \
        [("bounce+alice@simulator.amazonses.com", "hard bounce (General, 5.1.1)", AT)]


def test_a_complaint_and_the_account_suppression_list_are_published_too() -> None:
    complaint, suppressed = events(sent("complaint@simulator.amazonses.com", "suppressionlist@simulator.amazonses.com"))
    assert (complaint["DetailType"], suppressed["DetailType"]) == ("Email Complaint Received", "Email Bounced")
    assert ses_feedback(read_ses_event(json.loads(str(complaint["Detail"])))).withdraw
    assert [s.reason for s in ses_feedback(read_ses_event(json.loads(str(suppressed["Detail"])))).suppress] == \
        ["hard bounce (OnAccountSuppressionList)"]


def test_only_matching_types_only_the_sets_configuration() -> None:
    assert events(sent("bounce@simulator.amazonses.com", configuration_set=None)) == []
    assert events(sent("bounce@simulator.amazonses.com", configuration_set="another")) == []
    bounces_only = EventDestination("crm-messages", frozenset({"bounce"}), OURS.bus_arn)
    assert events(sent("success@simulator.amazonses.com"), bounces_only) == []
    assert [e["DetailType"] for e in events(sent("bounce@simulator.amazonses.com"), bounces_only)] == ["Email Bounced"]


def test_any_address_is_delivered_with_the_simulators_success_in_one_event() -> None:
    [delivered] = events(sent("success@simulator.amazonses.com", "shopper@example.com",
                              "ooto+1@simulator.amazonses.com"))
    assert delivered["DetailType"] == "Email Delivered"
    assert json.loads(str(delivered["Detail"]))["delivery"]["recipients"] == \
        ["success@simulator.amazonses.com", "shopper@example.com", "ooto+1@simulator.amazonses.com"]
    assert simulator_mailbox("delivered@simulator.amazonses.com") is None  # not one of SES's mailboxes


def test_a_send_is_published_once_before_its_outcomes_when_the_destination_takes_sends() -> None:
    with_sends = EventDestination("crm-messages", frozenset({"send", "delivery", "bounce"}), OURS.bus_arn)
    sent_event, delivered, bounced = events(sent("shopper@example.com", "bounce@simulator.amazonses.com"), with_sends)
    assert [e["DetailType"] for e in (sent_event, delivered, bounced)] == \
        ["Email Sent", "Email Delivered", "Email Bounced"]
    detail = json.loads(str(sent_event["Detail"]))
    assert (detail["eventType"], detail["send"]) == ("Send", {})
    assert detail["mail"]["destination"] == ["shopper@example.com", "bounce@simulator.amazonses.com"]
    assert detail["mail"]["commonHeaders"] == {"from": ["Shop <shop@shop.example>"],
                                               "to": ["shopper@example.com", "bounce@simulator.amazonses.com"],
                                               "messageId": "0100-abc"}
    assert json.loads(str(bounced["Detail"]))["bounce"]["bouncedRecipients"][0]["emailAddress"] == \
        "bounce@simulator.amazonses.com"
