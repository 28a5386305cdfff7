"""What a queued delivery means: the canonical events of its platform's connector, or of the tracker."""

from __future__ import annotations

from crm.connectors import connector_for
from crm.connectors.base import PayloadNotUnderstood
from crm.messaging.links import link_events
from crm.messaging.statements import statement_events
from crm.models.canonical import CanonicalEvent
from crm.models.ingest import IngestEnvelope
from crm.ports import StoreDirectory
from crm.tracking import track_events


def canonical_events(envelope: IngestEnvelope, body: bytes, stores: StoreDirectory) -> list[CanonicalEvent]:
    """The delivery's canonical events (raises crm.connectors.base.PayloadNotUnderstood for a body that can
    never be read; any other exception is transient, e.g. a platform API that is down, and is retried)."""
    try:
        if envelope.source == "track":
            return list(track_events(envelope, body))
        if envelope.source == "link":
            return list(link_events(envelope, body))
        if envelope.source == "statement":
            return list(statement_events(envelope, body))
        return connector_for(envelope.platform).events(envelope, body, stores)
    except (ValueError, ArithmeticError, RecursionError) as error:
        # Reading a body is deterministic: an error about its values fails the same way on every retry, so
        # the delivery is parked at once with the reason rather than retried until the queue gives up.
        raise PayloadNotUnderstood(f"body not understood: {type(error).__name__}: {error}") from None
