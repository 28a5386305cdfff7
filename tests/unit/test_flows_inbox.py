"""The flows queue carries five kinds of message; each is told apart by its shape, anything else is refused."""

from __future__ import annotations

import json

import pytest
from crm.flows.inbox import BusEvent, LinkFollowed, SesEvent, SnsNotification, UnreadableMessage, read_message
from crm.models.flows import WakeUp

from tests.builders import ROOT


def _envelope(source: str, detail_type: str, detail: dict[str, object]) -> str:
    return json.dumps({"version": "0", "id": "1", "source": source, "detail-type": detail_type,
                       "account": "123456789012", "time": "2026-03-01T12:00:00Z", "region": "us-east-1",
                       "resources": [], "detail": detail})


def test_each_kind_is_read_as_itself() -> None:
    bus = read_message(_envelope("crm", "CheckoutStarted", {"checkout_id": "c1"}))
    assert isinstance(bus, BusEvent) and (bus.detail_type, bus.detail) == ("CheckoutStarted", {"checkout_id": "c1"})
    ses = read_message(_envelope("aws.ses", "Email Bounced", {"eventType": "Bounce"}))
    assert isinstance(ses, SesEvent) and ses.detail == {"eventType": "Bounce"}
    sns = read_message(json.dumps({"Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:x",
                                   "Message": json.dumps({"messageBody": "STOP"})}))
    assert isinstance(sns, SnsNotification) and json.loads(sns.message) == {"messageBody": "STOP"}
    [record] = json.loads((ROOT / "events" / "flows-sqs-wakeup.json").read_text())["Records"]
    wake = read_message(record["body"])
    assert isinstance(wake, WakeUp) and wake.step_id == "wait_4h"
    link = read_message(json.dumps({"kind": "link_followed", "type": "clicked", "channel": "sms", "workspace_id": "w",
                                    "profile_id": "p", "flow_id": "f", "run_id": "r", "step_id": "sms_1",
                                    "issued_at": "2026-03-01T12:00:00Z", "at": "2026-03-01T12:05:00Z",
                                    "link": "https://shop.example.com/cart"}))
    assert isinstance(link, LinkFollowed) and (link.type, link.link) == ("clicked", "https://shop.example.com/cart")


@pytest.mark.parametrize("body", ["", "not json", "[]", json.dumps({"source": "aws.ec2", "detail-type": "x",
                                                                      "detail": {}}),
                                  json.dumps({"kind": "wake", "run_id": "r"}),
                                  json.dumps({"kind": "link_followed", "type": "opened", "channel": "sms"})])
def test_anything_else_is_refused_with_the_reason(body: str) -> None:
    with pytest.raises(UnreadableMessage, match="not a bus event, wake-up, SES event, SNS notification or followed"):
        read_message(body)
