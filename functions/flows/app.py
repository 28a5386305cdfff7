"""Runs flows: bus events start, resume and end runs; wake-ups move them past waits; SES events and inbound
SMS go to the messaging feedback, and so do SNS's SMS delivery status lines (a CloudWatch Logs subscription
invokes the function with them). One bad record never blocks or drops its neighbours. What an invocation's
records count is written once per flow and day at its end (crm.flows.batch_counts), whatever became of them."""

from __future__ import annotations

from functools import partial
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from crm import wiring
from crm.clock import utc_now
from crm.flows.batch_counts import BatchCounters
from crm.flows.conversions import Outcome
from crm.flows.engine import FlowEvent
from crm.flows.inbox import BusEvent, LinkFollowed, SesEvent, SnsNotification, read_message
from crm.flows.service import Report
from crm.messaging.feedback import apply_inbound_sms, apply_link_followed, apply_ses_event, apply_sms_statuses
from crm.models.events import OrderPlaced, OrderRefunded

logger = Logger(service="flows")
metrics = Metrics(service="flows")
processor = BatchProcessor(event_type=EventType.SQS)


def _feedback(message: SesEvent | SnsNotification | LinkFollowed, counters: BatchCounters) -> None:
    deps, now = wiring.feedback_deps(counters), utc_now()
    if isinstance(message, SesEvent):
        outcome = apply_ses_event(message.detail, deps, now)
    elif isinstance(message, LinkFollowed):
        outcome = apply_link_followed(message, deps)
    else:
        outcome = apply_inbound_sms(message.message, deps, now)
    if outcome.suppressed:
        metrics.add_metric(name="EmailAddressSuppressed", unit=MetricUnit.Count, value=outcome.suppressed)
    logger.info("messaging feedback", extra={"kind": type(message).__name__, "suppressed": outcome.suppressed,
                                             "withdrawn": outcome.withdrawn, "workspaces": outcome.workspaces,
                                             "note": outcome.note, "ignored": outcome.ignored, **outcome.details})


def _reported(report: Report, record: SQSRecord) -> None:
    if report.unknown:
        # A send claimed and never recorded: not resent; a person decides (the FlowStepUnknown alarm).
        metrics.add_metric(name="FlowStepUnknown", unit=MetricUnit.Count, value=len(report.unknown))
        logger.error("flow steps of unknown outcome", extra={"steps": report.unknown})
    if report.sent:
        metrics.add_metric(name="FlowMessageSent", unit=MetricUnit.Count, value=len(report.sent))
    logger.info("flows record done", extra={"message_id": record.message_id, "started": report.started,
                                            "duplicates": report.duplicates, "sent": report.sent,
                                            "skipped": report.skipped, "ended": report.ended,
                                            "ignored": report.ignored})


def _attributed(outcome: Outcome, event: OrderPlaced | OrderRefunded) -> None:
    found = outcome.attribution
    if found is not None and isinstance(event, OrderPlaced):
        metrics.add_metric(name="FlowOrderAttributed", unit=MetricUnit.Count, value=1)
    logger.info("order attribution", extra={
        "event_id": event.event_id, "ignored": outcome.ignored, "refunded": str(outcome.refunded),
        "flow_id": found.flow_id if found else None, "message_id": found.message_id if found else None,
        "revenue": str(found.revenue) if found else None,
        "recovered_checkout": bool(found and found.recovered_checkout)})


def handle_record(record: SQSRecord, counters: BatchCounters) -> None:
    message = read_message(record.body)
    if isinstance(message, SesEvent | SnsNotification | LinkFollowed):
        _feedback(message, counters)
        return
    if isinstance(message, BusEvent) and message.detail_type == "OrderRefunded":
        refund = OrderRefunded.model_validate(message.detail)
        _attributed(wiring.conversions_service(counters).on_order_refunded(refund), refund)
        return
    service = wiring.flows_service(counters)
    if isinstance(message, BusEvent):
        _reported(service.on_event(FlowEvent.of(message.detail_type, message.detail)), record)
        if message.detail_type == "OrderPlaced":
            placed = OrderPlaced.model_validate(message.detail)
            _attributed(wiring.conversions_service(counters).on_order_placed(placed), placed)
    else:
        _reported(service.on_wake(message), record)


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # A failed record keeps its counts: what it saved before failing is saved, and its redelivery cannot count
    # it again (crm.flows.batch_counts).
    counters = BatchCounters(wiring.flow_counters())
    try:
        if "awslogs" in event:  # SMS delivery status (template.yaml SmsDeliveryStatus subscriptions)
            outcome = apply_sms_statuses(event, wiring.feedback_deps(counters))
            logger.info("sms delivery status", extra={"ignored": outcome.ignored, **outcome.details})
            return {}
        return process_partial_response(event=event, record_handler=partial(handle_record, counters=counters),
                                        processor=processor, context=context)
    finally:
        writes = counters.held
        counters.flush()
        logger.info("flow counters written", extra={"writes": writes})
