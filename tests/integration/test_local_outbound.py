"""What the local runtime "sent", read back from moto's server as the demo and e2e tests read it: SES v2 raw
emails with their headers, tags and configuration set, SES v1 simple emails, SNS SMS with their attributes;
senders must be verified identities, and end verified."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from crm import clock
from crm_local import moto_outbound
from crm_local.demo import free_port, http
from crm_local.outbound import Outbox
from moto.dynamodb.models.dynamo_type import Item
from moto.server import ThreadedMotoServer

from tests.aws import REGION

pytestmark = pytest.mark.integration

SENDER = "store@crm-local.example"
UNSUBSCRIBE = "https://api.crm-local.example/unsubscribe/tok.sig"


@pytest.fixture
def endpoint(aws_credentials: None) -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    http("POST", f"http://127.0.0.1:{port}/moto-api/reset")  # the server shares this process's backends
    moto_outbound.install()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        moto_outbound.uninstall()


def client(endpoint: str, service: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION)  # type: ignore[call-overload]


def raw_email(to: str, subject: str) -> bytes:
    message = EmailMessage()
    message["From"] = f"Demo Outfitters <{SENDER}>"
    message["To"] = to
    message["Subject"] = subject
    message["List-Unsubscribe"] = f"<{UNSUBSCRIBE}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content("You left something behind.")
    message.add_alternative("<p>You left <b>something</b> behind.</p>", subtype="html")
    return message.as_bytes()


def send_raw(ses: Any, to: str, subject: str) -> str:
    return str(ses.send_email(
        FromEmailAddress=SENDER, Destination={"ToAddresses": [to]},
        Content={"Raw": {"Data": raw_email(to, subject)}}, ConfigurationSetName="crm-flows",
        EmailTags=[{"Name": "flow", "Value": "builtin_abandoned_checkout"}, {"Name": "step", "Value": "email_1"}],
    )["MessageId"])


def test_a_sender_ends_verified_and_an_unverified_one_is_refused(endpoint: str) -> None:
    ses = client(endpoint, "sesv2")
    with pytest.raises(ClientError, match="MessageRejected"):
        send_raw(ses, "ada@example.com", "Your cart")
    ses.create_email_identity(EmailIdentity=SENDER)
    identity = ses.get_email_identity(EmailIdentity=SENDER)
    assert (identity["VerifiedForSendingStatus"], identity["VerificationStatus"]) == (True, "SUCCESS")
    client(endpoint, "ses").verify_domain_identity(Domain="shop.demo-outfitters.example")
    domain = ses.get_email_identity(EmailIdentity="shop.demo-outfitters.example")
    assert domain["VerifiedForSendingStatus"] and domain["DkimAttributes"]["Status"] == "SUCCESS"
    assert send_raw(ses, "ada@example.com", "Your cart")


def test_the_outbox_reads_emails_and_sms_with_what_a_report_needs(endpoint: str) -> None:
    ses, sns = client(endpoint, "sesv2"), client(endpoint, "sns")
    ses.create_email_identity(EmailIdentity=SENDER)
    outbox = Outbox(endpoint)
    assert outbox.read().emails == []
    clock.shift(timedelta(days=3))
    try:
        message_id = send_raw(ses, "ada@example.com", "Still thinking it over? \N{SHOPPING TROLLEY}")
        sent_by_clock = clock.utc_now()
    finally:
        clock.shift(-timedelta(days=3))
    client(endpoint, "ses").send_email(Source=SENDER, Destination={"ToAddresses": ["bob@example.com"]},
                                       Message={"Subject": {"Data": "Welcome"}, "Body": {"Text": {"Data": "Hi"}}})
    sms_id = sns.publish(PhoneNumber="+14155550123", Message="Your cart is waiting", MessageAttributes={
        "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Promotional"},
        "AWS.SNS.SMS.SenderID": {"DataType": "String", "StringValue": "DEMO"}})["MessageId"]

    sent = outbox.read()
    simple, raw = sent.emails  # by the time of sending: the raw one went three (shifted) days later
    assert (raw.message_id, raw.kind, raw.to, raw.subject) == (
        message_id, "raw", ["ada@example.com"], "Still thinking it over? \N{SHOPPING TROLLEY}")
    assert (raw.list_unsubscribe, raw.list_unsubscribe_post, raw.unsubscribe_url) == (
        f"<{UNSUBSCRIBE}>", "List-Unsubscribe=One-Click", UNSUBSCRIBE)
    assert raw.header("from") == f"Demo Outfitters <{SENDER}>"
    assert raw.html is not None and "<b>something</b>" in raw.html
    assert raw.text is not None and "You left something behind." in raw.text
    assert raw.configuration_set == "crm-flows" and raw.tags == {"flow": "builtin_abandoned_checkout",
                                                                 "step": "email_1"}
    assert raw.sent_at is not None and abs(raw.sent_at - sent_by_clock) < timedelta(seconds=5)  # the shifted clock
    assert (simple.kind, simple.to, simple.subject, simple.text) == ("simple", ["bob@example.com"], "Welcome", "Hi")
    [sms] = sent.sms
    assert (sms.message_id, sms.phone_number, sms.message) == (sms_id, "+14155550123", "Your cart is waiting")
    assert sms.attributes == {"AWS.SNS.SMS.SMSType": "Promotional", "AWS.SNS.SMS.SenderID": "DEMO"}
    assert sent.emails_to("ADA@example.com") == [raw] and sent.sms_to("+14155550123") == [sms]

    mark = outbox.mark()
    assert outbox.since(mark).emails == [] and outbox.since(mark).sms == []
    send_raw(ses, "cy@example.com", "Your cart")
    later = outbox.since(mark)
    assert [e.to for e in later.emails] == [["cy@example.com"]] and later.sms == []


def test_bulk_records_stay_out_of_moto_data(endpoint: str) -> None:
    dynamodb = client(endpoint, "dynamodb")
    dynamodb.create_table(TableName="t", BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    for version in range(20):
        dynamodb.put_item(TableName="t", Item={"pk": {"S": "p"}, "v": {"N": str(version)}})
    assert len(Item.instances_tracked) == 0  # type: ignore[attr-defined]
    assert dynamodb.get_item(TableName="t", Key={"pk": {"S": "p"}})["Item"]["v"] == {"N": "19"}


def test_a_raw_email_whose_sender_is_only_in_from_is_read_too(endpoint: str) -> None:
    ses = client(endpoint, "sesv2")
    ses.create_email_identity(EmailIdentity="crm-local.example")  # a domain covers its addresses
    ses.send_email(Destination={"ToAddresses": ["dee@example.com"]},
                   Content={"Raw": {"Data": raw_email("dee@example.com", "Hello")}})
    [email] = Outbox(endpoint).read().emails
    assert email.source == SENDER and email.to == ["dee@example.com"] and email.tags == {}  # moto reads From
