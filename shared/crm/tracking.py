"""Storefront tracking: the public /track API's events as canonical activity events."""

from __future__ import annotations

from crm.connectors.base import PayloadNotUnderstood
from crm.models.canonical import ActivityEvent
from crm.models.ingest import IngestEnvelope


def track_events(envelope: IngestEnvelope, body: bytes) -> list[ActivityEvent]:
    raise PayloadNotUnderstood("storefront tracking is not readable yet")
