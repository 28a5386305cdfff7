"""The predictions queue's own tasks: a fit handed back to wait (crm.predictions.daily)."""

from __future__ import annotations

from crm.adapters.clients import client
from crm.config import settings
from crm.models.predictions import FitTask


def send_fit_later(task: FitTask) -> None:
    """The fit back on the predictions queue, delivered after the configured delay (crm.config's
    fit_recheck_seconds: SQS's longest, 900 s, deployed)."""
    config = settings()
    client("sqs").send_message(QueueUrl=config.require("predictions_queue_url"), MessageBody=task.model_dump_json(),
                               DelaySeconds=config.fit_recheck_seconds)
