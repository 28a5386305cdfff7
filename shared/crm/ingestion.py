"""Applying a queued delivery: map it to canonical orders and upsert profiles, idempotently."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from crm.connectors.base import PayloadNotUnderstood
from crm.interpret import canonical_events
from crm.models.canonical import CanonicalEvent
from crm.models.ingest import IngestEnvelope
from crm.models.orders import CanonicalOrder
from crm.models.profile import new_profile
from crm.ports import ConcurrentUpdate, IngestQueue, ProfileRepository, RawArchive, StoreDirectory
from crm.profiles import apply_order, primary_identity, profile_id_for

MAX_CONFLICT_RETRIES = 8


class TooManyConflicts(Exception):
    """The same profile kept changing under us; the message is retried by the queue."""


@dataclass(frozen=True)
class Outcome:
    applied: int = 0
    unchanged: int = 0
    dead_lettered: str | None = None


def upsert_order(repository: ProfileRepository, order: CanonicalOrder, now: datetime) -> bool:
    """Apply one order to its profile; False when it changed nothing (duplicate or stale)."""
    identity = primary_identity(order)
    candidate = profile_id_for(order.workspace_id, identity)
    for _ in range(MAX_CONFLICT_RETRIES):
        context = repository.load_for_order(order.workspace_id, order.store_id, order.order_id, identity,
                                            candidate)
        before = context.profile
        profile = before or new_profile(order.workspace_id, context.profile_id, now)
        applied = apply_order(profile, context.previous, order, now)
        if applied is None:
            return False
        new_identity = None if context.identity_exists or context.previous else identity
        try:
            repository.save_order(applied.record, context.previous, applied.profile, before, new_identity)
        except ConcurrentUpdate:
            continue
        return True
    raise TooManyConflicts(f"order {order.order_id} of store {order.store_id}")


def apply_envelope(
    message: str, repository: ProfileRepository, archive: RawArchive, queue: IngestQueue, now: datetime,
    stores: StoreDirectory,
) -> Outcome:
    """Apply one ingest-queue message. What can never succeed is dead-lettered with its reason;
    what might (throttling, conflicts, a platform API down) raises so the queue retries it.

    ``stores`` lets a connector whose webhooks carry only ids find the store's API token."""
    try:
        envelope = IngestEnvelope.model_validate_json(message)
    except ValidationError as error:
        return _dead_letter(queue, message, f"not an ingest envelope: {error.errors()[0]['msg']}")
    if envelope.body is not None:
        body = envelope.body.encode()
    elif envelope.archive_key is not None:
        body = archive.get(envelope.archive_key)
    else:
        return _dead_letter(queue, message, "envelope has neither a body nor an archive key")
    try:
        events = canonical_events(envelope, body, stores)
    except PayloadNotUnderstood as error:
        return _dead_letter(queue, message, f"{envelope.meta.topic} {envelope.meta.delivery_id}: {error}")
    return apply_events(repository, events, now)


def apply_events(repository: ProfileRepository, events: Sequence[CanonicalEvent], now: datetime) -> Outcome:
    """Apply canonical events in order (a delivery's, an import's); each is idempotent."""
    orders = [event for event in events if isinstance(event, CanonicalOrder)]
    applied = sum(upsert_order(repository, order, now) for order in orders)
    return Outcome(applied=applied, unchanged=len(events) - applied)


def _dead_letter(queue: IngestQueue, message: str, reason: str) -> Outcome:
    queue.dead_letter(message, reason)
    return Outcome(dead_lettered=reason)
