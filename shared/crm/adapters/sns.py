"""SMS by SNS (crm.flows.ports.SmsSender): Publish to an E.164 number, after SNS's opted-out list.

SNS adds a number to the account's opted-out list when its owner replies STOP (and carriers tell SNS of
their own opt-outs); a Publish to such a number is not delivered. The flows check the list before every SMS
(``is_opted_out``), so a skipped message is recorded with its reason instead of vanishing.
"""

from __future__ import annotations

import re

from crm.adapters.clients import client
from crm.models.messaging import OutgoingSms

_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
# An alphanumeric sender id: 1-11 letters and digits, at least one letter (carriers' rule, SNS's SenderID).
_SENDER_ID = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9]{1,11}$")


class InvalidSmsSender(ValueError):
    """The workspace's SMS sender is neither an E.164 origination number nor an alphanumeric sender id."""


def sender_attributes(sender: str | None) -> dict[str, dict[str, str]]:
    """The message attributes that name who the SMS is from: an origination number, or a sender id where the
    destination country allows one; none to let SNS choose from the account's numbers."""
    if not sender:
        return {}
    if _E164.match(sender):
        return {"AWS.MM.SMS.OriginationNumber": {"DataType": "String", "StringValue": sender}}
    if _SENDER_ID.match(sender):
        return {"AWS.SNS.SMS.SenderID": {"DataType": "String", "StringValue": sender}}
    raise InvalidSmsSender(f"SMS sender {sender!r} is neither an E.164 number nor a sender id of 1-11 letters "
                           "and digits")


class SnsSmsSender:
    def is_opted_out(self, phone: str) -> bool:
        answer = client("sns").check_if_phone_number_is_opted_out(phoneNumber=phone)
        return bool(answer["isOptedOut"])

    def send(self, sms: OutgoingSms) -> str:
        """Publish the SMS; Promotional (marketing: cheaper routes, quiet-hours rules apply) unless the message
        is transactional (a double opt-in code)."""
        if not _E164.match(sms.to):
            raise ValueError("an SMS goes to an E.164 number (+ and up to 15 digits)")
        attributes = {"AWS.SNS.SMS.SMSType": {"DataType": "String",
                                              "StringValue": "Transactional" if sms.transactional else "Promotional"},
                      **sender_attributes(sms.sender)}
        answer = client("sns").publish(PhoneNumber=sms.to, Message=sms.body, MessageAttributes=attributes)
        return str(answer["MessageId"])
