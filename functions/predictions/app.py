"""Keeps predicted CLV and churn current: the daily schedule queues a fit of every workspace; the worker fits
a workspace and writes its profiles' predictions, and refreshes a profile after each order placed or refunded
with the workspace's kept fit. Two handlers of one code folder (template.yaml names each); only the worker
imports the models (numpy and scipy, in the science layer)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from crm import wiring
from crm.adapters.prediction_tasks import send_fit_later
from crm.adapters.segment_runs import send_tasks
from crm.clock import utc_now
from crm.config import settings
from crm.models.predictions import FitTask
from crm.predictions.daily import Later, Rest, fit_daily
from crm.predictions.inbox import sort_batch
from crm.predictions.refresh import Models, refresh_profiles

logger = Logger(service="predictions")


def models() -> Models:
    """The buy-till-you-die models, imported on first use (numpy and scipy load only where they are used)."""
    from crm.predictions import predict

    return Models(fit=predict.fit_workspace, predict=predict.predict)


@logger.inject_lambda_context
def on_schedule(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Queue a fit of every workspace (one worker each)."""
    queued_at = utc_now()
    tasks = [FitTask(fit_workspace=workspace_id, queued_at=queued_at)
             for workspace_id in wiring.store_directory().workspaces()]
    send_tasks(settings().require("predictions_queue_url"), tasks, "prediction")
    logger.info("prediction fits queued", extra={"workspaces": len(tasks)})
    return {"workspaces": len(tasks)}


def _fit(task: FitTask) -> None:
    outcome = fit_daily(task, utc_now(), wiring.prediction_store(), wiring.profile_repository(),
                        wiring.segment_runs(), models(), wiring.affinity_store(), wiring.fit_write_pause)
    if isinstance(outcome, Later):
        send_fit_later(outcome.task)
        logger.info("fit waits for the day's segment run", extra={"workspace_id": task.fit_workspace})
        return
    if isinstance(outcome, Rest):
        pause = outcome.outcome.held_back
        send_fit_later(outcome.task, pause)
        logger.info("fit's rest handed on", extra={"workspace_id": task.fit_workspace, "pause_seconds": pause,
                                                   "rest_after": outcome.task.rest_after,
                                                   "written": outcome.outcome.written})
        return
    fit = outcome.fit
    logger.info("workspace fitted", extra={
        "workspace_id": task.fit_workspace, "status": fit.status if fit else None,
        "chosen": fit.chosen if fit else None, "profiles": outcome.profiles, "written": outcome.written,
        "products_written": outcome.products_written, "read_from": outcome.read_from})


@logger.inject_lambda_context
def on_message(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Each fit on its own; the batch's orders refreshed a workspace at a time (its kept fit read once). A
    message whose work failed is reported, and the queue delivers it again (then its dead-letter queue)."""
    batch = sort_batch((record["messageId"], record["body"]) for record in event["Records"])
    failed = [message_id for message_id, invalid in batch.unreadable]
    for message_id, invalid in batch.unreadable:
        logger.error("unreadable message", extra={"message_id": message_id, "error": str(invalid)})
    for message_id, task in batch.fits:
        try:
            _fit(task)
        except Exception:
            logger.exception("fit failed", extra={"workspace_id": task.fit_workspace})
            failed.append(message_id)
    for workspace_id, named in batch.orders.items():
        try:
            outcome = refresh_profiles(wiring.prediction_store(), wiring.profile_repository(), models(),
                                       workspace_id, list(named), utc_now())
        except Exception:
            logger.exception("predictions refresh failed", extra={"workspace_id": workspace_id})
            failed += [message_id for ids in named.values() for message_id in ids]
            continue
        logger.info("predictions refreshed", extra={"workspace_id": workspace_id, "profiles": len(named),
                                                    "written": outcome.written})
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}
