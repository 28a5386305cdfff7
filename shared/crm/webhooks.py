"""Accepting a store webhook: verify who sent it, enqueue it with its raw body.

One AWS write per delivery: the queue message, which carries the body; the queue's consumer archives it
before applying it (crm.archive.archive_messages). A body that cannot travel in the message (too large, or
not UTF-8) is archived here, as an S3 object of its own that the message names: two writes.

Nothing here interprets the body: a delivery that is signed correctly is kept even when we cannot
read it yet, and the profiles function decides what it means. (A connector may read the few body
fields that name the store and topic when its platform sends no headers for them: BigCommerce.)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from crm.archive import OBJECT_PREFIX, object_metadata
from crm.connectors import connector_for
from crm.connectors.base import DeliveryRejected
from crm.models.ingest import MAX_MESSAGE_BYTES, DeliveryMeta, IngestEnvelope
from crm.models.stores import Store
from crm.ports import IngestQueue, RawArchive, StoreDirectory


class UnknownPlatform(DeliveryRejected):
    status = 404


class NotAuthenticated(DeliveryRejected):
    """Unknown store or wrong signature: 401, and nothing is stored."""

    status = 401


# The same answer whether the store is unknown or the signature wrong: a 401 must not tell a stranger
# which store domains are registered.
NOT_SIGNED_BY_A_STORE = "unknown store or the signature does not match the store's secret"


@dataclass(frozen=True)
class AcceptedWebhook:
    store: Store
    envelope: IngestEnvelope


@dataclass(frozen=True)
class PingAcknowledged:
    """The platform's unsigned "is this URL alive" request (WooCommerce's creation ping): 200, nothing stored."""

    platform: str


def archive_key(platform: str, store_id: str, received_at: datetime, delivery_id: str, raw_body: bytes) -> str:
    """Where a stand-alone raw body lives: by platform, store and day. The body's digest keeps two
    different bodies apart even when a platform reuses a delivery id (WooCommerce's is per second)."""
    safe_id = re.sub(r"[^A-Za-z0-9._-]", "_", delivery_id)[:128]
    digest = hashlib.sha256(raw_body).hexdigest()[:16]
    return f"{OBJECT_PREFIX}{platform}/{store_id}/{received_at:%Y/%m/%d/%H%M%S}-{safe_id}-{digest}"


def accept_webhook(
    platform: str,
    headers: Mapping[str, str],
    raw_body: bytes,
    stores: StoreDirectory,
    archive: RawArchive,
    queue: IngestQueue,
    now: datetime,
) -> AcceptedWebhook | PingAcknowledged:
    """Verify, archive, enqueue; raises a DeliveryRejected subclass that names the problem.

    A platform's ping is recognised before the signature check (it is unsigned) and stores nothing.
    """
    try:
        connector = connector_for(platform)
    except KeyError:
        raise UnknownPlatform(f"unknown platform {platform!r}") from None
    if connector.is_ping(headers, raw_body):
        return PingAcknowledged(platform=platform)
    signature = connector.signature(headers)
    domain = connector.store_domain(headers, raw_body)
    store = stores.store_by_domain(connector.platform, domain)
    if store is None or not connector.is_signed_by(headers, raw_body, signature, store.webhook_secrets):
        raise NotAuthenticated(NOT_SIGNED_BY_A_STORE)
    if not connector.is_fresh(headers, now):
        raise NotAuthenticated("webhook timestamp is outside the accepted window (a replay?)")
    meta: DeliveryMeta = connector.delivery_meta(headers, raw_body)
    envelope = IngestEnvelope(
        platform=store.platform, workspace_id=store.workspace_id, store_id=store.store_id,
        meta=meta, received_at=now, body=_utf8(raw_body),
    )
    return AcceptedWebhook(store=store, envelope=store_delivery(envelope, raw_body, archive, queue, platform))


def store_delivery(
    envelope: IngestEnvelope, raw_body: bytes, archive: RawArchive, queue: IngestQueue, archive_name: str,
) -> IngestEnvelope:
    """Enqueue the raw body (archived by the queue's consumer), or archive it first when the message cannot
    carry it: what every accepted request (webhook, /track, a followed link, a statement) goes through.

    ``envelope`` carries the body as text when it is UTF-8; ``archive_name`` is the first folder of a
    stand-alone object's key. Returns the envelope as enqueued. Raises when the queue (or the object's
    write) refuses: the caller answers 503 and the sender retries, as when the archive refused.
    """
    if envelope.body is None or len(envelope.model_dump_json().encode()) > MAX_MESSAGE_BYTES:
        # Too large for a queue message, or not text: an object of its own that the message points to.
        key = archive_key(archive_name, envelope.store_id, envelope.received_at, envelope.meta.delivery_id,
                          raw_body)
        envelope = envelope.model_copy(update={"body": None, "archive_key": key})
        archive.put(key, raw_body, object_metadata(envelope))
    queue.enqueue(envelope)
    return envelope


def _utf8(raw_body: bytes) -> str | None:
    try:
        return raw_body.decode("utf-8", "strict")
    except UnicodeDecodeError:
        return None
