"""In-memory fakes of every port in crm.ports, faithful to the DynamoDB/S3/SQS/EventBridge adapters.

The contract suite (tests/contract) runs the same cases against these fakes and the real adapters
under moto, so a unit test that passes on a fake would pass on the adapter too.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from crm.adapters.timeline_items import GROUPED_TYPES, line_groups
from crm.archive import ArchivedDelivery, unframe
from crm.flows.memory import (
    MemoryFlowCatalogue,
    MemoryMessagingStore,
    MemoryRunStore,
    MemorySuppressions,
    MemoryWaitScheduler,
    RecordingEmailSender,
    RecordingSmsSender,
    UnrenderedComposer,
)
from crm.models.currency import CurrencyJob, CurrencySettings, CurrencyTask
from crm.models.events import AnyDomainEvent
from crm.models.exports import ExportJob, ExportMessage, ExportStatus
from crm.models.ingest import IngestEnvelope
from crm.models.messaging import (
    OutgoingEmail,
)
from crm.models.predictions import Prediction, PredictionSettings, WorkspaceFit
from crm.models.privacy import PrivacyJob
from crm.models.profile import CustomerState, OrderRecord, Profile, TimelineEntry
from crm.models.segment_runs import EvaluatedPart, HourlyTask, RunPart, RunPhase, RunTask, SegmentRun
from crm.models.segments import (
    BUILTIN_PREFIX,
    BuiltinSettings,
    GrowthPoint,
    HeldSegments,
    Member,
    MembershipChange,
    SegmentRecord,
)
from crm.models.stores import ApiKey, Platform, Store, StoreSecrets, api_key_id
from crm.ports import (
    Change,
    ConcurrentUpdate,
    Context,
    EventPublisher,
    ExportFiles,
    ExportJobStore,
    ExportQueue,
    IngestQueue,
    ProfilePage,
    ProfileRepository,
    RawArchive,
    Reads,
    SegmentRuns,
    SegmentStore,
    StoreDirectory,
    TaskQueue,
    UnknownWorkspace,
)
from crm.profiles import named_profile_id, unmerged
from crm.segments.runs import carry_out, run_hour
from crm.unwritten_orders import order_state


def _key_hash(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


class FakeStoreDirectory:
    """Stores by (platform, domain); API keys kept only as hashes, like the DynamoDB adapter."""

    def __init__(self) -> None:
        self.stores: dict[tuple[str, str], Store] = {}
        self.keys: dict[str, ApiKey] = {}  # by the key's hash
        self.workspace_ids: set[str] = set()
        self.write_keys: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()

    def store_by_domain(self, platform: Platform, domain: str) -> Store | None:
        return self.stores.get((str(platform), domain))

    def store_by_write_key(self, write_key: str) -> Store | None:
        pointer = self.write_keys.get(write_key)
        found = self.stores.get(pointer) if pointer else None
        return found.model_copy(update={"webhook_secrets": (), "api_token": None}) if found else None

    def workspace_exists(self, workspace_id: str) -> bool:
        return workspace_id in self.workspace_ids

    def workspaces(self) -> Iterator[str]:
        yield from sorted(self.workspace_ids)

    def workspace_stores(self, workspace_id: str) -> list[Store]:
        found = (s.model_copy(update={"webhook_secrets": (), "api_token": None}) for s in self.stores.values()
                 if s.workspace_id == workspace_id)
        return sorted(found, key=lambda store: (store.created_at, store.store_id))

    def api_key(self, api_key: str) -> ApiKey | None:
        return self.keys.get(_key_hash(api_key))

    def add_api_key(self, api_key: str, key: ApiKey) -> None:
        with self._lock:
            if key.workspace_id not in self.workspace_ids:
                raise UnknownWorkspace(f"workspace {key.workspace_id} does not exist")
            self.keys[_key_hash(api_key)] = key

    def api_keys(self, workspace_id: str) -> list[ApiKey]:
        return sorted((k for k in self.keys.values() if k.workspace_id == workspace_id),
                      key=lambda k: (k.created_at, k.key_id))

    def revoke_api_key(self, workspace_id: str, key_id: str, now: datetime) -> ApiKey | None:
        with self._lock:
            for digest, key in self.keys.items():
                if (key.workspace_id, key.key_id) == (workspace_id, key_id):
                    if key.revoked_at is None:
                        self.keys[digest] = key = key.model_copy(update={"revoked_at": now})
                    return key
        return None

    def register(self, store: Store, api_key: str, *, new_workspace: bool = True) -> None:
        """Store, write key, workspace and key together; a domain or write key already registered is
        refused (ValueError), joining a missing workspace too (UnknownWorkspace)."""
        with self._lock:
            key = (str(store.platform), store.domain)
            if not new_workspace and store.workspace_id not in self.workspace_ids:
                raise UnknownWorkspace(f"workspace {store.workspace_id} does not exist")
            if key in self.stores or (store.write_key is not None and store.write_key in self.write_keys):
                raise ValueError(f"{store.platform} store {store.domain} (or its write key) is already registered")
            self.stores[key] = store
            if store.write_key is not None:
                self.write_keys[store.write_key] = key
            self.workspace_ids.add(store.workspace_id)
            self.keys[_key_hash(api_key)] = ApiKey(key_id=api_key_id(api_key), workspace_id=store.workspace_id,
                                                   created_at=store.created_at)


class FakeSecretVault:
    """Store secrets by store id, without SecretsManagerVault's cache (tested on moto)."""

    def __init__(self) -> None:
        self.secrets: dict[str, StoreSecrets] = {}

    def store_secrets(self, store_id: str) -> StoreSecrets | None:
        return self.secrets.get(store_id)

    def keep(self, store_id: str, secrets: StoreSecrets) -> None:
        self.secrets[store_id] = secrets

    def forget(self, store_id: str) -> None:
        self.secrets.pop(store_id, None)


