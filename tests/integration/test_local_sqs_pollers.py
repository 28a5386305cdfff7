"""Several local pollers on one queue (``LocalRuntime.scaled_out``): batches invoked side by side, each message
invoked once."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import boto3
import pytest
from crm_local.pollers import SqsPoller

from tests.aws import REGION

pytestmark = pytest.mark.integration


class Recording:
    """A function that holds its first two invocations until both have started: they run side by side, or the
    barrier breaks."""

    arn = "arn:aws:lambda:us-east-1:123456789012:function:Tasks"

    def __init__(self) -> None:
        self.bodies: Counter[str] = Counter()
        self.meet = threading.Barrier(2, timeout=20)
        self.side_by_side = False
        self._lock = threading.Lock()

    def invoke(self, event: dict[str, Any]) -> None:
        with self._lock:
            first_two = sum(self.bodies.values()) < 2
            self.bodies.update(record["body"] for record in event["Records"])
        if first_two:
            self.meet.wait()
            self.side_by_side = True


def test_pollers_of_one_queue_invoke_side_by_side_and_each_message_once(aws: None) -> None:
    sqs: Any = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="tasks")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for n in range(40):
        sqs.send_message(QueueUrl=url, MessageBody=f"task {n}")
    function = Recording()
    mapping = {"EventSourceArn": arn, "BatchSize": 1, "Function": "Tasks"}
    pollers = [SqsPoller(f"tasks-{n}", function, mapping, REGION) for n in range(4)]  # type: ignore[arg-type]
    for poller in pollers:
        poller.start()
    try:
        for poller in pollers:
            poller.wake()
        for poller in pollers:
            assert poller.idle.wait(timeout=60)
    finally:
        for poller in pollers:
            poller.stop()
        for poller in pollers:
            poller.join(timeout=30)
    assert function.side_by_side
    assert function.bodies == Counter({f"task {n}": 1 for n in range(40)})
    assert sum(p.invocations for p in pollers) == 40
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
                                    )["Attributes"]["ApproximateNumberOfMessages"] == "0"
