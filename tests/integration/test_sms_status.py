"""SNS's SMS delivery status as the local runtime emulates it (crm_local.sms_status), on the provisioned stack: a
Publish to a phone number is logged as SNS logs it (success and failure groups), and handed, as CloudWatch Logs
hands it, to the function a subscription filter on that group names."""

from __future__ import annotations

import base64
import copy
import gzip
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from crm.messaging.feedback import read_log_lines, read_sms_status
from crm_local import sms_status
from crm_local.lambdas import Function
from crm_local.provision import Provisioned

from tests.aws import client

pytestmark = pytest.mark.integration

ACCOUNT = "123456789012"
DELIVERED = f"sns/us-east-1/{ACCOUNT}/DirectPublishToPhoneNumber"
FAILED = f"{DELIVERED}/Failure"


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def lines(self) -> list[tuple[str, list[str], dict[str, Any]]]:
        """(log group, subscription filters, the line's JSON) of each event delivered."""
        found = []
        for event in self.events:
            body = json.loads(gzip.decompress(base64.b64decode(event["awslogs"]["data"])))
            assert (body["messageType"], body["owner"]) == ("DATA_MESSAGE", ACCOUNT)
            found += [(body["logGroup"], body["subscriptionFilters"], json.loads(e["message"]))
                      for e in body["logEvents"]]
        return found


@pytest.fixture
def recorder(provisioned: Provisioned) -> Iterator[Recorder]:
    subscribed = copy.copy(provisioned)
    function_arn = provisioned.physical["FlowsFunction"].attributes["Arn"]
    subscribed.log_subscriptions = [
        {"LogGroupName": DELIVERED, "FilterPattern": "", "DestinationArn": function_arn, "FilterName": "delivered"},
        {"LogGroupName": FAILED, "FilterPattern": '{ $.status = "FAILURE" }', "DestinationArn": function_arn,
         "FilterName": "failed"},
        {"LogGroupName": DELIVERED, "FilterPattern": "", "FilterName": "to-kinesis",
         "DestinationArn": "arn:aws:kinesis:us-east-1:123456789012:stream/elsewhere"}]
    recorded = Recorder()
    assert [s.filter_name for s in sms_status.install(subscribed, {"FlowsFunction": recorded})] == \
        ["delivered", "failed"]
    try:
        yield recorded
    finally:
        sms_status.uninstall()


def _settle() -> None:
    deadline = time.monotonic() + 10
    while sms_status.busy() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not sms_status.busy()


def _publish(phone: str, sms_type: str = "Promotional") -> str:
    answer = client("sns").publish(PhoneNumber=phone, Message="Your cart misses you", MessageAttributes={
        "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": sms_type}})
    return str(answer["MessageId"])


def test_a_delivered_sms_is_logged_and_handed_to_the_subscribed_function(recorder: Recorder) -> None:
    message_id = _publish("+14255550100", "Transactional")
    _settle()
    [(group, filters, line)] = recorder.lines()
    assert (group, filters) == (DELIVERED, ["delivered"])
    assert line["status"] == "SUCCESS"
    assert line["notification"]["messageId"] == message_id
    assert line["delivery"]["destination"] == "+14255550100" and line["delivery"]["smsType"] == "Transactional"
    assert line["delivery"]["providerResponse"] == "Message has been accepted by phone carrier"
    logged = client("logs").filter_log_events(logGroupName=DELIVERED)["events"]
    assert [json.loads(e["message"])["notification"]["messageId"] for e in logged] == [message_id]


def test_failures_go_to_the_failure_group(recorder: Recorder) -> None:
    failed = _publish("+33755512502")  # AWS's French failure simulator number
    _settle()
    [(group, filters, line)] = recorder.lines()
    assert (group, filters, line["status"]) == (FAILED, ["failed"], "FAILURE")
    assert line["notification"]["messageId"] == failed
    assert line["delivery"]["providerResponse"] == "Phone is currently unreachable/unavailable"


def test_an_opted_out_number_fails_as_sns_logs_it(recorder: Recorder) -> None:
    opted_out = client("sns").list_phone_numbers_opted_out()["phoneNumbers"][0]  # moto starts with some
    _publish(opted_out)
    _settle()
    [(group, _, line)] = recorder.lines()
    assert (group, line["status"], line["delivery"]["providerResponse"]) == \
        (FAILED, "FAILURE", "Phone number is opted out")


def test_a_topic_publish_is_no_sms(recorder: Recorder) -> None:
    topic = client("sns").create_topic(Name="plain")["TopicArn"]
    client("sns").publish(TopicArn=topic, Message="hello")
    _settle()
    assert recorder.events == []


def test_the_templates_subscriptions_hand_the_status_to_the_flows_function_which_reads_it(
    provisioned: Provisioned, function_env: Callable[[str], None],
) -> None:
    found = sms_status.subscriptions(provisioned)
    assert sorted((s.log_group, s.function, s.pattern) for s in found) == [
        (DELIVERED, "FlowsFunction", ""), (FAILED, "FlowsFunction", "")]
    function_env("FlowsFunction")
    flows = Function(provisioned.functions["FlowsFunction"])
    answers: list[Any] = []
    sms_status.install(provisioned, {"FlowsFunction": lambda event: answers.append((event, flows.invoke(event)))})
    try:
        message_id = _publish("+14255550100")
        _publish("+33755512502")
        _settle()
    finally:
        sms_status.uninstall()
    delivered, failed = (event for event, _ in answers)
    [line] = read_log_lines(delivered)
    status = read_sms_status(line)
    assert (status.status, status.notification.message_id) == ("SUCCESS", message_id)
    assert read_sms_status(read_log_lines(failed)[0]).status == "FAILURE"
    assert [answer for _, answer in answers] == [{}, {}]  # taken (no flow sent these: nothing to record them on)
