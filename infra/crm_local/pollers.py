"""Event source mappings, emulated: SQS and DynamoDB Streams pollers that invoke handlers as Lambda does.

The queues, redrive to dead-letter queues and the stream itself are moto's; only the polling
and invoking that the Lambda service does is done here. A stream's records are read from moto's backend in this
process (its GetRecords answer, through JSON as over HTTP): a stream poller reads after every write to the table,
and the request through botocore and moto's server cost more than the read.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from datetime import UTC, datetime
from typing import Any

import boto3
from moto.dynamodbstreams.models import dynamodbstreams_backends
from moto.events.models import EventPattern
from moto.sqs.models import sqs_backends

from crm_local.event_shapes import sqs_record, stream_record
from crm_local.lambdas import Function
from crm_local.moto_patches import epoch_seconds

log = logging.getLogger("crm.local")

# A poller is woken when its source gets work (crm_local.doorbell); it also looks this often for what the doorbell
# does not ring for (a delayed message, a visibility timeout that ran out).
IDLE_WAIT_SECONDS = 1.0
# Lambda waits for the visibility timeout before a failed message is tried again; locally we
# retry at once so a poison message reaches the DLQ (after maxReceiveCount) in seconds.
LOCAL_RETRY_DELAY_SECONDS = 0


def _queue_url(sqs: Any, arn: str) -> str:
    account, name = arn.split(":")[4:6]
    return str(sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"])


def _stream_json(value: object) -> object:
    """A stream record's values as Lambda's JSON event carries them: Binary (a packed item's) as base64 text."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return epoch_seconds(value)


class Poller(threading.Thread):
    """A thread that polls one event source until stopped; ``idle`` is set while nothing is pending."""

    def __init__(self, name: str, function: Function, mapping: dict[str, Any], region: str) -> None:
        super().__init__(name=name, daemon=True)
        self.function = function
        self.mapping = mapping
        self.region = region
        self.arn = str(mapping["EventSourceArn"])
        self.batch_size = int(mapping.get("BatchSize", 10))
        self.reports_failures = "ReportBatchItemFailures" in mapping.get("FunctionResponseTypes", [])
        self.stopping = threading.Event()
        self.idle = threading.Event()
        self.bell = threading.Event()  # rung when the source gets work, or to stop
        self._idle_lock = threading.Lock()  # a ring and the poller's "found nothing" never interleave
        self.invocations = 0

    def run(self) -> None:
        while not self.stopping.is_set():
            self.bell.clear()  # a ring from here on makes the wait below return at once
            try:
                worked = self.poll_once()
            except Exception:  # keep polling, as the Lambda service does; the error is logged
                log.exception("poller %s failed", self.name)
                worked = False
            if worked:
                self.idle.clear()
                continue
            with self._idle_lock:
                if not self.bell.is_set():
                    self.idle.set()
            self.bell.wait(IDLE_WAIT_SECONDS)

    def wake(self) -> None:
        """The source has work: busy until a poll finds nothing again."""
        with self._idle_lock:
            self.idle.clear()
            self.bell.set()

    def stop(self) -> None:
        self.stopping.set()
        self.bell.set()

    def poll_once(self) -> bool:
        raise NotImplementedError

    def pending(self) -> int:
        """Work the source still holds for this poller (0 when drained)."""
        raise NotImplementedError

    def invoke(self, event: dict[str, Any]) -> set[str] | None:
        """Invoke the function; None means the whole batch failed, else the failed item ids."""
        self.invocations += 1
        try:
            response = self.function.invoke(event)
        except Exception:
            log.exception("%s failed on a batch of %d", self.function.spec.logical_id, len(event["Records"]))
            return None
        if not self.reports_failures or not isinstance(response, dict):
            return set()
        return {str(f["itemIdentifier"]) for f in response.get("batchItemFailures", [])}


class SqsPoller(Poller):
    """Several may poll one queue (``LocalRuntime.scaled_out``): their receives take turns, since moto's receive
    marks the messages it answers received without a lock, and two at once could answer the same message."""

    _receiving: dict[str, threading.Lock] = {}
    _receiving_lock = threading.Lock()

    def __init__(self, name: str, function: Function, mapping: dict[str, Any], region: str) -> None:
        super().__init__(name, function, mapping, region)
        self.sqs: Any = boto3.client("sqs", region_name=region)
        self.url = _queue_url(self.sqs, self.arn)
        with self._receiving_lock:
            self._receive_turn = self._receiving.setdefault(self.arn, threading.Lock())

    def poll_once(self) -> bool:
        with self._receive_turn:
            messages = self.sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=min(self.batch_size, 10), WaitTimeSeconds=0,
                AttributeNames=["All"], MessageAttributeNames=["All"],
            ).get("Messages", [])
        if not messages:
            return False
        failed = self.invoke({"Records": [sqs_record(m, self.arn, self.region) for m in messages]})
        # One request for the batch's deletes and one for its retries, as Lambda's poller does, not one a message.
        retried = [m for m in messages if failed is None or m["MessageId"] in failed]
        done = [m for m in messages if m not in retried]
        answers = []
        if done:
            answers.append(self.sqs.delete_message_batch(QueueUrl=self.url, Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(done)]))
        if retried:
            answers.append(self.sqs.change_message_visibility_batch(QueueUrl=self.url, Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": LOCAL_RETRY_DELAY_SECONDS}
                for n, m in enumerate(retried)]))
        for answer in answers:
            for failure in answer.get("Failed", []):
                log.error("%s: %s on a message of the batch", self.name, failure.get("Message") or failure["Code"])
        return True

    def pending(self) -> int:
        """Messages held, visible or not: read from moto's queue, which lives in this process (asked
        over HTTP, as before, ``wait_idle``'s rounds cost a request per queue)."""
        account, name = self.arn.split(":")[4:6]
        return sum(1 for m in sqs_backends[account][self.region].get_queue(name)._messages if not m.delayed)