class FakeProfileRepository:
    """Profiles, identities, orders, customer accounts and timelines in dicts; ``commit`` is one atomic
    conditional write with the DynamoDB adapter's conditions (each item still as it was read, or absent).
    If any fails, nothing is written.

    ``before_save`` lets a test run a competing writer between a read and the write.
    """

    def __init__(self) -> None:
        self.orders: dict[tuple[str, str, str], OrderRecord] = {}
        self.profiles: dict[tuple[str, str], Profile] = {}
        self.identities: dict[tuple[str, str], str] = {}
        self.redacted: set[tuple[str, str]] = set()
        self.customers: dict[tuple[str, str, str], CustomerState] = {}
        self.timelines: dict[tuple[str, str], dict[str, TimelineEntry]] = {}
        # The activities each timeline item holds, by its key, as the adapter stores them (a line alone, or a
        # folded write's lines in one item keyed like its earliest: crm.adapters.timeline_items): what a read of
        # an activity's line key finds.
        self.line_items: dict[tuple[str, str], dict[str, frozenset[tuple[str, str]]]] = {}
        self.currency: dict[str, CurrencySettings] = {}  # shared with a FakeCurrencyStore, as the table is
        self.saves = 0
        self.conflicts = 0
        self.before_save: Callable[[], None] | None = None
        self._lock = threading.RLock()

    def _live(self, workspace_id: str, profile_id: str) -> Profile | None:
        return self._follow(workspace_id, profile_id)[0]

    def _follow(self, workspace_id: str, profile_id: str) -> tuple[Profile | None, list[Profile]]:
        """The live profile, and the profiles marked as merging met on the way, as the adapter follows them (a
        marked profile whose survivor is gone is live again: crm.profiles.unmerged)."""
        profile = self.profiles.get((workspace_id, profile_id))
        met: list[Profile] = []
        while profile is not None and profile.merged_into:
            if profile.merging:
                met.append(profile)
            following = self.profiles.get((workspace_id, profile.merged_into))
            if following is None and met and met[-1] is profile:
                return unmerged(met.pop()), met
            profile = following
        return profile, met

    def load(self, reads: Reads) -> Context:
        ws = reads.workspace_id
        with self._lock:
            pointers = {i: self.identities[(ws, i)] for i in reads.identities if (ws, i) in self.identities}
            # Without a link item an identity leads to the profile named after it, if that exists, as the adapter
            # reads (a redacted identity's item is a link to no one).
            leads_to = {**{i: named for i in reads.identities
                           if (ws, i) not in self.redacted and (named := named_profile_id(ws, i))}, **pointers}
            owners = {i: p for i, pid in leads_to.items() if (p := self._live(ws, pid)) is not None}
            order = self.orders.get((ws, *reads.order)) if reads.order else None
            customer = self.customers.get((ws, *reads.customer)) if reads.customer else None
            held_version = order.version if order else customer.version if customer else None
            if reads.version is not None and reads.version == held_version:
                return Context(owners={}, pointers=pointers, redacted=frozenset(
                    i for i in reads.identities if (ws, i) in self.redacted), order=order, order_owner=None,
                    customer=customer, event_seen=False, already_held=True)
            if customer is not None and reads.customer and (owner := self._live(ws, customer.profile_id)):
                owners.setdefault(f"customer#{reads.customer[0]}#{reads.customer[1]}", owner)
            merging: dict[str, dict[str, Profile]] = {}
            for pid in {*leads_to.values(), *(p.profile_id for p in (order, customer) if p and p.profile_id)}:
                live, met = self._follow(ws, pid)
                for marked in met if live is not None else ():
                    merging.setdefault(live.profile_id, {})[marked.profile_id] = marked
            # An activity is applied if its line is on its profile or one merged into it, as the adapter reads:
            # every activity an item found at one of the line keys holds.
            items = [self.line_items.get((ws, pid), {}) for owner in [
                *owners.values(), *(p for found in merging.values() for p in found.values())]
                     for pid in (owner.profile_id, *owner.merged_from)]
            seen = frozenset(event for held in items for sort_key in reads.lines.values()
                             for event in held.get(sort_key, ())).intersection(reads.lines)
            first = reads.identities[:1]
            taken = {i: self.profiles.get((ws, named)) for i in first
                     if (ws, i) not in self.redacted and (named := named_profile_id(ws, i))}
            return Context(
                owners=owners, pointers=pointers,
                named_into={i: self.identities.get((ws, i)) or stone.merged_into for i, stone in taken.items()
                            if stone is not None and stone.merged_into},
                unnamed=frozenset(i for i in reads.identities if (ws, i) not in self.identities
                                  and (ws, i) not in self.redacted and (named := named_profile_id(ws, i))
                                  and (ws, named) not in self.profiles),
                redacted=frozenset(i for i in reads.identities if (ws, i) in self.redacted),
                order=order,
                order_owner=self._live(ws, order.profile_id) if order and order.profile_id else None,
                customer=customer,
                event_seen=reads.event in seen,
                currency=self.currency.get(ws),
                seen=seen, merging={pid: tuple(found.values()) for pid, found in merging.items()},
            )

    def _guards_hold(self, change: Change) -> bool:
        ws = change.workspace_id
        checks: list[tuple[object, object]] = [
            *((getattr(self.profiles.get((ws, p.profile_id)), "revision", None), revision)
              for p, revision in change.profiles),
            *((self.identities.get((ws, link.identity)), link.previous_profile_id) for link in change.identities),
            *((self.profiles.get((ws, link.named_tombstone.profile_id)), None) for link in change.identities
              if link.named_tombstone is not None),
        ]
        if change.order is not None:
            record, read = change.order
            held = self.orders.get((ws, record.store_id, record.order_id))
            checks.append((held and order_state(held), read and order_state(read)))
        if change.customer is not None:
            state, version = change.customer
            checks.append((getattr(self.customers.get((ws, state.store_id, state.customer_id)), "version", None),
                           version))
        # An absent item reads as None, so "must be new" (expected None) and "still at this value" are one test.
        return all(held == expected for held, expected in checks)

    def commit(self, change: Change) -> None:
        hook, self.before_save = self.before_save, None
        if hook is not None:
            hook()
        if change.merging:  # marked first, as the adapter writes them (its other writes are guarded by the marks)
            self.commit(Change(change.workspace_id, profiles=change.merging))
            change = replace(change, merging=())
        ws = change.workspace_id
        with self._lock:
            if not self._guards_hold(change):
                self.conflicts += 1
                raise ConcurrentUpdate("an item changed since it was read")
            for profile, _ in change.profiles:
                self.profiles[(ws, profile.profile_id)] = profile
            for link in change.identities:
                if link.named_tombstone is not None:
                    self.profiles[(ws, link.named_tombstone.profile_id)] = link.named_tombstone
                self.identities[(ws, link.identity)] = link.profile_id
            if change.order is not None:
                self.orders[(ws, change.order[0].store_id, change.order[0].order_id)] = change.order[0]
            if change.customer is not None:
                state = change.customer[0]
                self.customers[(ws, state.store_id, state.customer_id)] = state
            self.put_lines(ws, change.timeline, grouped=change.guard_last and bool(change.folded))
            self.saves += 1

    def put_lines(self, workspace_id: str, lines: Sequence[TimelineEntry], grouped: bool = False) -> None:
        """Lines as the adapter writes them: ``grouped``, each profile's activities in one item."""
        for group in line_groups(lines) if grouped else [(entry,) for entry in lines]:
            self.put_line_item(workspace_id, group)

    def put_line_item(self, workspace_id: str, group: Sequence[TimelineEntry]) -> None:
        first = group[0]
        self.line_items.setdefault((workspace_id, first.profile_id), {})[first.sort_key] = frozenset(
            (entry.store_id or "", entry.ref) for entry in group if entry.type in GROUPED_TYPES)
        for entry in group:
            self.timelines.setdefault((workspace_id, entry.profile_id), {})[entry.sort_key] = entry

    def get_profile(self, workspace_id: str, profile_id: str) -> Profile | None:
        return self._live(workspace_id, profile_id)

    def get_profiles(self, workspace_id: str, profile_ids: Collection[str]) -> dict[str, Profile]:
        found = {pid: self._live(workspace_id, pid) for pid in profile_ids}
        return {pid: profile for pid, profile in found.items() if profile is not None}

    def profile_id_for_identity(self, workspace_id: str, identity: str) -> str | None:
        if (workspace_id, identity) in self.redacted:
            return None
        named = named_profile_id(workspace_id, identity)
        return self.identities.get((workspace_id, identity),
                                   named if named and (workspace_id, named) in self.profiles else None)

    def timeline(self, workspace_id: str, profile_ids: Sequence[str], before: str | None,
                 limit: int) -> list[TimelineEntry]:
        entries = [e for pid in profile_ids for e in self.timelines.get((workspace_id, pid), {}).values()
                   if before is None or e.sort_key < before]
        entries.sort(key=lambda e: (e.sort_key, e.profile_id), reverse=True)
        return entries[:limit]

    def timeline_of(self, workspace_id: str, profile_ids: Sequence[str], types: Collection[str], before: str | None,
                    limit: int) -> list[TimelineEntry]:
        every = self.timeline(workspace_id, profile_ids, before, sys.maxsize)
        return [e for e in every if e.type in types][:limit]

    def order_records(self, workspace_id: str, refs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], OrderRecord]:
        found = (self.orders.get((workspace_id, *ref)) for ref in refs)
        return {(r.store_id, r.order_id): r for r in found if r is not None}

    def workspace_profiles(self, workspace_id: str, segment: int = 0, total_segments: int = 1) -> Iterator[Profile]:
        """Shares by a hash of the profile id, as DynamoDB shares by a hash of the key; a snapshot first,
        so a write during the pass does not break the iteration."""
        with self._lock:
            held = [p for (ws, _), p in self.profiles.items() if ws == workspace_id and not p.merged_into]
        for profile in held:
            if _share(profile.profile_id, total_segments) == segment:
                yield profile

    def profiles_by_id(self, workspace_id: str, profile_ids: Sequence[str]) -> dict[str, Profile]:
        found = (self.profiles.get((workspace_id, pid)) for pid in profile_ids)
        return {p.profile_id: p for p in found if p is not None and not p.merged_into}

    def live_profiles(self) -> list[Profile]:
        return sorted((p for p in self.profiles.values() if not p.merged_into), key=lambda p: p.profile_id)


