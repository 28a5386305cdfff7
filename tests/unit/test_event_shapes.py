"""Lambda event shapes built from API answers: what the pollers, tests and benchmarks invoke with."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from crm_local.event_shapes import sqs_record, stream_record

ARN = "arn:aws:sqs:us-east-1:123456789012:crm-ingest"
STREAM = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026"


def test_an_sqs_message_becomes_a_lambda_record_with_camel_case_attributes() -> None:
    message = {"MessageId": "m1", "ReceiptHandle": "r1", "Body": "{}", "Attributes": {"ApproximateReceiveCount": "2"},
               "MessageAttributes": {"reason": {"DataType": "String", "StringValue": "bad"}}}
    record = sqs_record(message, ARN, "us-east-1")
    assert record["messageId"] == "m1"
    assert record["attributes"] == {"ApproximateReceiveCount": "2"}
    assert record["messageAttributes"]["reason"]["stringValue"] == "bad"
    assert record["messageAttributes"]["reason"]["dataType"] == "String"
    assert record["md5OfBody"] == hashlib.md5(b"{}").hexdigest()
    assert (record["eventSource"], record["eventSourceARN"], record["awsRegion"]) == ("aws:sqs", ARN, "us-east-1")


def test_a_stream_record_carries_its_creation_time_as_a_number_like_lambdas_json_event() -> None:
    created = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    raw = {"eventName": "INSERT", "dynamodb": {"ApproximateCreationDateTime": created, "SequenceNumber": "1"}}
    record = stream_record(raw, STREAM)
    assert record["dynamodb"]["ApproximateCreationDateTime"] == created.timestamp()
    assert record["eventSourceARN"] == STREAM
    assert raw["dynamodb"]["ApproximateCreationDateTime"] == created  # the API answer is left as it was
    json.dumps(record)  # serialisable, as a real Lambda event is
