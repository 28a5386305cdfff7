"""The ports the domain services use; DynamoDB/S3/SQS/EventBridge adapters and in-memory fakes implement them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from crm.models.events import AnyDomainEvent
from crm.models.ingest import IngestEnvelope
from crm.models.profile import CustomerState, OrderRecord, Profile, TimelineEntry
from crm.models.stores import Platform, Store


class ConcurrentUpdate(Exception):
    """Someone else wrote the same profile or order since we read it: read again and retry."""


@dataclass(frozen=True)
class Reads:
    """What applying one event needs to read, in one round trip (plus one to follow profile ids)."""

    workspace_id: str
    identities: tuple[str, ...] = ()
    order: tuple[str, str] | None = None  # (store_id, order_id)
    customer: tuple[str, str] | None = None  # (store_id, customer_id)
    event: tuple[str, str] | None = None  # (store_id, event_id): was it applied before?


@dataclass(frozen=True)
class Context:
    """What the table holds for one event. ``owners`` maps each known identity to its live profile
    (merged profiles already followed to their survivor)."""

    owners: dict[str, Profile]
    pointers: dict[str, str]  # identity -> the profile id its item holds (maybe a merged one)
    redacted: frozenset[str]  # identities erased by a privacy request: never stored again
    order: OrderRecord | None
    order_owner: Profile | None
    customer: CustomerState | None
    event_seen: bool


@dataclass(frozen=True)
class IdentityLink:
    identity: str
    profile_id: str
    previous_profile_id: str | None  # None: the identity must be new


@dataclass(frozen=True)
class Change:
    """Everything one event writes, atomically; each write is guarded by what was read."""

    workspace_id: str
    profiles: tuple[tuple[Profile, int | None], ...] = ()  # (profile, revision read; None: must be new)
    order: tuple[OrderRecord, str | None] | None = None  # (record, version read; None: must be new)
    customer: tuple[CustomerState, str | None] | None = None
    identities: tuple[IdentityLink, ...] = ()
    timeline: tuple[TimelineEntry, ...] = ()
    event: tuple[str, str, str] | None = None  # (store_id, event_id, profile_id): must be new


class StoreDirectory(Protocol):
    def store_by_domain(self, platform: Platform, domain: str) -> Store | None: ...

    def workspace_for_api_key(self, api_key: str) -> str | None: ...

    def register(self, store: Store, api_key: str) -> None: ...


class ProfileRepository(Protocol):
    def load(self, reads: Reads) -> Context: ...

    def commit(self, change: Change) -> None:
        """Write everything atomically; ConcurrentUpdate if anything read has changed since."""
        ...

    def get_profile(self, workspace_id: str, profile_id: str) -> Profile | None:
        """The live profile: a merged id is followed to the profile it was merged into."""
        ...

    def timeline(self, workspace_id: str, profile_ids: Sequence[str], before: str | None,
                 limit: int) -> list[TimelineEntry]:
        """Timeline entries of these profiles, newest first, older than the sort key ``before``."""
        ...

    def profile_id_for_identity(self, workspace_id: str, identity: str) -> str | None: ...


class RawArchive(Protocol):
    def append(self, framed_delivery: bytes) -> None:
        """Archive one framed delivery (crm.archive.frame) in a batched object."""
        ...

    def put(self, key: str, body: bytes, metadata: Mapping[str, str]) -> None: ...

    def get(self, key: str) -> bytes: ...


class IngestQueue(Protocol):
    def enqueue(self, envelope: IngestEnvelope) -> None: ...

    def dead_letter(self, message: str, reason: str) -> None: ...


class EventPublisher(Protocol):
    def publish(self, events: Sequence[AnyDomainEvent]) -> list[int]:
        """Publish in order; returns the indexes of events the bus did not accept."""
        ...
