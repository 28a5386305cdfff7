"""AWS helpers for tests on moto: cache resets, queues, streams, and the event shapes Lambda delivers."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config
from crm import config, wiring
from crm.adapters import clients
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


def _lambda_attribute(value: dict[str, Any]) -> dict[str, Any]:
    """SQS API message attribute -> the camelCase shape Lambda's SQS event uses."""
    return {"stringValue": value.get("StringValue"), "binaryValue": value.get("BinaryValue"),
            "stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}


def sqs_event(messages: list[dict[str, Any]], source_arn: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping would invoke the function with."""
    records = []
    for message in messages:
        assert message["MD5OfBody"] == hashlib.md5(message["Body"].encode()).hexdigest()
        records.append({
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": {k: _lambda_attribute(v) for k, v in message.get("MessageAttributes", {}).items()},
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": source_arn,
            "awsRegion": REGION,
        })
    return {"Records": records}


def stream_records(provisioned: Provisioned) -> list[dict[str, Any]]:
    """Every record on the table's stream, shaped as Lambda's DynamoDB event source delivers them."""
    streams = client("dynamodbstreams")
    arn = provisioned.physical["Table"].attributes["StreamArn"]
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            answer = streams.get_records(ShardIterator=iterator)
            if not answer["Records"]:
                break
            records += answer["Records"]
            iterator = answer.get("NextShardIterator")
    for record in records:
        created = record["dynamodb"].get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            record["dynamodb"]["ApproximateCreationDateTime"] = created.timestamp()
        record["eventSourceARN"] = arn
    return records


def subscribe_queue_to_bus(bus_name: str, name: str) -> str:
    """A rule on the bus sending every crm event to a new queue; returns the queue's URL."""
    url: str = client("sqs").create_queue(QueueName=name)["QueueUrl"]
    events = client("events")
    events.put_rule(Name=name, EventBusName=bus_name, EventPattern=json.dumps({"source": ["crm"]}))
    events.put_targets(Rule=name, EventBusName=bus_name, Targets=[{"Id": "sink", "Arn": queue_arn(url)}])
    return url


def bus_events(url: str) -> list[dict[str, Any]]:
    return [json.loads(m["Body"]) for m in receive_all(url)]
