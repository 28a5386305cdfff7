"""The predictions queue's own tasks: a fit handed back to wait (crm.predictions.daily)."""

from __future__ import annotations

from datetime import timedelta

from crm.adapters.clients import client
from crm.config import settings
from crm.models.predictions import FitTask

MOST_DELAY = timedelta(seconds=900)  # SQS's longest DelaySeconds


def send_fit_later(task: FitTask, delay: timedelta, queue_url: str | None = None) -> None:
    """The fit back on the predictions queue, delivered after ``delay`` (at most SQS's 900 s)."""
    client("sqs").send_message(QueueUrl=queue_url or settings().require("predictions_queue_url"),
                               MessageBody=task.model_dump_json(),
                               DelaySeconds=int(min(delay, MOST_DELAY).total_seconds()))
