"""Raw archive (Firehose + S3), SQS ingest queue + dead letters, SQS export and privacy queues, EventBridge
publisher."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from botocore.exceptions import ClientError

from crm.adapters.clients import client
from crm.archive import ArchiveRefused, pack
from crm.config import settings
from crm.models.canonical import ComplianceRequest
from crm.models.events import EVENT_SOURCE, AnyDomainEvent
from crm.models.exports import ExportMessage
from crm.models.ingest import IngestEnvelope
from crm.ports import ConcurrentUpdate

# PutEvents takes at most 10 entries per request.
_PUT_EVENTS_BATCH = 10


# PutRecordBatch takes at most 500 records and 4 MiB a call.
_PUT_RECORDS_BATCH = 500
_PUT_RECORDS_BYTES = 4 * 1024 * 1024


def _calls(records: Sequence[bytes]) -> Iterator[list[bytes]]:
    call: list[bytes] = []
    size = 0
    for record in records:
        if call and (len(call) == _PUT_RECORDS_BATCH or size + len(record) > _PUT_RECORDS_BYTES):
            yield call
            call, size = [], 0
        call.append(record)
        size += len(record)
    if call:
        yield call


class FirehoseS3Archive:
    """Deliveries that travelled in queue messages through Firehose (batched into S3 objects), large ones
    straight to S3."""

    def __init__(self, bucket: str | None = None, stream: str | None = None) -> None:
        self.bucket = bucket
        self.stream = stream

    def append(self, framed_deliveries: Sequence[bytes]) -> None:
        stream = self.stream or settings().require("archive_stream")
        # A queue batch (10 messages of <= 250 KB) is one call; the call's own limits matter only past that.
        for call in _calls(pack(framed_deliveries)):
            answer = client("firehose").put_record_batch(DeliveryStreamName=stream,
                                                         Records=[{"Data": record} for record in call])
            if answer.get("FailedPutCount"):
                errors = {str(r["ErrorCode"]) for r in answer.get("RequestResponses", []) if r.get("ErrorCode")}
                raise ArchiveRefused(f"Firehose refused {answer['FailedPutCount']} of {len(call)} records: "
                                     f"{', '.join(sorted(errors))}")

    def put(self, key: str, body: bytes, metadata: Mapping[str, str]) -> None:
        bucket = self.bucket or settings().require("archive_bucket")
        client("s3").put_object(Bucket=bucket, Key=key, Body=body, Metadata=dict(metadata))

    def get(self, key: str) -> bytes:
        bucket = self.bucket or settings().require("archive_bucket")
        body: bytes = client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        return body


class S3ArchiveStore:
    """The archive bucket, object by object (privacy requests rewrite what names a shopper)."""

    def __init__(self, bucket: str | None = None) -> None:
        self.bucket = bucket

    def _bucket(self) -> str:
        return self.bucket or settings().require("archive_bucket")

    def keys(self, prefixes: Iterable[str], start_after: str | None = None) -> Iterator[str]:
        paginator = client("s3").get_paginator("list_objects_v2")
        after = {"StartAfter": start_after} if start_after else {}
        for prefix in prefixes:
            for page in paginator.paginate(Bucket=self._bucket(), Prefix=prefix, **after):
                for obj in page.get("Contents", []):
                    yield str(obj["Key"])

    def get(self, key: str) -> bytes:
        return self.read(key)[0]

    def read(self, key: str) -> tuple[bytes, str]:
        answer = client("s3").get_object(Bucket=self._bucket(), Key=key)
        body: bytes = answer["Body"].read()
        return body, str(answer["ETag"])

    def put(self, key: str, data: bytes) -> None:
        client("s3").put_object(Bucket=self._bucket(), Key=key, Body=data)

    def replace(self, key: str, data: bytes, version: str) -> None:
        try:
            client("s3").put_object(Bucket=self._bucket(), Key=key, Body=data, IfMatch=version)
        except ClientError as error:
            if error.response["Error"]["Code"] in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise ConcurrentUpdate(f"archive object {key} changed since it was read") from None
            raise

    def delete(self, key: str) -> None:
        client("s3").delete_object(Bucket=self._bucket(), Key=key)


class SqsIngestQueue:
    def __init__(self, queue_url: str | None = None, dead_letter_url: str | None = None) -> None:
        self.queue_url = queue_url
        self.dead_letter_url = dead_letter_url

    def enqueue(self, envelope: IngestEnvelope) -> None:
        url = self.queue_url or settings().require("ingest_queue_url")
        client("sqs").send_message(QueueUrl=url, MessageBody=envelope.model_dump_json())

    def dead_letter(self, message: str, reason: str) -> None:
        """Park a message that cannot be applied, with why, where `crm dlq` can show and redrive it."""
        url = self.dead_letter_url or settings().require("ingest_dlq_url")
        client("sqs").send_message(
            QueueUrl=url,
            MessageBody=message,
            MessageAttributes={"reason": {"DataType": "String", "StringValue": reason[:1000]}},
        )


class SqsExportQueue:
    """Segment export jobs for the exports function."""

    def __init__(self, queue_url: str | None = None) -> None:
        self.queue_url = queue_url

    def enqueue(self, message: ExportMessage) -> None:
        url = self.queue_url or settings().require("export_queue_url")
        client("sqs").send_message(QueueUrl=url, MessageBody=message.model_dump_json())


class SqsPrivacyQueue:
    """Privacy requests for the privacy function."""

    def __init__(self, queue_url: str | None = None) -> None:
        self.queue_url = queue_url

    def enqueue(self, request: ComplianceRequest) -> None:
        url = self.queue_url or settings().require("privacy_queue_url")
        client("sqs").send_message(QueueUrl=url, MessageBody=request.model_dump_json())


class EventBridgePublisher:
    def __init__(self, bus_name: str | None = None) -> None:
        self.bus_name = bus_name or settings().require("event_bus_name")

    def publish(self, events: Sequence[AnyDomainEvent]) -> list[int]:
        failed: list[int] = []
        for start in range(0, len(events), _PUT_EVENTS_BATCH):
            chunk = events[start : start + _PUT_EVENTS_BATCH]
            answer = client("events").put_events(Entries=[
                {
                    "EventBusName": self.bus_name,
                    "Source": EVENT_SOURCE,
                    "DetailType": event.type,
                    "Detail": event.model_dump_json(),
                    "Time": event.occurred_at,
                }
                for event in chunk
            ])
            if answer.get("FailedEntryCount"):
                failed += [start + i for i, entry in enumerate(answer["Entries"]) if "ErrorCode" in entry]
        return failed


def dead_letter_reason(attributes: Mapping[str, object]) -> str:
    """The reason a dead-lettered message carries, or why it has none (it exhausted its retries)."""
    reason = attributes.get("reason")
    if isinstance(reason, dict):
        return str(reason.get("StringValue", ""))
    return "retries exhausted (moved by the queue's redrive policy)"
