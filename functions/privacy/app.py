"""Carries out privacy requests (export, erase a shopper, erase a store), resuming where a run stopped."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from crm import wiring
from crm.clock import utc_now
from crm.flows.service import forget_runs
from crm.models.canonical import ComplianceRequest
from crm.privacy import carry_out

logger = Logger(service="privacy")
processor = BatchProcessor(event_type=EventType.SQS)
# Time kept back to finish the archive object at hand (a Firehose object is up to 64 MB) and store the cursor.
RESERVE_MS = 120_000


def carry_out_record(record: SQSRecord, lambda_context: LambdaContext) -> None:
    request = ComplianceRequest.model_validate_json(record.body)
    job = carry_out(request, wiring.profile_repository(), wiring.privacy_store(), wiring.archive_store(),
                    wiring.privacy_queue(), utc_now(),
                    out_of_time=lambda: lambda_context.get_remaining_time_in_millis() < RESERVE_MS,
                    forget_flows=lambda ws, profile_id: forget_runs(wiring.flow_runs(), wiring.wait_scheduler(), ws,
                                                                   profile_id))
    logger.info("privacy request " + ("carried out" if job.stage == "done" else "paused, queued to resume"),
                extra={"request": job.request, "request_id": job.request_id, "runs": job.runs,
                       "objects_scanned": job.archive.objects_scanned})


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=carry_out_record, processor=processor,
                                    context=context)
