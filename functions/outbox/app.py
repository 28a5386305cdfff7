"""Publishes domain events from the table's stream: the flows' to the flows queue, the bus's to the bus."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from crm import wiring
from crm.outbox import publish_stream_batch

logger = Logger(service="outbox")


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    retry_from = publish_stream_batch(event.get("Records", []), wiring.event_publisher())
    if retry_from:
        logger.warning("the flows queue or the bus refused events; retrying from a sequence number",
                       extra={"retry_from": retry_from})
    return {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in retry_from]}