class FakePredictionStore:
    """Settings and fits in dicts; a prediction goes onto the repository's profile under its revision guard."""

    def __init__(self, profiles: FakeProfileRepository) -> None:
        self.profiles = profiles
        self.held_settings: dict[str, PredictionSettings] = {}
        self.fits: dict[str, WorkspaceFit] = {}
        self.writes = 0
        self.before_write: Callable[[], None] | None = None

    def settings(self, workspace_id: str) -> PredictionSettings | None:
        return self.held_settings.get(workspace_id)

    def put_settings(self, workspace_id: str, settings: PredictionSettings) -> None:
        self.held_settings[workspace_id] = settings

    def fit(self, workspace_id: str) -> WorkspaceFit | None:
        return self.fits.get(workspace_id)

    def put_fit(self, fit: WorkspaceFit) -> None:
        self.fits[fit.workspace_id] = fit

    def write_prediction(self, profile: Profile, prediction: Prediction) -> None:
        hook, self.before_write = self.before_write, None
        if hook is not None:
            hook()
        key = (profile.workspace_id, profile.profile_id)
        with self.profiles._lock:
            held = self.profiles.profiles.get(key)
            if held is None or held.revision != profile.revision:
                raise ConcurrentUpdate("the profile changed since it was read")
            self.profiles.profiles[key] = held.model_copy(update={"prediction": prediction,
                                                                  "revision": held.revision + 1})
            self.writes += 1


