"""The local runtime reads a queue with several pollers, as Lambda does, bounded by the mapping's
MaximumConcurrency; a stream with one (its records in order); and every message is handled once."""

from __future__ import annotations

import threading
from typing import Any

import boto3
import pytest
from crm_local.lambdas import Function
from crm_local.pollers import SQS_POLLERS, SqsPoller, StreamPoller, pollers_for
from crm_local.provision import FunctionSpec

pytestmark = pytest.mark.integration


def _function(received: list[str]) -> Function:
    lock = threading.Lock()

    def handler(event: dict[str, Any], context: Any) -> None:
        with lock:
            received.extend(record["body"] for record in event["Records"])

    return Function(FunctionSpec("Things", "app.handler", ".", {}, 3), handler=handler)


def test_a_queue_gets_several_pollers_up_to_its_maximum_concurrency(aws: None) -> None:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    function = _function([])
    default = pollers_for("Ingest", function, {"EventSourceArn": arn}, "us-east-1")
    bounded = pollers_for("Ingest", function, {"EventSourceArn": arn, "ScalingConfig": {"MaximumConcurrency": 1}},
                          "us-east-1")
    stream = pollers_for("Changes", function, {"EventSourceArn": "arn:aws:dynamodb:us-east-1:123456789012:table/t/"
                                                                  "stream/2026-01-01T00:00:00.000"}, "us-east-1")
    assert SQS_POLLERS > 1 and [type(p) for p in default] == [SqsPoller] * SQS_POLLERS
    assert len({p.name for p in default}) == SQS_POLLERS and len(bounded) == 1
    assert [type(p) for p in stream] == [StreamPoller]


def test_several_pollers_handle_each_message_once(aws: None) -> None:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    received: list[str] = []
    pollers = pollers_for("Ingest", _function(received), {"EventSourceArn": arn, "BatchSize": 3}, "us-east-1")
    for n in range(0, 40, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"}
                                                      for i in range(n, n + 10)])
    sweeps = 0
    while any(p.poll_once() for p in pollers):
        sweeps += 1
    assert sorted(received) == sorted(f"m{i}" for i in range(40))
    assert sweeps >= 40 // (3 * SQS_POLLERS) and all(p.pending() == 0 for p in pollers)
