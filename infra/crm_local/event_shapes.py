"""The events Lambda's event source mappings invoke functions with, built from what the AWS APIs return.

One place for these shapes: the local runtime's pollers, the tests and the benchmarks all use it.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
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


def http_api_event(method: str, route: str, path: str, headers: Mapping[str, str], body: bytes,
                   source_ip: str = "203.0.113.7", now: datetime | None = None) -> dict[str, Any]:
    """API Gateway HTTP API's Lambda event in payload format 1.0 (template.yaml IngestApi): REST's shape,
    which Chalice routes on (``requestContext.resourcePath`` is the route), with HTTP API's differences:
    header names in lower case, the ``$default`` stage, and a body that is not JSON passed base64-encoded
    (HTTP APIs have no binary media types setting)."""
    moment = now or datetime.now(UTC)
    lowered = {name.lower(): value for name, value in headers.items()}
    names = re.findall(r"\{(\w+)\}", route)
    values = re.fullmatch(re.sub(r"\\\{\w+\\\}", "([^/]+)", re.escape(route)), path)
    if values is None:
        raise ValueError(f"{path} does not match the route {route}")
    is_json = lowered.get("content-type", "").split(";")[0].strip().endswith("json")
    return {
        "version": "1.0",
        "resource": route,
        "path": path,
        "httpMethod": method,
        "headers": lowered,
        "multiValueHeaders": {name: [value] for name, value in lowered.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "requestContext": {
            "accountId": "123456789012", "apiId": "ingest", "domainName": "ingest.execute-api.local",
            "domainPrefix": "ingest", "extendedRequestId": "local", "httpMethod": method,
            "identity": {"sourceIp": source_ip, "userAgent": lowered.get("user-agent"), "accessKey": None,
                         "caller": None, "user": None, "userArn": None},
            "path": path, "protocol": "HTTP/1.1", "requestId": "local",
            "requestTime": f"{moment:%d/%b/%Y:%H:%M:%S} +0000", "requestTimeEpoch": int(moment.timestamp() * 1000),
            "resourceId": None, "resourcePath": route, "stage": "$default",
        },
        "pathParameters": dict(zip(names, values.groups(), strict=True)) or None,
        "stageVariables": None,
        "body": body.decode() if is_json else base64.b64encode(body).decode(),
        "isBase64Encoded": not is_json,
    }
