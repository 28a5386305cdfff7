"""AWS helpers for tests on moto: cache resets, queues, streams, and the event shapes Lambda delivers."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import boto3
from botocore.config import Config
from crm import config, wiring
from crm.adapters import clients
from crm_local.event_shapes import read_stream, sqs_record
from crm_local.lambdas import LambdaContext
from crm_local.provision import Provisioned

REGION = "us-east-1"


def reset_crm_caches() -> None:
    """Forget settings, adapters and boto3 clients (after the environment changed)."""
    config.reset()
    wiring.reset()
    clients.reset()


def client(service: str) -> Any:
    if service == "dynamodbstreams":
        # botocore routes stream calls to {account}.streams-ddb.{region}, a host moto does not serve.
        return boto3.client(service, region_name=REGION,  # type: ignore[call-overload]
                            config=Config(account_id_endpoint_mode="disabled"))
    return boto3.client(service, region_name=REGION)  # type: ignore[call-overload]


def queue_arn(url: str) -> str:
    arn: str = client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return arn


def receive_all(url: str) -> list[dict[str, Any]]:
    """Every message now visible on a queue (received, so they are in flight afterwards)."""
    sqs = client("sqs")
    found: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"],
                                    MessageAttributeNames=["All"]).get("Messages", [])
        if not batch:
            return found
        found += batch


def sqs_event(messages: list[dict[str, Any]], source_arn: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping would invoke the function with."""
    for message in messages:
        assert message["MD5OfBody"] == hashlib.md5(message["Body"].encode()).hexdigest()
    return {"Records": [sqs_record(message, source_arn, REGION) for message in messages]}


def stream_records(provisioned: Provisioned) -> list[dict[str, Any]]:
    """Every record on the table's stream, shaped as Lambda's DynamoDB event source delivers them."""
    return read_stream(client("dynamodbstreams"), provisioned.physical["Table"].attributes["StreamArn"])


def subscribe_queue_to_bus(bus_name: str, name: str) -> str:
    """A rule on the bus sending every crm event to a new queue; returns the queue's URL."""
    url: str = client("sqs").create_queue(QueueName=name)["QueueUrl"]
    events = client("events")
    events.put_rule(Name=name, EventBusName=bus_name, EventPattern=json.dumps({"source": ["crm"]}))
    events.put_targets(Rule=name, EventBusName=bus_name, Targets=[{"Id": "sink", "Arn": queue_arn(url)}])
    return url


def bus_events(url: str) -> list[dict[str, Any]]:
    return [json.loads(m["Body"]) for m in receive_all(url)]


class Countdown(LambdaContext):
    """A Lambda context whose time runs low from the ``calls``-th question on (a run that must stop early)."""

    def __init__(self, function_name: str, calls: int, timeout_ms: int = 900_000) -> None:
        super().__init__(function_name=function_name, timeout_ms=timeout_ms)
        self.calls = calls

    def get_remaining_time_in_millis(self) -> int:
        self.calls -= 1
        return self.timeout_ms if self.calls > 0 else 1_000
