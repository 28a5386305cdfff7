"""The local runtime's SQS retention check, queue counts and EventBridge input transformers (moto_patches) answer
what stock moto answers: an expired message is not received, visible, in-flight and delayed messages are counted
apart and only visible ones received, and each event's own values reach the target."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from crm_local import moto_patches
from moto.sqs.models import sqs_backends

pytestmark = pytest.mark.integration

ACCOUNT = "123456789012"


@pytest.fixture(params=["stock", "patched"])
def moto(request: pytest.FixtureRequest, aws: None) -> Iterator[str]:
    if request.param == "patched":
        moto_patches.install()
    try:
        yield str(request.param)
    finally:
        moto_patches.uninstall()


def test_a_message_past_the_queues_retention_period_is_not_received(moto: str) -> None:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="q", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="old")
    sqs.send_message(QueueUrl=url, MessageBody="new")
    expired, _ = sqs_backends[ACCOUNT]["us-east-1"].get_queue("q")._messages
    expired.sent_timestamp -= 61_000  # sent 61 s earlier: past the 60 s retention
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    assert [m["Body"] for m in received] == []  # moto stops at the first expired message
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    assert [m["Body"] for m in received] == ["new"]  # the expired one was taken in flight by the first receive


def test_visible_in_flight_and_delayed_messages_are_counted_apart(moto: str) -> None:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    for body in ("taken", "waiting", "also waiting"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)
    taken = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=60)["Messages"]
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert [m["Body"] for m in taken] == ["taken"]
    assert (counts["ApproximateNumberOfMessages"], counts["ApproximateNumberOfMessagesNotVisible"],
            counts["ApproximateNumberOfMessagesDelayed"]) == ("2", "1", "1")
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    assert sorted(m["Body"] for m in received) == ["also waiting", "waiting"]


def test_an_input_transformer_sends_each_events_own_values(moto: str) -> None:
    events, sqs = boto3.client("events"), boto3.client("sqs")
    url = sqs.create_queue(QueueName="target")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="r", EventPattern=json.dumps({"source": ["shop"]}))
    events.put_targets(Rule="r", Targets=[{"Id": "q", "Arn": arn, "InputTransformer": {
        "InputPathsMap": {"who": "$.detail.who", "what": "$.detail-type"},
        "InputTemplate": '{"who": "<who>", "what": "<what>"}'}}])
    for who, what in (("ann", "bought"), ("bob", "browsed"), ("ann", "left")):
        events.put_events(Entries=[{"Source": "shop", "DetailType": what, "Detail": json.dumps({"who": who})}])
    bodies = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]]
    assert sorted(bodies, key=lambda b: b["what"]) == [
        {"who": "ann", "what": "bought"}, {"who": "bob", "what": "browsed"}, {"who": "ann", "what": "left"}]