def _share(profile_id: str, total: int) -> int:
    return int(hashlib.sha256(profile_id.encode()).hexdigest(), 16) % total


class FakeSegmentStore:
    """Segment records, memberships and each profile's set of segments in dicts, with the adapter's guards.

    ``profiles`` is the repository whose profiles a scan reads (the table holds both in DynamoDB)."""

    def __init__(self, profiles: FakeProfileRepository | None = None) -> None:
        self.profiles = profiles or FakeProfileRepository()
        self.records: dict[tuple[str, str], SegmentRecord] = {}
        self.memberships: dict[tuple[str, str], dict[str, Member]] = {}
        self.held_sets: dict[tuple[str, str], HeldSegments] = {}
        self.member_writes = 0  # member items put or deleted
        self.stored_settings: dict[str, BuiltinSettings] = {}
        self.due: dict[tuple[str, datetime], set[str]] = {}  # (workspace, hour): profiles filed under it
        self.held_reads = 0
        self.page_size = 1_000  # profiles a page of profile_pages holds (the adapter's index page)

    def get(self, workspace_id: str, segment_id: str) -> SegmentRecord | None:
        return self.records.get((workspace_id, segment_id))

    def list_segments(self, workspace_id: str) -> list[SegmentRecord]:
        """As the adapter's catalogue: custom segments, and built-ins once computed."""
        return sorted((r for (ws, _), r in self.records.items() if ws == workspace_id
                       and (r.definition is not None or r.last_computed_at is not None)), key=lambda r: r.segment_id)

    def custom_segments(self, workspace_id: str) -> list[SegmentRecord]:
        return [r.model_copy(update={"size": 0}) for r in self.list_segments(workspace_id) if r.definition is not None]

    def put(self, record: SegmentRecord, expected_version: int | None) -> None:
        held = self.records.get((record.workspace_id, record.segment_id))
        if (held.version if held else None) != expected_version:
            raise ConcurrentUpdate(f"segment {record.segment_id} changed since it was read")
        self.records[(record.workspace_id, record.segment_id)] = record

    def delete(self, workspace_id: str, segment_id: str) -> None:
        self.records.pop((workspace_id, segment_id), None)
        self.memberships.pop((workspace_id, segment_id), None)

    def _builtin_record(self, workspace_id: str, segment_id: str, at: datetime) -> SegmentRecord:
        return SegmentRecord(workspace_id=workspace_id, segment_id=segment_id, name=segment_id, created_at=at,
                             updated_at=at)

    def record_computation(self, workspace_id: str, segment_id: str, at: datetime,
                           growth: Sequence[GrowthPoint], expected_version: int | None, *, size: int) -> None:
        held = self.records.get((workspace_id, segment_id))
        if expected_version is None:
            if held is not None and held.definition is not None:
                raise ConcurrentUpdate(f"segment {segment_id} has a definition")
            held = held or self._builtin_record(workspace_id, segment_id, at)
        elif held is None or held.version != expected_version:
            raise ConcurrentUpdate(f"segment {segment_id} changed since it was computed")
        self.records[(workspace_id, segment_id)] = held.model_copy(update={
            "last_computed_at": at, "growth": tuple(growth), "size": size})

    def members(self, workspace_id: str, segment_id: str, after: str | None, limit: int) -> list[Member]:
        held = self.memberships.get((workspace_id, segment_id), {})
        return [held[pid] for pid in sorted(held) if after is None or pid > after][:limit]

    def held(self, workspace_id: str, profile_id: str) -> HeldSegments:
        return self.held_sets.get((workspace_id, profile_id), HeldSegments())

    def profile_with_segments(self, workspace_id: str, profile_id: str) -> tuple[Profile, HeldSegments] | None:
        profile = self.profiles.profiles.get((workspace_id, profile_id))
        return None if profile is None else (profile, self.held(workspace_id, profile_id))

    def profiles_with_segments(self, workspace_id: str, share: int = 0,
                               shares: int = 1) -> Iterator[tuple[Profile, HeldSegments]]:
        with self.profiles._lock:
            found = [p for (ws, _), p in self.profiles.profiles.items() if ws == workspace_id]
        for profile in found:
            if _share(profile.profile_id, shares) == share:
                yield profile, self.held(workspace_id, profile.profile_id)

    def profile_pages(self, workspace_id: str, share: int = 0, shares: int = 1,
                      after: str | None = None) -> Iterator[ProfilePage]:
        """Pages of ``page_size`` profiles in profile id order, resumed after a page's last profile id."""
        share_of = sorted(self.profiles_with_segments(workspace_id, share, shares), key=lambda p: p[0].profile_id)
        rest = [pair for pair in share_of if after is None or pair[0].profile_id > after]
        for start in range(0, len(rest), self.page_size):
            page = rest[start:start + self.page_size]
            yield ProfilePage(page, page[-1][0].profile_id if start + self.page_size < len(rest) else None)
        if not rest:
            yield ProfilePage([], None)

    def held_segments(self, workspace_id: str, profile_id: str) -> HeldSegments | None:
        self.held_reads += 1
        return self.held_sets.get((workspace_id, profile_id))

    def profiles_by_id(self, workspace_id: str, profile_ids: Iterable[str]) -> Iterator[tuple[Profile, HeldSegments]]:
        for pid in profile_ids:
            profile = self.profiles.profiles.get((workspace_id, pid))
            if profile is not None:
                yield profile, self.held(workspace_id, pid)

    def file_due(self, workspace_id: str, due: Iterable[tuple[str, datetime]]) -> None:
        for pid, at in due:
            hour = at.replace(minute=0, second=0, microsecond=0)
            self.due.setdefault((workspace_id, hour), set()).add(pid)

    def due_profiles(self, workspace_id: str, hour: datetime) -> list[str]:
        return sorted(self.due.get((workspace_id, hour), ()))

    def apply_membership(self, change: MembershipChange) -> None:
        ws, pid = change.workspace_id, change.profile_id
        if self.held(ws, pid).version != change.expected_version:
            raise ConcurrentUpdate(f"the segments of {pid} changed meanwhile")
        for segment_id in change.entered:
            if not segment_id.startswith(BUILTIN_PREFIX) and (ws, segment_id) not in self.records:
                raise ConcurrentUpdate(f"segment {segment_id} was deleted meanwhile")
        self.held_sets[(ws, pid)] = HeldSegments(segment_ids=change.segment_ids,
                                                 version=change.expected_version + 1, revision=change.revision)
        for segment_id in change.entered:
            self.memberships.setdefault((ws, segment_id), {})[pid] = Member(profile_id=pid, entered_at=change.at)
        for segment_id in change.exited:
            self.memberships.get((ws, segment_id), {}).pop(pid, None)
        self.member_writes += len(change.entered) + len(change.exited)

    def apply_memberships(self, changes: Sequence[MembershipChange]) -> list[MembershipChange]:
        lost = []
        for change in changes:
            try:
                self.apply_membership(change)
            except ConcurrentUpdate:
                lost.append(change)
        return lost

    def forget_profile(self, workspace_id: str, profile_id: str, segment_ids: Iterable[str], at: datetime) -> None:
        for segment_id in segment_ids:
            self.memberships.get((workspace_id, segment_id), {}).pop(profile_id, None)

    def settings(self, workspace_id: str) -> BuiltinSettings:
        return self.stored_settings.get(workspace_id, BuiltinSettings())

    def put_settings(self, workspace_id: str, settings: BuiltinSettings) -> None:
        self.stored_settings[workspace_id] = settings


