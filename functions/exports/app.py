"""Carries out queued segment exports: streams each into a file in S3 and records it done (or failed)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from crm import wiring
from crm.clock import utc_now
from crm.config import settings
from crm.models.exports import ExportMessage
from crm.segments.exports import run_export

logger = Logger(service="exports")
processor = BatchProcessor(event_type=EventType.SQS)


def export_record(record: SQSRecord) -> None:
    message = ExportMessage.model_validate_json(record.body)
    # On the queue's last delivery a failure is recorded on the job; before it, the queue retries.
    last_attempt = int(record.attributes.approximate_receive_count) >= settings().export_max_receives
    job = run_export(message, wiring.export_jobs(), wiring.segment_store(), wiring.profile_repository(),
                     wiring.export_files(), utc_now, last_attempt)
    if job is None:
        logger.info("export already carried out or taken over; nothing done", extra={"export_id": message.export_id})
        return
    logger.info("export finished", extra={"export_id": job.export_id, "status": job.status.value, "rows": job.rows,
                                          "bytes": job.size_bytes, "attempt": job.attempts})


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=export_record, processor=processor,
                                    context=context)