class StreamPoller(Poller):
    """Reads each shard in order; on failure retries from the failed record, up to MaximumRetryAttempts,
    then sends a record of the batch to the OnFailure destination and moves on."""

    def __init__(self, name: str, function: Function, mapping: dict[str, Any], region: str) -> None:
        super().__init__(name, function, mapping, region)
        self.streams: Any = boto3.client("dynamodbstreams", region_name=region)
        self.sqs: Any = boto3.client("sqs", region_name=region)
        self.max_retries = int(mapping.get("MaximumRetryAttempts", -1))
        self.on_failure: str | None = mapping.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        self.iterators: dict[str, str | None] = {}
        self.attempts = 0
        self.filters = self.filters_of(mapping)

    @staticmethod
    def filters_of(mapping: dict[str, Any]) -> list[EventPattern]:
        # Lambda's filter criteria use EventBridge's pattern language: moto's matcher is that language.
        return [EventPattern.load(f["Pattern"]) for f in mapping.get("FilterCriteria", {}).get("Filters", [])]

    def wanted(self, record: dict[str, Any]) -> bool:
        return not self.filters or any(f.matches_event(record) for f in self.filters)  # type: ignore[arg-type]

    def _refresh_shards(self) -> None:
        shards = self.streams.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]
        for shard in shards:
            if shard["ShardId"] not in self.iterators:
                self.iterators[shard["ShardId"]] = self.streams.get_shard_iterator(
                    StreamArn=self.arn, ShardId=shard["ShardId"],
                    ShardIteratorType=self.mapping.get("StartingPosition", "TRIM_HORIZON"),
                )["ShardIterator"]

    def poll_once(self) -> bool:
        if not self.iterators:
            self._refresh_shards()
        worked = False
        for shard_id, iterator in list(self.iterators.items()):
            if iterator is not None:
                worked |= self._poll_shard(shard_id, iterator)
        return worked

    def _get_records(self, iterator: str) -> dict[str, Any]:
        region, account = self.arn.split(":")[3:5]
        answer = dynamodbstreams_backends[account][region].get_records(iterator, self.batch_size)
        wire: dict[str, Any] = json.loads(json.dumps(answer, default=_stream_json))
        return wire

    def _poll_shard(self, shard_id: str, iterator: str) -> bool:
        answer = self._get_records(iterator)
        read = [stream_record(r, self.arn) for r in answer.get("Records", [])]
        if not read:
            self.iterators[shard_id] = answer.get("NextShardIterator")
            return False
        records = [r for r in read if self.wanted(r)]
        if not records:  # filtered out: Lambda moves past them without an invocation
            self.iterators[shard_id] = answer.get("NextShardIterator")
            return True
        failed = self.invoke({"Records": records})
        sequences = [r["dynamodb"]["SequenceNumber"] for r in records]
        if failed == set():
            self.attempts = 0
            self.iterators[shard_id] = answer.get("NextShardIterator")
            return True
        retry_from = sequences[0] if failed is None else min(failed & set(sequences), default=sequences[0], key=int)
        self.attempts += 1
        if 0 <= self.max_retries < self.attempts:
            self._give_up(shard_id, records)
            self.attempts = 0
            self.iterators[shard_id] = answer.get("NextShardIterator")
        else:
            self.iterators[shard_id] = self.streams.get_shard_iterator(
                StreamArn=self.arn, ShardId=shard_id, ShardIteratorType="AT_SEQUENCE_NUMBER",
                SequenceNumber=retry_from)["ShardIterator"]
        return True

    def _give_up(self, shard_id: str, records: list[dict[str, Any]]) -> None:
        log.error("%s: giving up on %d stream records of %s", self.name, len(records), shard_id)
        if not self.on_failure:
            return
        # The shape Lambda sends to an on-failure destination for stream sources.
        failure = {
            "requestContext": {"condition": "RetryAttemptsExhausted", "functionArn": self.function.arn,
                               "approximateInvokeCount": self.attempts},
            "DDBStreamBatchInfo": {
                "shardId": shard_id, "streamArn": self.arn, "batchSize": len(records),
                "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
                "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
            },
            "timestamp": datetime.now(UTC).isoformat(),
        }
        self.sqs.send_message(QueueUrl=_queue_url(self.sqs, self.on_failure), MessageBody=json.dumps(failure))

    def pending(self) -> int:
        return 0 if self.idle.is_set() else 1


def poller_for(name: str, function: Function, mapping: dict[str, Any], region: str) -> Poller:
    source = str(mapping["EventSourceArn"])
    if source.startswith("arn:aws:sqs:"):
        return SqsPoller(name, function, mapping, region)
    if ":dynamodb:" in source and "/stream/" in source:
        return StreamPoller(name, function, mapping, region)
    raise ValueError(f"{name}: event source {source} is not emulated by the local runtime")
