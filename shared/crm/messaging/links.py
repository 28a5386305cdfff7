"""The public link routes (functions/track): unsubscribe and confirm a subscribe, without a login.

A followed link becomes a consent statement signed by the CRM itself and goes through the ingest path
like a platform's webhook (archived, queued, applied by the profiles function), so the consent history,
the timeline line and the ``ConsentChanged`` event follow as for any other statement:

* ``POST /unsubscribe/{token}`` (a form's button, or a mail client's RFC 8058 one-click POST with the body
  ``List-Unsubscribe=One-Click``): the channel's consent is withdrawn at once, source "unsubscribe link".
* ``POST /confirm/{token}``: the profile's open consent request (a browser's subscribe) is confirmed by
  ``crm.consent.confirm_request``, source "double_opt_in", if the address is still the profile's.

``GET`` on either shows a page with a button that POSTs: mail security scanners follow every link in an
email, and a GET that unsubscribed or confirmed would act on their behalf.

The statement is an ``identify`` activity of the link's address (a timeline line ``identify`` beside the
``consent_changed`` one), on the store the email was sent for; its id comes from the token and the
time of the click, so a re-delivered message changes nothing twice.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from html import escape

from pydantic import BaseModel, ConfigDict

from crm.clock import UtcDateTime
from crm.connectors.base import PayloadNotUnderstood
from crm.consent import DOUBLE_OPT_IN
from crm.messaging.unsubscribe import LinkClaims, LinkPurpose, SigningKeys, verify
from crm.models.canonical import ActivityEvent, ActivityType
from crm.models.consent import Channel, Consent, ConsentState
from crm.models.ingest import DeliveryMeta, IngestEnvelope
from crm.models.stores import Platform
from crm.ports import IngestQueue, RawArchive
from crm.webhooks import store_delivery

UNSUBSCRIBE_SOURCE = "unsubscribe link"
LINK_TOPIC = "link"
ARCHIVE_FOLDER = "link"


class LinkStatement(BaseModel):
    """The ingest queue's body for a followed link: its verified claims and when it was followed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    claims: LinkClaims
    followed_at: UtcDateTime
    token_digest: str


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def follow_link(token: str, purpose: LinkPurpose, keys: SigningKeys, archive: RawArchive, queue: IngestQueue,
                now: datetime) -> LinkClaims:
    """Verify the token and enqueue its consent statement; raises LinkInvalid (400/404/410) for a bad token."""
    claims = verify(token, keys, purpose, now)
    statement = LinkStatement(claims=claims, followed_at=now, token_digest=token_digest(token))
    body = statement.model_dump_json(by_alias=True)
    envelope = IngestEnvelope(
        # Platform "custom": the statement is the CRM's own, not a platform's; the store is the one the email
        # was sent for, so the profile's stores do not change.
        platform=Platform.CUSTOM, source="link", workspace_id=claims.workspace_id, store_id=claims.store_id,
        meta=DeliveryMeta(topic=f"{LINK_TOPIC}/{purpose.value}",
                          delivery_id=f"{statement.token_digest}:{int(now.timestamp())}"),
        received_at=now, body=body,
    )
    store_delivery(envelope, body.encode(), archive, queue, ARCHIVE_FOLDER)
    return claims


def link_events(envelope: IngestEnvelope, body: bytes) -> list[ActivityEvent]:
    """The canonical event of a followed link (crm.interpret): the withdrawal or the confirmation."""
    try:
        statement = LinkStatement.model_validate_json(body)
    except ValueError as error:
        raise PayloadNotUnderstood(f"not a link statement: {error}") from None
    claims, at = statement.claims, statement.followed_at
    if claims.workspace_id != envelope.workspace_id:
        raise PayloadNotUnderstood("the link's workspace is not the delivery's")
    unsubscribe = claims.purpose is LinkPurpose.UNSUBSCRIBE
    consent = Consent(channel=claims.channel,
                      state=ConsentState.UNSUBSCRIBED if unsubscribe else ConsentState.SUBSCRIBED,
                      source=UNSUBSCRIBE_SOURCE if unsubscribe else DOUBLE_OPT_IN, at=at)
    email = claims.address if claims.channel is Channel.EMAIL else None
    phone = claims.address if claims.channel is Channel.SMS else None
    return [ActivityEvent(
        workspace_id=claims.workspace_id, store_id=envelope.store_id, platform=envelope.platform,
        event_id=f"link:{claims.purpose.value}:{statement.token_digest}:{int(at.timestamp())}",
        type=ActivityType.IDENTIFY, occurred_at=at, email=email, phone=phone,
        consents=(consent,) if unsubscribe else (), confirms=None if unsubscribe else consent, identifies_only=True,
    )]


# --- the pages ---------------------------------------------------------------------------------

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{title}</title>
<style>body{{font-family:Helvetica,Arial,sans-serif;max-width:480px;margin:64px auto;padding:0 16px;color:#222}}
button{{background:#111827;color:#fff;border:0;border-radius:6px;padding:12px 24px;font-size:16px;cursor:pointer}}
</style>
</head><body><h1>{title}</h1>{body}</body></html>
"""


def page(title: str, body_html: str) -> str:
    return _PAGE.format(title=escape(title), body=body_html)


def ask_page(purpose: LinkPurpose, claims: LinkClaims) -> str:
    """The GET answer: what the button will do, and the button (a form POSTing to the same URL)."""
    address = escape(claims.address)
    if purpose is LinkPurpose.UNSUBSCRIBE:
        return page("Unsubscribe", f"<p>Stop {claims.channel.value} messages to <strong>{address}</strong>?</p>"
                    '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
                    '<button type="submit">Unsubscribe</button></form>')
    return page("Confirm your subscription", f"<p>Receive emails at <strong>{address}</strong>?</p>"
                '<form method="post"><button type="submit">Yes, subscribe me</button></form>')


def done_page(purpose: LinkPurpose, claims: LinkClaims) -> str:
    address = escape(claims.address)
    if purpose is LinkPurpose.UNSUBSCRIBE:
        return page("You are unsubscribed", f"<p><strong>{address}</strong> will receive no more marketing "
                    f"{claims.channel.value} messages from this store.</p>")
    return page("Thank you", f"<p>Your subscription for <strong>{address}</strong> is confirmed.</p>")


def error_page(message: str) -> str:
    return page("This link does not work", f"<p>{escape(message)}</p>")


__all__ = [
    "LINK_TOPIC", "UNSUBSCRIBE_SOURCE", "LinkStatement", "ask_page", "done_page", "error_page", "follow_link",
    "link_events", "page", "token_digest",
]