class FakeSegmentRuns:
    """Runs, sketches and population statistics in dicts, counting each share once, as the adapter does."""

    def __init__(self, items: int = 0) -> None:
        self.items = items
        self.runs: dict[tuple[str, str], SegmentRun] = {}
        self.active: dict[str, str] = {}
        self.sketch_store: dict[tuple[str, str, int, str | None], str] = {}
        self.kept: dict[tuple[str, str, int, str | None], list[tuple[Profile, HeldSegments]]] = {}
        self.recorded: dict[tuple[str, str], dict[tuple[int, int], RunPart]] = {}
        self.recorded_evaluated: dict[tuple[str, str], dict[tuple[int, int], EvaluatedPart]] = {}
        self.done: dict[tuple[str, str, str], set[int]] = {}
        self.populations: dict[str, str] = {}
        self.population_runs: dict[str, str] = {}
        self.sized: dict[tuple[str, str], set[int]] = {}  # shares whose sizes were added
        self.hours_done: dict[str, datetime] = {}

    def indexed_profiles(self) -> int:
        return self.items

    def start(self, run: SegmentRun, stale_before: datetime) -> SegmentRun:
        current = self.runs.get((run.workspace_id, self.active.get(run.workspace_id, "")))
        if current is not None and current.started_at >= stale_before:
            return current
        self.runs[(run.workspace_id, run.run_id)] = run
        self.active[run.workspace_id] = run.run_id
        return run

    def get(self, workspace_id: str, run_id: str) -> SegmentRun | None:
        run = self.runs.get((workspace_id, run_id))
        if run is None:
            return None
        phase = {RunPhase.SKETCH: "sketched", RunPhase.EVALUATE: "evaluated"}.get(run.phase, "")
        return run.model_copy(update={"counted": frozenset(self.done.get((workspace_id, run_id, phase), ()))})

    def put_sketch(self, workspace_id: str, run_id: str, share: int, sketch: str, token: str | None = None) -> None:
        self.sketch_store[(workspace_id, run_id, share, token)] = sketch

    def sketches(self, workspace_id: str, run_id: str, shares: int) -> list[str]:
        return [self.sketch_store[(workspace_id, run_id, share, None)] for share in range(shares)]

    def part_sketches(self, workspace_id: str, run_id: str, share: int, tokens: Sequence[str]) -> list[str]:
        return [self.sketch_store[(workspace_id, run_id, share, token)] for token in tokens]

    def record_part(self, workspace_id: str, run_id: str, part: RunPart) -> RunPart:
        return self.recorded.setdefault((workspace_id, run_id), {}).setdefault((part.share, part.part), part)

    def parts(self, workspace_id: str, run_id: str, share: int) -> list[RunPart]:
        recorded = self.recorded.get((workspace_id, run_id), {})
        return [recorded[key] for key in sorted(recorded) if key[0] == share]

    def record_evaluated_part(self, workspace_id: str, run_id: str, part: EvaluatedPart) -> EvaluatedPart:
        return self.recorded_evaluated.setdefault((workspace_id, run_id), {}).setdefault((part.share, part.part),
                                                                                         part)

    def evaluated_parts(self, workspace_id: str, run_id: str, share: int) -> list[EvaluatedPart]:
        recorded = self.recorded_evaluated.get((workspace_id, run_id), {})
        return [recorded[key] for key in sorted(recorded) if key[0] == share]

    def keep_profiles(self, workspace_id: str, run_id: str, share: int,
                      profiles: Iterable[tuple[Profile, HeldSegments]], token: str | None = None) -> None:
        self.kept[(workspace_id, run_id, share, token)] = list(profiles)

    def kept_profiles(self, workspace_id: str, run_id: str,
                      share: int) -> Iterator[tuple[Profile, HeldSegments]] | None:
        tokens: list[str | None] = [part.token for part in self.parts(workspace_id, run_id, share)]
        if not tokens and (workspace_id, run_id, share, None) in self.kept:
            tokens = [None]
        if not tokens or any((workspace_id, run_id, share, token) not in self.kept for token in tokens):
            return None
        return (pair for token in tokens for pair in self.kept[(workspace_id, run_id, share, token)])

    def _count(self, workspace_id: str, run_id: str, phase: str, share: int, **figures: int) -> SegmentRun:
        run = self.runs[(workspace_id, run_id)]
        done = self.done.setdefault((workspace_id, run_id, phase), set())
        if share not in done:
            done.add(share)
            run = run.model_copy(update={name: getattr(run, name) + value for name, value in figures.items()})
        run = run.model_copy(update={phase: len(done)})
        self.runs[(workspace_id, run_id)] = run
        return run

    def sketched(self, workspace_id: str, run_id: str, share: int) -> SegmentRun:
        return self._count(workspace_id, run_id, "sketched", share)

    def evaluated(self, workspace_id: str, run_id: str, share: int, profiles: int, entered: int,
                  exited: int, sizes: Mapping[str, int]) -> SegmentRun:
        run = self._count(workspace_id, run_id, "evaluated", share, profiles=profiles, entered=entered,
                          exited=exited)
        if share not in self.sized.setdefault((workspace_id, run_id), set()):
            self.sized[(workspace_id, run_id)].add(share)
            total = {sid: run.sizes.get(sid, 0) + sizes.get(sid, 0) for sid in run.sizes.keys() | sizes.keys()}
            run = run.model_copy(update={"sizes": total})
            self.runs[(workspace_id, run_id)] = run
        return run

    def hourly_done(self, workspace_id: str) -> datetime | None:
        return self.hours_done.get(workspace_id)

    def hourly_finished(self, workspace_id: str, hour: datetime) -> None:
        if workspace_id not in self.hours_done or self.hours_done[workspace_id] < hour:
            self.hours_done[workspace_id] = hour

    def advance(self, workspace_id: str, run_id: str, population: str) -> bool:
        run = self.runs[(workspace_id, run_id)]
        if run.phase is not RunPhase.SKETCH:
            return False
        self.runs[(workspace_id, run_id)] = run.model_copy(update={"phase": RunPhase.EVALUATE,
                                                                   "population": population})
        self.populations[workspace_id] = population
        self.population_runs[workspace_id] = run_id
        return True

    def finish(self, workspace_id: str, run_id: str, at: datetime) -> bool:
        run = self.runs[(workspace_id, run_id)]
        if run.phase is not RunPhase.EVALUATE:
            return False
        self.runs[(workspace_id, run_id)] = run.model_copy(update={"phase": RunPhase.DONE, "finished_at": at})
        if self.active.get(workspace_id) == run_id:
            del self.active[workspace_id]
        return True

    def request_rerun(self, workspace_id: str, run_id: str) -> None:
        run = self.runs[(workspace_id, run_id)]
        if run.phase is not RunPhase.DONE:
            self.runs[(workspace_id, run_id)] = run.model_copy(update={"rerun": True})

    def link_next(self, workspace_id: str, run_id: str, next_run_id: str) -> None:
        self.runs[(workspace_id, run_id)] = self.runs[(workspace_id, run_id)].model_copy(
            update={"next_run_id": next_run_id})

    def population(self, workspace_id: str) -> str | None:
        return self.populations.get(workspace_id)

    def population_run_id(self, workspace_id: str) -> str | None:
        return self.population_runs.get(workspace_id)


