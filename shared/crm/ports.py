"""The ports the domain services use; DynamoDB/S3/SQS/EventBridge adapters and in-memory fakes implement them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from crm.models.events import AnyDomainEvent
from crm.models.ingest import IngestEnvelope
from crm.models.profile import OrderRecord, Profile
from crm.models.stores import Platform, Store


class UnknownWorkspace(ValueError):
    """A store was to join a workspace that does not exist."""


class ConcurrentUpdate(Exception):
    """Someone else wrote the same profile or order since we read it: read again and retry."""


@dataclass(frozen=True)
class OrderContext:
    """What applying one order needs to read: the order as held, and its profile if any."""

    previous: OrderRecord | None
    profile: Profile | None
    profile_id: str
    identity_exists: bool


class StoreDirectory(Protocol):
    def store_by_domain(self, platform: Platform, domain: str) -> Store | None: ...

    def workspace_for_api_key(self, api_key: str) -> str | None: ...

    def store_by_write_key(self, write_key: str) -> Store | None: ...

    def workspace_exists(self, workspace_id: str) -> bool: ...

    def register(self, store: Store, api_key: str, *, new_workspace: bool = True) -> None:
        """Store, its write key and a marketer key, atomically; with ``new_workspace`` the workspace is
        created too, otherwise it must exist (UnknownWorkspace). A platform + domain or
        write key already registered is refused (ValueError) and nothing is written."""
        ...


class ProfileRepository(Protocol):
    def load_for_order(
        self, workspace_id: str, store_id: str, order_id: str, identity: str, candidate_profile_id: str
    ) -> OrderContext: ...

    def save_order(
        self,
        record: OrderRecord,
        previous: OrderRecord | None,
        profile: Profile,
        profile_before: Profile | None,
        identity: str | None,
    ) -> None:
        """Write order, profile and (new) identity atomically; ConcurrentUpdate if either changed."""
        ...

    def get_profile(self, workspace_id: str, profile_id: str) -> Profile | None: ...

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
