"""Storefront tracking: check the public write key and origin, archive the raw body, enqueue; answer 202.
And the links in emails (unsubscribe, confirm a subscribe): public too, the signed token is the credential.
And the short links in flow SMS (GET /r/{code}): a redirect, the click noted for the flows function."""

from __future__ import annotations

import time

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError
from chalice import Chalice, Response
from crm import wiring
from crm.clock import utc_now
from crm.config import track_settings
from crm.flows.inbox import LinkFollowed
from crm.messaging.links import ask_page, done_page, error_page, follow_link
from crm.messaging.shortlinks import CODE, clicked, is_preview, unsubscribed
from crm.messaging.unsubscribe import LinkInvalid, LinkPurpose, verify
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


# A mail client's RFC 8058 one-click POST is form-encoded ("List-Unsubscribe=One-Click"); some send nothing.
LINK_BODIES = ["application/x-www-form-urlencoded", "multipart/form-data", "text/plain", "application/json",
               "application/octet-stream"]
HTML = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store", "X-Robots-Tag": "noindex",
        "Referrer-Policy": "no-referrer"}


def _unavailable() -> Response:
    return Response(status_code=503, body=error_page("We could not record this just now; please try again."),
                    headers={**HTML, "Retry-After": "5"})


def _link_page(token: str, purpose: LinkPurpose) -> Response:
    """GET: what the button does, and the button (scanners that follow every link must not act)."""
    try:
        claims = verify(token, wiring.link_signing_keys().keys(), purpose, utc_now())
    except LinkInvalid as error:
        return Response(status_code=error.status, body=error_page(str(error)), headers=HTML)
    except (BotoCoreError, ClientError):
        logger.exception("link key not read")
        return _unavailable()
    return Response(status_code=200, body=ask_page(purpose, claims), headers=HTML)


def _follow(token: str, purpose: LinkPurpose) -> Response:
    """POST: the statement is enqueued at once (applied within seconds by the profiles function)."""
    try:
        claims = follow_link(token, purpose, wiring.link_signing_keys().keys(), wiring.raw_archive(),
                             wiring.ingest_queue(), utc_now())
    except LinkInvalid as error:
        logger.info("link refused", extra={"purpose": purpose.value, "status": error.status, "reason": str(error)})
        return Response(status_code=error.status, body=error_page(str(error)), headers=HTML)
    except (BotoCoreError, ClientError):
        logger.exception("link not stored")
        return _unavailable()
    logger.info("link followed", extra={"purpose": purpose.value, "workspace_id": claims.workspace_id})
    if purpose is LinkPurpose.UNSUBSCRIBE:
        _note(unsubscribed(claims, utc_now()))
    return Response(status_code=200, body=done_page(purpose, claims), headers=HTML)


def _note(notice: LinkFollowed | None) -> None:
    """Tell the flows function (stats only): a failure here must not cost the shopper the page or the shop."""
    if notice is None:
        return
    try:
        wiring.link_notices().notify(notice)
    except (BotoCoreError, ClientError):
        logger.exception("followed link not noted", extra={"type": notice.type.value, "run_id": notice.run_id})


@app.route("/unsubscribe/{token}", methods=["GET"])
def unsubscribe_page(token: str) -> Response:
    return _link_page(token, LinkPurpose.UNSUBSCRIBE)


@app.route("/unsubscribe/{token}", methods=["POST"], content_types=LINK_BODIES)
def unsubscribe(token: str) -> Response:
    return _follow(token, LinkPurpose.UNSUBSCRIBE)


@app.route("/confirm/{token}", methods=["GET"])
def confirm_page(token: str) -> Response:
    return _link_page(token, LinkPurpose.CONFIRM)


@app.route("/confirm/{token}", methods=["POST"], content_types=LINK_BODIES)
def confirm(token: str) -> Response:
    return _follow(token, LinkPurpose.CONFIRM)


NOT_FOUND = "This link does not exist (or it was copied in part)."


@app.route("/r/{code}", methods=["GET"])
def short_link(code: str) -> Response:
    """An SMS's short link (crm.messaging.shortlinks): 302 to where it points, the click noted."""
    if not CODE.match(code):
        return Response(status_code=404, body=error_page(NOT_FOUND), headers=HTML)
    try:
        link = wiring.short_links().get(code)
    except (BotoCoreError, ClientError):
        logger.exception("short link not read")
        return _unavailable()
    if link is None:
        return Response(status_code=404, body=error_page(NOT_FOUND), headers=HTML)
    if not is_preview(app.current_request.headers.get("user-agent")):
        _note(clicked(link, utc_now()))
    return Response(status_code=302, body="", headers={"Location": link.url, "Cache-Control": "no-store",
                                                       "Referrer-Policy": "no-referrer"})