class FakeTaskQueue:
    def __init__(self) -> None:
        self.tasks: list[RunTask | HourlyTask] = []
        self.delays: list[int] = []  # each send's delay, in order

    def send(self, tasks: Sequence[RunTask | HourlyTask], delay_seconds: int = 0) -> None:
        self.tasks.extend(tasks)
        self.delays.append(delay_seconds)

    def drain(self, store: FakeSegmentStore, runs: FakeSegmentRuns, clock: Callable[[], datetime]) -> int:
        """Carry out every queued task (and those they queue), as the task function's workers would."""
        done = 0
        while self.tasks:
            task = self.tasks.pop(0)
            if isinstance(task, HourlyTask):
                run_hour(task, store, runs, clock, self)
            else:
                carry_out(task, store, runs, self, clock)
            done += 1
        return done


class FakeCurrencyStore:
    """Settings in the dict a FakeProfileRepository reads them from (``FakeCurrencyStore(repo.currency)``)."""

    def __init__(self, held: dict[str, CurrencySettings] | None = None) -> None:
        self.held = {} if held is None else held
        self.jobs: dict[tuple[str, str], CurrencyJob] = {}

    def settings(self, workspace_id: str) -> CurrencySettings | None:
        return self.held.get(workspace_id)

    def put_settings(self, settings: CurrencySettings, held_version: int | None) -> None:
        held = self.held.get(settings.workspace_id)
        if (held.version if held else None) != held_version:
            raise ConcurrentUpdate(f"the currency settings of {settings.workspace_id} changed meanwhile")
        self.held[settings.workspace_id] = settings

    def start_job(self, job: CurrencyJob) -> None:
        self.jobs[(job.workspace_id, job.job_id)] = job

    def job(self, workspace_id: str, job_id: str) -> CurrencyJob | None:
        return self.jobs.get((workspace_id, job_id))

    def share_done(self, workspace_id: str, job_id: str, share: int, profiles: int, rederived: int,
                   at: datetime) -> CurrencyJob:
        job = self.jobs[(workspace_id, job_id)]
        if share not in job.shares_done:
            job = job.model_copy(update={"shares_done": tuple(sorted((*job.shares_done, share))),
                                         "profiles": job.profiles + profiles,
                                         "rederived": job.rederived + rederived, "finished_at": at})
            self.jobs[(workspace_id, job_id)] = job
        return job


