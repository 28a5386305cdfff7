"""What a queued delivery means: the canonical events of its platform's connector, or of the tracker."""

from __future__ import annotations

from crm.connectors import connector_for
from crm.models.canonical import CanonicalEvent
from crm.models.ingest import IngestEnvelope
from crm.ports import StoreDirectory
from crm.tracking import track_events


def canonical_events(envelope: IngestEnvelope, body: bytes, stores: StoreDirectory) -> list[CanonicalEvent]:
    """The delivery's canonical events (raises crm.connectors.base.PayloadNotUnderstood)."""
    if envelope.source == "track":
        return list(track_events(envelope, body))
    return connector_for(envelope.platform).events(envelope, body, stores)
