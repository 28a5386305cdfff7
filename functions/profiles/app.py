"""Applies queued deliveries to profiles; one bad record never blocks or drops its neighbours."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from crm import wiring
from crm.clock import utc_now
from crm.ingestion import apply_envelope
from crm.privacy import carry_out

logger = Logger(service="profiles")
processor = BatchProcessor(event_type=EventType.SQS)


def apply_record(record: SQSRecord) -> None:
    outcome = apply_envelope(record.body, wiring.profile_repository(), wiring.raw_archive(),
                             wiring.ingest_queue(), utc_now(), wiring.store_directory())
    for request in outcome.compliance:
        done = carry_out(request, wiring.profile_repository(), wiring.privacy_store(), wiring.archive_store(),
                         utc_now())
        logger.info("privacy request carried out", extra={"request": done.request, "request_id": done.request_id,
                                                           "counts": done.counts})
    logger.info("delivery applied", extra={"message_id": record.message_id, "applied": outcome.applied,
                                           "unchanged": outcome.unchanged,
                                           "dead_lettered": outcome.dead_lettered})


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=apply_record, processor=processor,
                                    context=context)
