"""The events Lambda's event source mappings invoke functions with, built from what the AWS APIs return.

One place for these shapes: the local runtime's pollers, the tests and the benchmarks all use it.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any


def sqs_record(message: dict[str, Any], source_arn: str, region: str) -> dict[str, Any]:
    """A ReceiveMessage message as a record of Lambda's SQS event (camelCase attributes)."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: {"stringValue": value.get("StringValue"), "binaryValue": value.get("BinaryValue"),
                   "stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(message["Body"].encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": source_arn,
        "awsRegion": region,
    }


def stream_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A GetRecords record as Lambda delivers it: with its source ARN, and the creation time in epoch
    seconds (boto3 parses it into a datetime; Lambda's JSON event carries a number)."""
    change = dict(record["dynamodb"])
    created = change.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        change["ApproximateCreationDateTime"] = created.timestamp()
    return {**record, "dynamodb": change, "eventSourceARN": stream_arn}


def read_stream(streams: Any, stream_arn: str) -> list[dict[str, Any]]:
    """Every record on a stream from its start, shaped as Lambda delivers them."""
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator and (answer := streams.get_records(ShardIterator=iterator))["Records"]:
            records += [stream_record(r, stream_arn) for r in answer["Records"]]
            iterator = answer.get("NextShardIterator")
    return records