class FakeCurrencyTasks:
    def __init__(self) -> None:
        self.tasks: list[CurrencyTask] = []

    def send(self, tasks: Sequence[CurrencyTask]) -> None:
        self.tasks.extend(tasks)


@dataclass
class ArchivedObject:
    body: bytes
    metadata: dict[str, str]


class FakeRawArchive:
    """A Firehose stream (framed deliveries, in order) and a bucket (bodies by key, ASCII user metadata)."""

    def __init__(self) -> None:
        self.objects: dict[str, ArchivedObject] = {}
        self.frames: list[bytes] = []

    def append(self, framed_deliveries: Sequence[bytes]) -> None:
        for framed in framed_deliveries:
            list(unframe(framed))  # refuse what a replay could not read back
            self.frames.append(bytes(framed))

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


class FakeExportJobStore:
    """Export jobs in a dict, with the adapter's conditions."""

    def __init__(self) -> None:
        self.jobs: dict[tuple[str, str], ExportJob] = {}

    def get(self, workspace_id: str, export_id: str) -> ExportJob | None:
        return self.jobs.get((workspace_id, export_id))

    def save(self, job: ExportJob, expected_attempts: int | None) -> None:
        held = self.jobs.get((job.workspace_id, job.export_id))
        if (held.attempts if held else None) != expected_attempts:
            raise ConcurrentUpdate(f"export {job.export_id} changed since it was read")
        self.jobs[(job.workspace_id, job.export_id)] = job

    def claim(self, workspace_id: str, export_id: str, now: datetime) -> ExportJob | None:
        held = self.jobs.get((workspace_id, export_id))
        if held is None or held.status not in (ExportStatus.QUEUED, ExportStatus.RUNNING):
            return None
        claimed = held.model_copy(update={"status": ExportStatus.RUNNING, "attempts": held.attempts + 1,
                                          "started_at": now, "updated_at": now})
        self.jobs[(workspace_id, export_id)] = claimed
        return claimed


