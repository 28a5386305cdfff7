"""Storefront tracking: check the public write key and origin, archive the raw body, enqueue; answer 202."""

from __future__ import annotations

import time

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError
from chalice import Chalice, Response
from crm import wiring
from crm.clock import utc_now
from crm.config import track_settings
from crm.tracking import TokenBucketLimiter, TrackRejected, accept_track, accepted_body, preflight_headers

app = Chalice(app_name="crm-track")
logger = Logger(service="track")

# One per warm container; API Gateway's method throttling (template.yaml) limits across containers.
limiter = TokenBucketLimiter(rate=20.0, burst=40.0, clock=time.monotonic)

# navigator.sendBeacon and no-preflight fetches send text/plain; the body is JSON whatever it claims.
ANY_BODY = ["application/json", "text/plain", "application/octet-stream", "application/x-www-form-urlencoded"]


@app.route("/track", methods=["POST"], content_types=ANY_BODY)
def track() -> Response:
    request = app.current_request
    source_ip = str(request.context.get("identity", {}).get("sourceIp") or "unknown")
    try:
        accepted = accept_track(request.headers, request.raw_body or b"", source_ip, wiring.store_directory(),
                                wiring.raw_archive(), wiring.ingest_queue(), limiter, utc_now(),
                                track_settings().max_event_age)
    except TrackRejected as error:
        logger.info("track request refused", extra={"status": error.status, "reason": str(error)})
        return Response(status_code=error.status, body={"error": str(error)}, headers=error.headers)
    except (BotoCoreError, ClientError):
        logger.exception("track request not stored")
        return Response(status_code=503, body={"error": "temporarily unable to store the events; retry"},
                        headers={"Retry-After": "5"})
    logger.debug("track request accepted", extra={"store_id": accepted.store.store_id, "events": accepted.events})
    return Response(status_code=202, body=accepted_body(accepted), headers=accepted.headers)


@app.route("/track", methods=["OPTIONS"])
def preflight() -> Response:
    return Response(status_code=204, body="", headers=preflight_headers(app.current_request.headers.get("origin")))
