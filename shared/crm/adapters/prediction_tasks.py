"""The predictions queue's own tasks: a fit handed back to wait, or a paced fit's rest (crm.predictions.daily)."""

from __future__ import annotations

from crm.adapters.clients import client
from crm.config import settings
from crm.models.predictions import FitTask


def send_fit_later(task: FitTask, delay_seconds: int | None = None) -> None:
    """The fit back on the predictions queue, delivered after ``delay_seconds`` (a paced fit's rest) or the
    configured delay (crm.config's fit_recheck_seconds: SQS's longest, 900 s, deployed)."""
    config = settings()
    delay = config.fit_recheck_seconds if delay_seconds is None else delay_seconds
    client("sqs").send_message(QueueUrl=config.require("predictions_queue_url"), MessageBody=task.model_dump_json(),
                               DelaySeconds=delay)