class FakeExportQueue:
    def __init__(self) -> None:
        self.messages: list[ExportMessage] = []

    def enqueue(self, message: ExportMessage) -> None:
        self.messages.append(message)


@dataclass
class ExportFile:
    body: bytes
    content_type: str
    filename: str


class FakeExportFiles:
    """A bucket of whole objects. ``fail_after_chunks`` makes the next write raise after that many chunks,
    leaving nothing behind (as an aborted multipart upload does)."""

    def __init__(self) -> None:
        self.objects: dict[str, ExportFile] = {}
        self.writes = 0
        self.fail_after_chunks: int | None = None

    def write(self, key: str, chunks: Iterable[bytes], content_type: str, filename: str) -> int:
        self.writes += 1
        fail_after, self.fail_after_chunks = self.fail_after_chunks, None
        body = bytearray()
        for count, chunk in enumerate(chunks):
            if fail_after is not None and count >= fail_after:
                raise ConnectionError("S3 went away")
            body += chunk
        self.objects[key] = ExportFile(bytes(body), content_type, filename)
        return len(body)

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    def download_url(self, key: str, valid_for: timedelta) -> str:
        return f"https://exports.example/{key}?expires-in={int(valid_for.total_seconds())}"


# Static conformance: mypy checks these assignments against the Protocols.
_store_directory: type[StoreDirectory] = FakeStoreDirectory
_profile_repository: type[ProfileRepository] = FakeProfileRepository
_segment_store: type[SegmentStore] = FakeSegmentStore
_segment_runs: type[SegmentRuns] = FakeSegmentRuns
_task_queue: type[TaskQueue] = FakeTaskQueue
_raw_archive: type[RawArchive] = FakeRawArchive
_ingest_queue: type[IngestQueue] = FakeIngestQueue
_event_publisher: type[EventPublisher] = FakeEventPublisher
_export_jobs: type[ExportJobStore] = FakeExportJobStore
_export_queue: type[ExportQueue] = FakeExportQueue
_export_files: type[ExportFiles] = FakeExportFiles


class FakeArchiveStore:
    """The archive bucket for privacy requests: objects by key, each with a version that every write changes."""

    def __init__(self, objects: Mapping[str, bytes] = ()) -> None:  # type: ignore[assignment]
        self.objects: dict[str, bytes] = dict(objects)
        self.versions: dict[str, int] = dict.fromkeys(self.objects, 0)
        self.writes = 0

    def keys(self, prefixes: Iterable[str], start_after: str | None = None) -> Iterator[str]:
        for prefix in prefixes:
            yield from (key for key in sorted(self.objects)
                        if key.startswith(prefix) and (start_after is None or key > start_after))

    def get(self, key: str) -> bytes:
        return self.objects[key]

    def read(self, key: str) -> tuple[bytes, str]:
        return self.objects[key], str(self.versions[key])

    def put(self, key: str, data: bytes) -> None:
        self.objects[key] = data
        self.versions[key] = self.versions.get(key, 0) + 1
        self.writes += 1

    def replace(self, key: str, data: bytes, version: str) -> None:
        if str(self.versions.get(key)) != version:
            raise ConcurrentUpdate(f"{key} changed")
        self.put(key, data)

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)
        self.versions.pop(key, None)
        self.writes += 1


class FakePrivacyJobs:
    """The job side of a PrivacyStore: what the archive walk stores as it goes."""

    def __init__(self) -> None:
        self.jobs: dict[tuple[str, str], PrivacyJob] = {}
        self.saves = 0

    def job(self, workspace_id: str, request_id: str) -> PrivacyJob | None:
        return self.jobs.get((workspace_id, request_id))

    def save_job(self, job: PrivacyJob) -> None:
        self.jobs[(job.workspace_id, job.request_id)] = job
        self.saves += 1


# ---- flows (crm.flows.ports) ----


# The flow ports live in crm.flows.memory (a backtest runs the real service on them); the names tests know:
FakeRunStore = MemoryRunStore
FakeWaitScheduler = MemoryWaitScheduler
FakeFlowCatalogue = MemoryFlowCatalogue
FakeMessagingStore = MemoryMessagingStore
FakeSmsSender = RecordingSmsSender
FakeMessageComposer = UnrenderedComposer
FakeSuppressions = MemorySuppressions


class FakeEmailSender(RecordingEmailSender):
    """Keeps what it sent; ``crash_next`` raises after nothing was sent (a Lambda dying mid-step)."""

    def __init__(self) -> None:
        super().__init__()
        self.crash_next = False

    def send(self, email: OutgoingEmail) -> str:
        if self.crash_next:
            self.crash_next = False
            raise TimeoutError("the function timed out while SES answered")
        return super().send(email)
