"""What crosses the ingest queue: a verified delivery, archived, waiting to be applied."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from crm.models.stores import Platform

# SQS takes 256 KiB per message; a larger envelope travels without its body, read from the archive.
MAX_MESSAGE_BYTES = 250_000

DeliverySource = Literal["webhook", "track", "link", "statement"]


class DeliveryMeta(BaseModel):
    """The platform's delivery headers, normalised across platforms."""

    model_config = ConfigDict(frozen=True)

    topic: str = Field(min_length=1)
    delivery_id: str = Field(min_length=1)
    event_id: str | None = None
    triggered_at: AwareDatetime | None = None
    api_version: str | None = None


class IngestEnvelope(BaseModel):
    """The ingest queue's message: who sent what, where the raw body is archived, and the body."""

    model_config = ConfigDict(frozen=True)

    platform: Platform
    # "webhook": a platform's signed delivery (its connector reads it); "track": a storefront
    # tracking request sent with the store's public write key (crm.tracking reads it); "link": a link of
    # an email followed, unsubscribe or confirm (crm.messaging.links reads it); "statement": a consent statement
    # the shopper made to the CRM itself, an SMS STOP reply or a spam complaint (crm.messaging.statements).
    source: DeliverySource = "webhook"
    workspace_id: str
    store_id: str
    meta: DeliveryMeta
    received_at: datetime
    # Set when the body did not fit the message and lives as an S3 object of its own.
    archive_key: str | None = None
    body: str | None = None
    # Set when the message was read back from the archive (`crm replay`): the profiles function, which archives
    # every body it receives before applying it (crm.archive.archive_messages), does not archive it again.
    archived: bool = False
