"""Archives queued deliveries, then applies them to profiles; one bad record never blocks or drops its
neighbours."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from crm import wiring
from crm.adapters.bigcommerce import TIMEOUT_SECONDS
from crm.archive import archive_messages
from crm.clock import utc_now
from crm.ingestion import apply_envelope
from crm.privacy import hand_over

logger = Logger(service="profiles")
processor = BatchProcessor(event_type=EventType.SQS)
# A record may wait on the BigCommerce API for its whole timeout, then write: one is started only with that
# much time left and a margin, so a slow batch ends with its unstarted records retried, not all ten.
RECORD_RESERVE_MS = int((TIMEOUT_SECONDS + 5) * 1000)


class NotStarted(Exception):
    """Too little of the invocation's time was left to start the record: the queue delivers it again."""


def apply_record(record: SQSRecord, lambda_context: LambdaContext) -> None:
    if lambda_context.get_remaining_time_in_millis() < RECORD_RESERVE_MS:
        raise NotStarted(f"{lambda_context.get_remaining_time_in_millis()} ms left, {RECORD_RESERVE_MS} needed")
    outcome = apply_envelope(record.body, wiring.profile_repository(), wiring.raw_archive(),
                             wiring.ingest_queue(), utc_now(), wiring.store_directory())
    for request in outcome.compliance:
        job = hand_over(request, wiring.privacy_store(), wiring.privacy_queue(), utc_now())
        logger.info("privacy request handed over", extra={"request": job.request, "request_id": job.request_id})
    logger.info("delivery applied", extra={"message_id": record.message_id, "applied": outcome.applied,
                                           "unchanged": outcome.unchanged,
                                           "dead_lettered": outcome.dead_lettered})


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The whole batch is archived before any of it is applied: if the archive refuses, this raises and the
    # queue delivers every record again (docs/hostile-input.md).
    archive_messages([record["body"] for record in event["Records"]], wiring.raw_archive())
    return process_partial_response(event=event, record_handler=apply_record, processor=processor,
                                    context=context)
