"""Consent statements the CRM receives itself, from the shopper, about its own messages: an SMS reply STOP, a
spam complaint about an email (docs/deliverability.md).

They take the ingest path like every signed statement (a platform's webhook, a custom store's /events): the
raw statement is archived, enqueued, and the profiles function applies it, so the consent history, the
``consent_changed`` timeline line and the ConsentChanged event follow as for any other source. A statement
is authoritative (signed, in docs/consent.md's sense): it comes from AWS (SES's feedback loop, SNS's
two-way SMS), not from a browser.

The body on the queue is a ``ShopperStatement``; ``statement_events`` reads it back as an ``identify``
activity carrying the consent, keyed by the statement's own id, so a redelivered SES event or SMS applies
once.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from crm.connectors.base import PayloadNotUnderstood
from crm.models.canonical import ActivityEvent, ActivityType
from crm.models.consent import Channel, Consent, ConsentState
from crm.models.ingest import DeliveryMeta, IngestEnvelope
from crm.models.stores import Platform

STATEMENT_TOPIC_PREFIX = "statement/"


class ShopperStatement(BaseModel):
    """One consent statement for one address: ``email`` for the email channel, ``phone`` for SMS."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Unique per occurrence (the SES feedback id, the inbound SMS's id): the activity's event id.
    statement_id: str = Field(min_length=1, max_length=200)
    channel: Channel
    state: ConsentState
    source: str = Field(min_length=1, max_length=100)  # "sms STOP", "ses complaint"
    at: datetime
    email: str | None = None
    phone: str | None = None

    @model_validator(mode="after")
    def _addressed(self) -> ShopperStatement:
        if self.at.tzinfo is None:
            raise ValueError("a statement's time must be timezone-aware")
        wanted = self.email if self.channel is Channel.EMAIL else self.phone
        if not wanted or (self.email and self.phone):
            raise ValueError(f"a {self.channel.value} statement names exactly its "
                             f"{'email' if self.channel is Channel.EMAIL else 'phone'}")
        return self


def statement_envelope(statement: ShopperStatement, workspace_id: str, store_id: str,
                       received_at: datetime) -> tuple[IngestEnvelope, bytes]:
    """The ingest message and raw body (for crm.webhooks.store_delivery) of a statement.

    ``store_id`` is a store the profile already belongs to: a statement is about the workspace's shopper,
    not about one store, and must not link the profile to a store it never bought from.
    """
    body = statement.model_dump_json().encode()
    envelope = IngestEnvelope(
        platform=Platform.CUSTOM, source="statement", workspace_id=workspace_id, store_id=store_id,
        meta=DeliveryMeta(topic=f"{STATEMENT_TOPIC_PREFIX}{statement.channel.value}",
                          delivery_id=statement.statement_id, triggered_at=statement.at),
        received_at=received_at, body=body.decode())
    return envelope, body


def statement_events(envelope: IngestEnvelope, body: bytes) -> list[ActivityEvent]:
    """The statement as the activity the profiles function applies (PayloadNotUnderstood if unreadable)."""
    try:
        statement = ShopperStatement.model_validate_json(body)
    except ValidationError as error:
        raise PayloadNotUnderstood(f"not a shopper statement: {error.errors()[0]['msg']}") from None
    consent = Consent(channel=statement.channel, state=statement.state, source=statement.source, at=statement.at)
    return [ActivityEvent(
        workspace_id=envelope.workspace_id, store_id=envelope.store_id, platform=envelope.platform,
        event_id=statement.statement_id, type=ActivityType.IDENTIFY, occurred_at=statement.at,
        email=statement.email, phone=statement.phone, consents=(consent,),
    )]
