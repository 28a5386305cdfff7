"""SnsSmsSender on moto: SNS's opted-out list, and what a Publish to a phone carries."""

from __future__ import annotations

from collections.abc import Iterator

import botocore.client
import pytest
from crm.adapters.sns import InvalidSmsSender, SnsSmsSender, sender_attributes
from crm.models.messaging import OutgoingSms
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns import sns_backends

from tests.aws import REGION


@pytest.fixture
def sent(aws: None) -> Iterator[dict[str, tuple[str, str]]]:
    """moto's record of the SMS published (message id -> (phone, text))."""
    yield sns_backends[DEFAULT_ACCOUNT_ID][REGION].sms_messages


def sms(**overrides: object) -> OutgoingSms:
    values: dict[str, object] = {"workspace_id": "ws_a", "profile_id": "p_1", "to": "+14155550123",
                                 "body": "Your cart is waiting: https://shop.example/c/1 Reply STOP to opt out"}
    return OutgoingSms.model_validate({**values, **overrides})


def test_an_sms_is_published_to_the_number_with_its_text(sent: dict[str, tuple[str, str]]) -> None:
    message_id = SnsSmsSender().send(sms(sender="+12125550101"))
    assert sent == {message_id: ("+14155550123", sms().body)}


def test_opted_out_numbers_are_reported_as_sns_holds_them(aws: None) -> None:
    # moto's stand-in for SNS's list: every number ending in 99 is opted out.
    sender = SnsSmsSender()
    assert sender.is_opted_out("+14155550199")
    assert not sender.is_opted_out("+14155550123")


def test_the_sender_is_an_origination_number_or_a_sender_id() -> None:
    assert sender_attributes(None) == {}
    assert sender_attributes("+12125550101") == {
        "AWS.MM.SMS.OriginationNumber": {"DataType": "String", "StringValue": "+12125550101"}}
    assert sender_attributes("MyShop") == {"AWS.SNS.SMS.SenderID": {"DataType": "String", "StringValue": "MyShop"}}
    for bad in ("My Shop", "123456", "ALongerSenderId", "+1 212 555"):
        with pytest.raises(InvalidSmsSender):
            sender_attributes(bad)


def test_the_sms_type_travels_as_a_message_attribute(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """moto keeps no attributes of an SMS: what boto3 is asked to send is read at the client instead."""
    requests: list[dict[str, object]] = []
    original = botocore.client.BaseClient._make_api_call

    def recording(self: botocore.client.BaseClient, operation: str, params: dict[str, object]) -> object:
        if operation == "Publish":
            requests.append(params)
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    SnsSmsSender().send(sms(sender="MyShop"))
    SnsSmsSender().send(sms(transactional=True))
    assert [r["MessageAttributes"] for r in requests] == [
        {"AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Promotional"},
         "AWS.SNS.SMS.SenderID": {"DataType": "String", "StringValue": "MyShop"}},
        {"AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"}},
    ]


def test_a_number_not_in_e164_is_refused_before_any_request(aws: None, sent: dict[str, tuple[str, str]]) -> None:
    with pytest.raises(ValueError, match=r"E\.164"):
        SnsSmsSender().send(sms(to="0415 555 0123"))
    assert sent == {}
