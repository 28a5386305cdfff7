"""A shopper's SMS reply on `crm local`: published on the stack's inbound SMS topic in the JSON two-way SMS
publishes (AWS End User Messaging SMS, the number's two-way channel), so it takes the same path as in AWS:
topic -> flows queue -> flows function -> crm.messaging.feedback.

moto has no two-way SMS: tests and the demo call ``reply`` where a real phone would text back.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3


def inbound_message(origination: str, destination: str, body: str, inbound_id: str | None = None) -> dict[str, str]:
    """The message two-way SMS publishes for an SMS from ``origination`` (the shopper) to ``destination`` (ours)."""
    return {"originationNumber": origination, "destinationNumber": destination, "messageKeyword": body.split()[0]
            if body.split() else "", "messageBody": body, "inboundMessageId": inbound_id or str(uuid.uuid4()),
            "previousPublishedMessageId": ""}


def reply(topic_arn: str, origination: str, destination: str, body: str, sns: Any | None = None,
          inbound_id: str | None = None) -> str:
    """Publish the reply on the inbound topic (``InboundSmsTopicArn`` of the stack's outputs); its inbound id."""
    message = inbound_message(origination, destination, body, inbound_id)
    (sns or boto3.client("sns")).publish(TopicArn=topic_arn, Message=json.dumps(message))
    return message["inboundMessageId"]
