"""Keeps predicted CLV and churn current: the daily schedule queues a fit of every workspace; the worker fits
a workspace and writes its profiles' predictions, and refreshes a profile after each order placed or refunded
with the workspace's kept fit. Two handlers of one code folder (template.yaml names each); only the worker
imports the models (numpy and scipy, in the science layer)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from crm import wiring
from crm.adapters.segment_runs import send_tasks
from crm.clock import utc_now
from crm.config import settings
from crm.models.predictions import FitTask
from crm.predictions.inbox import read_message
from crm.predictions.refresh import Models, refresh_profiles, run_workspace

logger = Logger(service="predictions")
processor = BatchProcessor(event_type=EventType.SQS)


def models() -> Models:
    """The buy-till-you-die models, imported on first use (numpy and scipy load only where they are used)."""
    from crm.predictions import predict

    return Models(fit=predict.fit_workspace, predict=predict.predict)


@logger.inject_lambda_context
def on_schedule(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Queue a fit of every workspace (one worker each)."""
    tasks = [FitTask(fit_workspace=workspace_id) for workspace_id in wiring.store_directory().workspaces()]
    send_tasks(settings().require("predictions_queue_url"), tasks, "prediction")
    logger.info("prediction fits queued", extra={"workspaces": len(tasks)})
    return {"workspaces": len(tasks)}


def handle_record(record: SQSRecord) -> None:
    message = read_message(record.body)
    now = utc_now()
    if isinstance(message, FitTask):
        outcome = run_workspace(wiring.prediction_store(), wiring.profile_repository(), models(),
                                message.fit_workspace, now, wiring.affinity_store())
        fit = outcome.fit
        logger.info("workspace fitted", extra={
            "workspace_id": message.fit_workspace, "status": fit.status if fit else None,
            "chosen": fit.chosen if fit else None, "profiles": outcome.profiles, "written": outcome.written,
            "products_written": outcome.products_written})
        return
    outcome = refresh_profiles(wiring.prediction_store(), wiring.profile_repository(), models(),
                               message.detail.workspace_id, [message.detail.profile_id], now)
    logger.info("prediction refreshed", extra={"event": message.detail_type, "profile_id": message.detail.profile_id,
                                               "written": outcome.written})


@logger.inject_lambda_context
def on_message(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=handle_record, processor=processor, context=context)
