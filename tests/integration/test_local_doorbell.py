"""The pollers' doorbell (crm_local.doorbell) and moto's keep-alive server (crm_local.aws_server): a poller is
woken, and marked busy, by the write that gives its source work, not by polling; moto's answers reuse the
connection and keep their framing (S3 objects whole, a HEAD's length)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.client import HTTPConnection
from typing import Any

import boto3
import pytest
from crm_local import doorbell
from crm_local.aws_server import AwsServer
from crm_local.demo import free_port
from crm_local.pollers import Poller

from tests.aws import REGION

pytestmark = pytest.mark.integration


@pytest.fixture
def rung(aws: None) -> Iterator[list[doorbell.Source]]:
    doorbell.install()
    heard: list[doorbell.Source] = []
    sources = [("sqs", "orders"), ("sqs", "other"), ("dynamodb", "crm")]
    listeners = {source: (lambda source=source: heard.append(source)) for source in sources}
    for source, wake in listeners.items():
        doorbell.listen(source, wake)
    try:
        yield heard
    finally:
        for source, wake in listeners.items():
            doorbell.unlisten(source, wake)
        doorbell.uninstall()


def test_a_message_sent_or_moved_to_a_queue_rings_that_queue_only(rung: list[doorbell.Source]) -> None:
    sqs: Any = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="orders")["QueueUrl"]
    sqs.create_queue(QueueName="quiet")
    sqs.send_message(QueueUrl=url, MessageBody="one")
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "two"},
                                                  {"Id": "b", "MessageBody": "three"}])
    assert rung == [("sqs", "orders")] * 3


def test_a_write_to_a_table_with_a_stream_rings_its_table(rung: list[doorbell.Source]) -> None:
    dynamodb: Any = boto3.client("dynamodb", region_name=REGION)
    dynamodb.create_table(TableName="crm", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                          BillingMode="PAY_PER_REQUEST",
                          StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    dynamodb.put_item(TableName="crm", Item={"pk": {"S": "a"}})
    dynamodb.delete_item(TableName="crm", Key={"pk": {"S": "a"}})
    assert rung == [("dynamodb", "crm")] * 2


def test_the_source_an_event_source_mapping_names() -> None:
    assert doorbell.source_of("arn:aws:sqs:us-east-1:123456789012:crm-profile-updates") == ("sqs",
                                                                                          "crm-profile-updates")
    assert doorbell.source_of("arn:aws:dynamodb:us-east-1:123456789012:table/crm-table/stream/2026-12-04T00:00:00"
                              ) == ("dynamodb", "crm-table")
    with pytest.raises(ValueError, match="neither a queue nor a DynamoDB stream"):
        doorbell.source_of("arn:aws:kinesis:us-east-1:123456789012:stream/clicks")


class CountingPoller(Poller):
    """Finds work as many times as it is told to, then nothing."""

    def __init__(self) -> None:
        super().__init__("counting", None, {"EventSourceArn": "arn:aws:sqs:us-east-1:1:q"}, REGION)  # type: ignore[arg-type]
        self.work = 0
        self.polls = threading.Semaphore(0)

    def poll_once(self) -> bool:
        self.polls.release()
        if self.work:
            self.work -= 1
            return True
        return False

    def pending(self) -> int:
        return 0


def test_a_woken_poller_is_busy_until_a_poll_finds_nothing() -> None:
    poller = CountingPoller()
    poller.start()
    try:
        assert poller.polls.acquire(timeout=30)
        assert poller.idle.wait(timeout=30)
        poller.work = 2
        poller.wake()
        assert not poller.idle.is_set()  # before it polls: wait_idle must not take it for idle
        for _ in range(3):  # two polls that work, then one that finds nothing, well before the 1 s fallback
            assert poller.polls.acquire(timeout=30)
        assert poller.idle.wait(timeout=30)
        assert poller.work == 0
    finally:
        poller.stop()
        poller.join(timeout=30)
    assert not poller.is_alive()


@pytest.fixture
def server(aws_credentials: None) -> Iterator[str]:
    port = free_port()
    running = AwsServer("127.0.0.1", port)
    running.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        running.stop()


def test_moto_answers_on_a_kept_alive_connection(server: str) -> None:
    connection = HTTPConnection(server.removeprefix("http://"), timeout=30)
    try:
        for _ in range(2):
            connection.request("POST", "/", body=b"Action=ListQueues&Version=2012-11-05",
                               headers={"Content-Type": "application/x-www-form-urlencoded",
                                        "Host": "sqs.us-east-1.amazonaws.com",
                                        "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20261204/us-east-1/"
                                                         "sqs/aws4_request, SignedHeaders=host, Signature=x"})
            answer = connection.getresponse()
            body = answer.read()
            assert answer.status == 200, body
            assert answer.getheader("Connection") != "close"
            assert int(answer.getheader("Content-Length") or -1) == len(body)
        assert connection.sock is not None  # the same socket served both
    finally:
        connection.close()


def test_objects_and_their_lengths_cross_the_server_whole(server: str) -> None:
    s3: Any = boto3.client("s3", region_name=REGION, endpoint_url=server)
    s3.create_bucket(Bucket="exports-bucket")
    body = bytes(range(256)) * 8_000  # 2 MB: botocore may send it with Expect: 100-continue
    s3.put_object(Bucket="exports-bucket", Key="segment.csv", Body=body)
    assert s3.head_object(Bucket="exports-bucket", Key="segment.csv")["ContentLength"] == len(body)
    assert s3.get_object(Bucket="exports-bucket", Key="segment.csv")["Body"].read() == body
