"""Store webhooks: verify, archive the raw body, enqueue; answer in well under a second."""

from __future__ import annotations

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError
from chalice import Chalice, Response
from crm import wiring
from crm.clock import utc_now
from crm.connectors.base import DeliveryRejected
from crm.models.stores import Platform
from crm.webhooks import PingAcknowledged, accept_webhook

app = Chalice(app_name="crm-webhooks")
logger = Logger(service="webhooks")

# Platforms send JSON, but a signed body is kept whatever it claims to be.
ANY_BODY = ["application/json", "text/plain", "application/x-www-form-urlencoded", "application/octet-stream"]


@app.route("/webhooks/{platform}", methods=["POST"], content_types=ANY_BODY)
def receive_webhook(platform: str) -> Response:
    return _receive(platform)


@app.route("/events", methods=["POST"], content_types=ANY_BODY)
def receive_events() -> Response:
    """The canonical event API for custom storefronts (docs/events-api.md): /webhooks/custom by its own name."""
    return _receive(Platform.CUSTOM.value)


def _receive(platform: str) -> Response:
    request = app.current_request
    try:
        accepted = accept_webhook(
            platform, request.headers, request.raw_body or b"",
            wiring.store_directory(), wiring.raw_archive(), wiring.ingest_queue(), utc_now(),
        )
    except DeliveryRejected as error:
        logger.warning("webhook rejected", extra={"platform": platform, "status": error.status,
                                                  "reason": str(error)})
        return Response(status_code=error.status, body={"error": str(error)})
    except (BotoCoreError, ClientError):
        # Not archived, so not acknowledged: the platform's retry delivers it again.
        logger.exception("webhook not stored", extra={"platform": platform})
        return Response(status_code=503, body={"error": "temporarily unable to store the webhook; retry"},
                        headers={"Retry-After": "30"})
    if isinstance(accepted, PingAcknowledged):
        logger.info("webhook ping acknowledged", extra={"platform": platform})
        return Response(status_code=200, body={"status": "ping acknowledged"})
    envelope = accepted.envelope
    logger.info("webhook accepted", extra={"platform": platform, "store_id": envelope.store_id,
                                           "topic": envelope.meta.topic, "delivery_id": envelope.meta.delivery_id})
    return Response(status_code=200, body={"status": "accepted", "delivery_id": envelope.meta.delivery_id})
