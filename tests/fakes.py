"""In-memory fakes of every port in crm.ports, faithful to the DynamoDB/S3/SQS/EventBridge adapters.

The contract suite (tests/contract) runs the same cases against these fakes and the real adapters
under moto, so a unit test that passes on a fake would pass on the adapter too.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from crm.archive import ArchivedDelivery, unframe
from crm.models.events import AnyDomainEvent
from crm.models.ingest import IngestEnvelope
from crm.models.profile import OrderRecord, Profile
from crm.models.stores import Platform, Store
from crm.ports import (
    ConcurrentUpdate,
    EventPublisher,
    IngestQueue,
    OrderContext,
    ProfileRepository,
    RawArchive,
    StoreDirectory,
    UnknownWorkspace,
)


def _key_hash(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


class FakeStoreDirectory:
    """Stores by (platform, domain); API keys kept only as hashes, like the DynamoDB adapter."""

    def __init__(self) -> None:
        self.stores: dict[tuple[str, str], Store] = {}
        self.api_keys: dict[str, str] = {}
        self.workspaces: set[str] = set()
        self.write_keys: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()

    def store_by_domain(self, platform: Platform, domain: str) -> Store | None:
        return self.stores.get((str(platform), domain))

    def store_by_write_key(self, write_key: str) -> Store | None:
        pointer = self.write_keys.get(write_key)
        return self.stores.get(pointer) if pointer else None

    def workspace_exists(self, workspace_id: str) -> bool:
        return workspace_id in self.workspaces

    def workspace_for_api_key(self, api_key: str) -> str | None:
        return self.api_keys.get(_key_hash(api_key))

    def register(self, store: Store, api_key: str, *, new_workspace: bool = True) -> None:
        """Store, write key, workspace and key together; a domain or write key already registered is
        refused (ValueError), joining a missing workspace too (UnknownWorkspace)."""
        with self._lock:
            key = (str(store.platform), store.domain)
            if not new_workspace and store.workspace_id not in self.workspaces:
                raise UnknownWorkspace(f"workspace {store.workspace_id} does not exist")
            if key in self.stores or (store.write_key is not None and store.write_key in self.write_keys):
                raise ValueError(f"{store.platform} store {store.domain} (or its write key) is already registered")
            self.stores[key] = store
            if store.write_key is not None:
                self.write_keys[store.write_key] = key
            self.workspaces.add(store.workspace_id)
            self.api_keys[_key_hash(api_key)] = store.workspace_id


class FakeProfileRepository:
    """Orders, profiles and identities; ``save_order`` is one atomic conditional write.

    The conditions are the DynamoDB adapter's: the order is still at ``previous``'s version (or
    absent when there is no previous), the profile is still at ``profile_before``'s revision (or
    absent), and a new identity does not exist yet. If any fails, nothing is written.

    ``before_save`` lets a test run a competing writer between a read and the write.
    """

    def __init__(self) -> None:
        self.orders: dict[tuple[str, str, str], OrderRecord] = {}
        self.profiles: dict[tuple[str, str], Profile] = {}
        self.identities: dict[tuple[str, str], str] = {}
        self.saves = 0
        self.conflicts = 0
        self.before_save: Callable[[], None] | None = None
        self._lock = threading.RLock()

    def load_for_order(
        self, workspace_id: str, store_id: str, order_id: str, identity: str, candidate_profile_id: str
    ) -> OrderContext:
        with self._lock:
            previous = self.orders.get((workspace_id, store_id, order_id))
            identity_profile = self.identities.get((workspace_id, identity))
            if previous is not None:
                profile_id = previous.profile_id
            elif identity_profile is not None:
                profile_id = identity_profile
            else:
                profile_id = candidate_profile_id
            return OrderContext(
                previous=previous,
                profile=self.profiles.get((workspace_id, profile_id)),
                profile_id=profile_id,
                identity_exists=identity_profile is not None,
            )

    def save_order(
        self,
        record: OrderRecord,
        previous: OrderRecord | None,
        profile: Profile,
        profile_before: Profile | None,
        identity: str | None,
    ) -> None:
        hook, self.before_save = self.before_save, None
        if hook is not None:
            hook()
        order = record.order
        order_key = (order.workspace_id, order.store_id, order.order_id)
        profile_key = (profile.workspace_id, profile.profile_id)
        with self._lock:
            held_order = self.orders.get(order_key)
            held_profile = self.profiles.get(profile_key)
            order_ok = (held_order is None if previous is None
                        else held_order is not None and held_order.order.version == previous.order.version)
            profile_ok = (held_profile is None if profile_before is None
                          else held_profile is not None and held_profile.revision == profile_before.revision)
            identity_ok = identity is None or (profile.workspace_id, identity) not in self.identities
            if not (order_ok and profile_ok and identity_ok):
                self.conflicts += 1
                raise ConcurrentUpdate(f"order {order.order_id} or profile {profile.profile_id} changed")
            self.orders[order_key] = record
            self.profiles[profile_key] = profile
            if identity is not None:
                self.identities[(profile.workspace_id, identity)] = profile.profile_id
            self.saves += 1

    def get_profile(self, workspace_id: str, profile_id: str) -> Profile | None:
        return self.profiles.get((workspace_id, profile_id))

    def profile_id_for_identity(self, workspace_id: str, identity: str) -> str | None:
        return self.identities.get((workspace_id, identity))


@dataclass
class ArchivedObject:
    body: bytes
    metadata: dict[str, str]


class FakeRawArchive:
    """A Firehose stream (framed deliveries, in order) and a bucket (bodies by key, ASCII user metadata)."""

    def __init__(self) -> None:
        self.objects: dict[str, ArchivedObject] = {}
        self.frames: list[bytes] = []

    def append(self, framed_delivery: bytes) -> None:
        list(unframe(framed_delivery))  # refuse what a replay could not read back
        self.frames.append(bytes(framed_delivery))

    def deliveries(self) -> list[tuple[ArchivedDelivery, bytes]]:
        return [delivery for framed in self.frames for delivery in unframe(framed)]

    @property
    def empty(self) -> bool:
        return not self.objects and not self.frames

    def put(self, key: str, body: bytes, metadata: Mapping[str, str]) -> None:
        for name, value in metadata.items():
            if not (name.isascii() and value.isascii()):
                raise ValueError(f"S3 user metadata must be ASCII: {name}={value!r}")
        self.objects[key] = ArchivedObject(bytes(body), dict(metadata))

    def get(self, key: str) -> bytes:
        try:
            return self.objects[key].body
        except KeyError:
            raise KeyError(f"NoSuchKey: {key}") from None


@dataclass
class DeadLetter:
    message: str
    reason: str


class FakeIngestQueue:
    """The ingest queue and its dead-letter queue; messages kept as the JSON bodies SQS would carry."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.dead_letters: list[DeadLetter] = []

    def enqueue(self, envelope: IngestEnvelope) -> None:
        self.messages.append(envelope.model_dump_json())

    def dead_letter(self, message: str, reason: str) -> None:
        self.dead_letters.append(DeadLetter(message, reason[:1000]))

    @property
    def envelopes(self) -> list[IngestEnvelope]:
        return [IngestEnvelope.model_validate_json(m) for m in self.messages]


@dataclass
class FakeEventPublisher:
    """A bus that accepts every event unless ``refuse`` says otherwise; keeps what it accepted, in order."""

    refuse: Callable[[AnyDomainEvent], bool] = lambda event: False
    published: list[AnyDomainEvent] = field(default_factory=list)
    calls: int = 0

    def publish(self, events: Sequence[AnyDomainEvent]) -> list[int]:
        self.calls += 1
        failed: list[int] = []
        for index, event in enumerate(events):
            if self.refuse(event):
                failed.append(index)
            else:
                self.published.append(event)
        return failed


# Static conformance: mypy checks these assignments against the Protocols.
_store_directory: type[StoreDirectory] = FakeStoreDirectory
_profile_repository: type[ProfileRepository] = FakeProfileRepository
_raw_archive: type[RawArchive] = FakeRawArchive
_ingest_queue: type[IngestQueue] = FakeIngestQueue
_event_publisher: type[EventPublisher] = FakeEventPublisher
