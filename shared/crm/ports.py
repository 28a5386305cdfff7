"""The ports the domain services use; DynamoDB/S3/SQS/EventBridge adapters and in-memory fakes implement them."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from crm.models.affinity import ProductAffinity
from crm.models.canonical import ComplianceRequest
from crm.models.currency import CurrencyJob, CurrencySettings, CurrencyTask
from crm.models.events import AnyDomainEvent
from crm.models.exports import ExportJob, ExportMessage
from crm.models.ingest import IngestEnvelope
from crm.models.predictions import Prediction, PredictionSettings, WorkspaceFit
from crm.models.privacy import PrivacyJob
from crm.models.profile import CustomerState, OrderRecord, Profile, TimelineEntry
from crm.models.segment_runs import EvaluatedPart, HourlyTask, RunPart, RunTask, SegmentRun
from crm.models.segments import (
    BuiltinSettings,
    GrowthPoint,
    HeldSegments,
    Member,
    MembershipChange,
    SegmentRecord,
)
from crm.models.stores import ApiKey, Platform, Store, StoreSecrets


class UnknownWorkspace(ValueError):
    """A store was to join a workspace that does not exist."""


class ConcurrentUpdate(Exception):
    """Someone else wrote the same profile or order since we read it: read again and retry."""


class ChangeRefused(Exception):
    """The table refuses this change however often it is sent (an item over DynamoDB's 400 KB, say): the
    delivery is parked with the reason, to be replayed once the code can store it."""



@dataclass(frozen=True)
class Reads:
    """What applying one event needs to read, in one round trip (plus one to follow profile ids)."""

    workspace_id: str
    identities: tuple[str, ...] = ()
    order: tuple[str, str] | None = None  # (store_id, order_id)
    customer: tuple[str, str] | None = None  # (store_id, customer_id)
    event: tuple[str, str] | None = None  # (store_id, event_id): was it applied before?
    version: str | None = None  # the order's or account's version: held already, nothing more is read
    folded: tuple[tuple[str, str], ...] = ()  # (store_id, event_id) of further activities of the same shopper
    # The sort key of each of those activities' timeline line, by (store_id, event_id): the line is the
    # activity's marker (found on the shopper's profile or one merged into it, the activity is applied). What is
    # found at a key may be a group of a fold's lines keyed like its earliest: each activity it holds is applied.
    lines: dict[tuple[str, str], str] = field(default_factory=dict)
    # False: the identities, the profiles and the currency settings are read eventually consistent (half the read
    # units; crm.ingestion reads that way first and consistently again after a refused write). The order and
    # account records and the activities' lines, which decide what no guard checks, are read consistently always.
    consistent: bool = True


@dataclass(frozen=True)
class Context:
    """What the table holds for one event. ``owners`` maps each known identity to its live profile
    (merged profiles already followed to their survivor)."""

    owners: dict[str, Profile]
    # identity -> the profile id its link item holds (maybe a merged one). An identity without one leads to the
    # profile named after it (crm.profiles.profile_id_for), if that exists: ``owners`` says so.
    pointers: dict[str, str]
    redacted: frozenset[str]  # identities erased by a privacy request: never stored again
    order: OrderRecord | None
    order_owner: Profile | None
    customer: CustomerState | None
    event_seen: bool
    # The event is held already (the same order or account version): a duplicate,
    # so profiles were not read.
    already_held: bool = False
    currency: CurrencySettings | None = None  # the workspace's reporting currency and rates (None: unset)
    seen: frozenset[tuple[str, str]] = frozenset()  # which of ``Reads.folded`` have their lines
    # Profiles read on the way to a live one (its id the key) that are marked as merging into it (Profile.merging):
    # a merge written guard last that the reader finishes (crm.changes._target).
    merging: dict[str, tuple[Profile, ...]] = field(default_factory=dict)
    # Identities without a link item whose named profile (crm.profiles.named_profile_id) was not in the table.
    unnamed: frozenset[str] = frozenset()
    # The first identity, when its named profile is a tombstone (IdentityLink.named_tombstone, or a merge's): the
    # id a new profile for it takes instead of that name, held: its link's, or without one the tombstone's
    # ``merged_into`` (a link's write that ended between the tombstone and its profile; its retry plans the same).
    named_into: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class IdentityLink:
    identity: str
    profile_id: str
    previous_profile_id: str | None  # None: the identity must be new
    # The identity has no link item and the profile named after it was read as absent (Context.unnamed), and this
    # link leads elsewhere: that named profile as a tombstone merged into ``profile_id``, which the repository
    # writes first under ``attribute_not_exists``. A first write of the named profile at the same moment (a new
    # browser's first view, which writes no link) and this link cannot both succeed: whichever comes second is
    # refused and planned again. Without it the view would land on a profile nothing leads to.
    named_tombstone: Profile | None = None


@dataclass(frozen=True)
class ProfilePage:
    """One page of a share's profiles with their sets, and where the share goes on after it (None: it ends)."""

    profiles: list[tuple[Profile, HeldSegments]]
    resume: str | None


@dataclass(frozen=True)
class Change:
    """Everything one event writes, atomically (or, ``guard_last``, profile first and lines last); each write
    is guarded by what was read."""

    workspace_id: str
    profiles: tuple[tuple[Profile, int | None], ...] = ()  # (profile, revision read; None: must be new)
    # (record, the record as read; None: must be new). The record is guarded by what it says (its state: version,
    # refunds, removal), not its version alone: refunds and removals leave the version as it was.
    order: tuple[OrderRecord, OrderRecord | None] | None = None
    customer: tuple[CustomerState, str | None] | None = None
    identities: tuple[IdentityLink, ...] = ()
    timeline: tuple[TimelineEntry, ...] = ()
    # (store_id, event_id, profile_id) of the activity applied: its timeline line is its marker (Reads.lines)
    event: tuple[str, str, str] | None = None
    # The one profile written carries the event's digest (crm.profiles.with_unmarked): the repository may write
    # it alone under its guard, then the rest, the event's line last, without a transaction's 2x units.
    guard_last: bool = False
    folded: tuple[tuple[str, str, str], ...] = ()  # further activities applied with ``event``
    # A merge written guard last (crm.changes._merge_guard_last): each merged profile marked as merging into the
    # survivor, contents kept, under the revision read, written before everything else; then ``profiles`` in
    # order (the survivor, then the tombstones, each under the marked revision), the links, the lines.
    merging: tuple[tuple[Profile, int | None], ...] = ()


@dataclass(frozen=True)
class Holdings:
    """Everything held on one shopper: their live profiles and those merged into them, timelines, orders
    and platform accounts."""

    profiles: tuple[Profile, ...]
    timeline: tuple[TimelineEntry, ...]
    orders: tuple[OrderRecord, ...]
    customers: tuple[CustomerState, ...]


_RECORD_ENTRIES = frozenset({"order", "order_cancelled", "order_removed", "refund", "profile_merged",
                             "account_created", "account_deleted", "consent_changed", "consent_requested",
                             "order_attributed"})


@dataclass(frozen=True)
class Erasure:
    """What a redaction deletes, and the identities it leaves behind as "redacted" hashes."""

    workspace_id: str
    profile_ids: tuple[str, ...]  # whole partitions: profile and timeline
    orders: tuple[tuple[str, str], ...]  # (store_id, order_id)
    customers: tuple[tuple[str, str], ...]
    events: tuple[tuple[str, str], ...]  # (store_id, event_id)
    identities: tuple[str, ...]

    @classmethod
    def of(cls, workspace_id: str, holdings: Holdings, store_id: str, order_ids: Sequence[str],
           customer_id: str | None) -> Erasure:
        identities = {i for p in holdings.profiles for i in p.identities}
        identities.update(f"order#{store_id}#{order_id}" for order_id in order_ids)
        identities.update(f"order#{o.store_id}#{o.order_id}" for o in holdings.orders)
        for order in holdings.orders:
            if order.order is not None:
                identities.update(f"{kind}#{order.store_id}#{token}" for kind, token in (
                    ("cart", order.order.cart_token), ("checkout", order.order.checkout_token)) if token)
        if customer_id:
            identities.add(f"customer#{store_id}#{customer_id}")
        orders = {(o.store_id, o.order_id) for o in holdings.orders} | {(store_id, o) for o in order_ids}
        customers = {(c.store_id, c.customer_id) for c in holdings.customers}
        if customer_id:
            customers.add((store_id, customer_id))
        # Activity entries are referenced by their event id; their markers go too.
        events = {(entry.store_id or store_id, entry.ref) for entry in holdings.timeline
                  if entry.type not in _RECORD_ENTRIES}
        return cls(workspace_id, tuple(sorted({p.profile_id for p in holdings.profiles})), tuple(sorted(orders)),
                   tuple(sorted(customers)), tuple(sorted(events)), tuple(sorted(identities)))


class PrivacyRecord(BaseModel):
    """What is kept of a privacy request: no personal data, only what was done and when."""

    model_config = ConfigDict(frozen=True)

    workspace_id: str
    store_id: str
    request_id: str
    request: str
    carried_out_at: datetime
    counts: dict[str, int]
    export_key: str | None = None


class PrivacyStore(Protocol):
    def gather(self, workspace_id: str, profiles: Sequence[Profile], store_id: str,
               order_ids: Sequence[str]) -> Holdings:
        """The shopper's holdings, from their live profiles (and the profiles merged into them)."""
        ...

    def erase(self, erasure: Erasure) -> None: ...

    def erase_store(self, workspace_id: str, store_id: str) -> dict[str, int]:
        """Delete a store's orders, accounts and store-scoped identities, the profiles of that store alone,
        and the store itself; returns counts."""
        ...

    def record(self, record: PrivacyRecord) -> None: ...

    def job(self, workspace_id: str, request_id: str) -> PrivacyJob | None: ...

    def save_job(self, job: PrivacyJob) -> None: ...


class ArchiveStore(Protocol):
    """The archive bucket as privacy requests need it: list, read, rewrite, delete."""

    def keys(self, prefixes: Iterable[str], start_after: str | None = None) -> Iterator[str]:
        """The keys under ``prefixes``, each prefix in order, in key order, after ``start_after``."""
        ...

    def get(self, key: str) -> bytes: ...

    def read(self, key: str) -> tuple[bytes, str]:
        """The object and its version (ETag), for a ``replace`` that loses nothing written since."""
        ...

    def put(self, key: str, data: bytes) -> None: ...

    def replace(self, key: str, data: bytes, version: str) -> None:
        """Write ``data`` if the object is still at ``version``; ConcurrentUpdate if it changed."""
        ...

    def delete(self, key: str) -> None: ...


class PrivacyQueue(Protocol):
    """Privacy requests for the privacy function (and a paused one, to resume from its cursor)."""

    def enqueue(self, request: ComplianceRequest) -> None: ...


class StoreDirectory(Protocol):
    def store_by_domain(self, platform: Platform, domain: str) -> Store | None:
        """The store with its secrets (from the vault), for checking signatures and calling its API."""
        ...

    def store_by_write_key(self, write_key: str) -> Store | None:
        """The store without its secrets: the tracking path has no use for them."""
        ...

    def workspace_exists(self, workspace_id: str) -> bool: ...

    def workspaces(self) -> Iterator[str]:
        """Every workspace's id."""
        ...

    def register(self, store: Store, api_key: str, *, new_workspace: bool = True) -> None:
        """Store, its write key and a marketer key, atomically; with ``new_workspace`` the workspace is
        created too, otherwise it must exist (UnknownWorkspace). A platform + domain or
        write key already registered is refused (ValueError) and nothing is written."""
        ...

    def workspace_stores(self, workspace_id: str) -> list[Store]:
        """The workspace's stores, without their secrets, oldest first."""
        ...

    def api_key(self, api_key: str) -> ApiKey | None:
        """The record of a marketer key, revoked and expired ones included (found by the key's hash)."""
        ...

    def add_api_key(self, api_key: str, key: ApiKey) -> None:
        """Keep a new key (its hash and record) for an existing workspace (UnknownWorkspace if none)."""
        ...

    def api_keys(self, workspace_id: str) -> list[ApiKey]:
        """Every key of the workspace, revoked and expired ones included, oldest first."""
        ...

    def revoke_api_key(self, workspace_id: str, key_id: str, now: datetime) -> ApiKey | None:
        """Mark the key revoked (a second revocation keeps the first time); None if the workspace has no
        such key."""
        ...


class SecretVault(Protocol):
    """Each store's StoreSecrets, kept apart from the table (Secrets Manager), possibly cached briefly."""

    def store_secrets(self, store_id: str) -> StoreSecrets | None: ...

    def keep(self, store_id: str, secrets: StoreSecrets) -> None: ...

    def forget(self, store_id: str) -> None: ...


class ProfileRepository(Protocol):
    def load(self, reads: Reads) -> Context:
        """What the table holds for the reads. An identity's link item, when present, says which profile it leads
        to (redacted: none, ever); without one it leads to the profile named after it, if that exists."""
        ...

    def commit(self, change: Change) -> None:
        """Write everything atomically; ConcurrentUpdate if anything read has changed since."""
        ...

    def get_profile(self, workspace_id: str, profile_id: str) -> Profile | None:
        """The live profile: a merged id is followed to the profile it was merged into."""
        ...

    def get_profiles(self, workspace_id: str, profile_ids: Collection[str]) -> dict[str, Profile]:
        """As ``get_profile`` for many ids in one read (batched): each id found, to its live profile."""
        ...

    def timeline(self, workspace_id: str, profile_ids: Sequence[str], before: str | None,
                 limit: int) -> list[TimelineEntry]:
        """Timeline entries of these profiles, newest first, older than the sort key ``before``."""
        ...

    def timeline_of(self, workspace_id: str, profile_ids: Sequence[str], types: Collection[str], before: str | None,
                    limit: int) -> list[TimelineEntry]:
        """As ``timeline``, only the entries of these types (an order's, a consent's...)."""
        ...

    def order_records(self, workspace_id: str, refs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], OrderRecord]:
        """The stored orders among these (store id, order id), by that pair (read in batches)."""
        ...

    def profile_id_for_identity(self, workspace_id: str, identity: str) -> str | None:
        """The profile id the identity leads to, as ``load`` reads it (maybe a merged one; None: no one)."""
        ...

    def workspace_profiles(self, workspace_id: str, segment: int = 0, total_segments: int = 1) -> Iterator[Profile]:
        """Every live (not merged) profile of the workspace, a page at a time, in no particular order, read
        from the workspace's own index (no other workspace's item, no timeline, order or member item).

        ``segment`` of ``total_segments``: one share of the workspace, so a caller can fan out (as segment
        runs do); the shares of 0..total_segments-1 together hold each profile exactly once, each an even
        random part of the workspace.
        """
        ...

    def profiles_by_id(self, workspace_id: str, profile_ids: Sequence[str]) -> dict[str, Profile]:
        """The live profiles among these ids, by id (read in batches); merged or missing ones are left out."""
        ...


class SegmentStore(Protocol):
    """Segment definitions, their computed state and their membership, per workspace."""

    def get(self, workspace_id: str, segment_id: str) -> SegmentRecord | None: ...

    def list_segments(self, workspace_id: str) -> list[SegmentRecord]:
        """Every stored segment of the workspace, by id."""
        ...

    def custom_segments(self, workspace_id: str) -> list[SegmentRecord]:
        """The workspace's own segments (those with a definition), by id, their sizes left unread (0)."""
        ...

    def put(self, record: SegmentRecord, expected_version: int | None) -> None:
        """Write the definition; ``expected_version`` None: it must be new. ConcurrentUpdate otherwise."""
        ...

    def delete(self, workspace_id: str, segment_id: str) -> None:
        """The definition, its catalogue entry and its membership; deleting nothing is no error."""
        ...

    def record_computation(self, workspace_id: str, segment_id: str, at: datetime,
                           growth: Sequence[GrowthPoint], expected_version: int | None, *, size: int) -> None:
        """Store when a computation ran, the members it counted and the growth it saw.
        For a stored segment the version must still be ``expected_version`` (ConcurrentUpdate);
        ``expected_version`` None creates the record of a built-in segment when it has none."""
        ...

    def members(self, workspace_id: str, segment_id: str, after: str | None, limit: int) -> list[Member]:
        """Up to ``limit`` members by profile id, those after the profile id ``after``."""
        ...

    def settings(self, workspace_id: str) -> BuiltinSettings:
        """The workspace's settings for its built-in segments; the defaults when it stored none."""
        ...

    def put_settings(self, workspace_id: str, settings: BuiltinSettings) -> None:
        """Replace the workspace's built-in segment settings whole (memberships change at the next computation)."""
        ...

    def profile_with_segments(self, workspace_id: str, profile_id: str) -> tuple[Profile, HeldSegments] | None:
        """The profile and the segments it is in, read together as they are now; None once erased."""
        ...

    def profiles_with_segments(self, workspace_id: str, share: int = 0,
                               shares: int = 1) -> Iterator[tuple[Profile, HeldSegments]]:
        """Every profile of one share of the workspace (merged ones too) with the segments it is in, read
        as workspace_profiles reads; the shares 0..shares-1 together hold each profile once, and each share
        is an even, random part of the workspace (so the first shares of a bounded read are a fair sample)."""
        ...

    def profile_pages(self, workspace_id: str, share: int = 0, shares: int = 1,
                      after: str | None = None) -> Iterator[ProfilePage]:
        """profiles_with_segments a page at a time, from ``after`` (a page's ``resume``; None: the share's start):
        a reader may stop at any page and hand the rest of the share on to another."""
        ...

    def held_segments(self, workspace_id: str, profile_id: str) -> HeldSegments | None:
        """The profile's set of segments as it is now; None when none was ever written (or it was erased)."""
        ...

    def profiles_by_id(self, workspace_id: str, profile_ids: Iterable[str]) -> Iterator[tuple[Profile, HeldSegments]]:
        """These profiles (those that exist, merged ones too) with the segments they are in."""
        ...

    def file_due(self, workspace_id: str, due: Iterable[tuple[str, datetime]]) -> None:
        """File each (profile id, instant) under the hour of the instant: the hourly run reads it then."""
        ...

    def due_profiles(self, workspace_id: str, hour: datetime) -> list[str]:
        """The profiles filed under the hour ``hour`` (its first instant)."""
        ...


    def apply_membership(self, change: MembershipChange) -> None:
        """Write the profile's new set and add and remove its member items, all or nothing;
        ConcurrentUpdate when the set is no longer at ``change.expected_version``."""
        ...

    def apply_memberships(self, changes: Sequence[MembershipChange]) -> list[MembershipChange]:
        """Several profiles' changes, each as ``apply_membership`` writes it; those that did not land."""
        ...

    def forget_profile(self, workspace_id: str, profile_id: str, segment_ids: Iterable[str], at: datetime) -> None:
        """Remove an erased profile from these segments (its member items); idempotent."""
        ...


class SegmentRuns(Protocol):
    """Recomputation runs: their progress, each share's population sketch, and the workspace's statistics."""

    def indexed_profiles(self) -> int:
        """About how many profiles the workspace index holds, every workspace's (to size the fan-out)."""
        ...

    def start(self, run: SegmentRun, stale_before: datetime) -> SegmentRun:
        """Record ``run`` as the workspace's active run and return it; if another run is active (started
        after ``stale_before``), return that one instead."""
        ...

    def get(self, workspace_id: str, run_id: str) -> SegmentRun | None: ...

    def put_sketch(self, workspace_id: str, run_id: str, share: int, sketch: str, token: str | None = None) -> None:
        """Keep one share's sketch (the JSON of crm.segments.builtin.PopulationSketch), or, given a ``token``,
        one part's."""
        ...

    def part_sketches(self, workspace_id: str, run_id: str, share: int, tokens: Sequence[str]) -> list[str]:
        """The sketches of these parts of the share (``put_sketch`` with their tokens)."""
        ...

    def record_part(self, workspace_id: str, run_id: str, part: RunPart) -> RunPart:
        """Record a part of a chained share's sketch unless one is recorded already; the one recorded."""
        ...

    def parts(self, workspace_id: str, run_id: str, share: int) -> list[RunPart]:
        """The share's recorded parts, in order (as recorded: a part recorded a moment ago is among them)."""
        ...

    def record_evaluated_part(self, workspace_id: str, run_id: str, part: EvaluatedPart) -> EvaluatedPart:
        """Record a part of a chained share's evaluation unless one is recorded already; the one recorded."""
        ...

    def evaluated_parts(self, workspace_id: str, run_id: str, share: int) -> list[EvaluatedPart]:
        """The share's recorded evaluation parts, in order (a part recorded a moment ago is among them)."""
        ...

    def sketches(self, workspace_id: str, run_id: str, shares: int) -> list[str]: ...

    def keep_profiles(self, workspace_id: str, run_id: str, share: int,
                      profiles: Iterable[tuple[Profile, HeldSegments]], token: str | None = None) -> None:
        """Keep one share's profiles with their sets, as the sketch read them, for the share's evaluation:
        a run reads each profile from the table once. Keeping them again replaces them whole. Given a ``token``,
        they are one part of the share (``record_part``)."""
        ...

    def kept_profiles(self, workspace_id: str, run_id: str,
                      share: int) -> Iterator[tuple[Profile, HeldSegments]] | None:
        """The share's profiles as ``keep_profiles`` kept them, in order (its recorded parts one after another,
        when it has any); None when none were kept."""
        ...

    def sketched(self, workspace_id: str, run_id: str, share: int) -> SegmentRun:
        """Count the share as sketched (once, however often it is told) and return the run."""
        ...

    def advance(self, workspace_id: str, run_id: str, population: str) -> bool:
        """Move the run from sketching to evaluating with these statistics (the JSON of
        crm.segments.builtin.PopulationStats), also kept as the workspace's current ones; False when another
        worker already did."""
        ...

    def evaluated(self, workspace_id: str, run_id: str, share: int, profiles: int, entered: int,
                  exited: int, sizes: Mapping[str, int]) -> SegmentRun:
        """Count the share as evaluated with its figures and its members of each segment (once) and return
        the run."""
        ...

    def hourly_done(self, workspace_id: str) -> datetime | None:
        """The last hour an hourly run of the workspace read (None before the first)."""
        ...

    def hourly_finished(self, workspace_id: str, hour: datetime) -> None:
        """Record that the hours up to ``hour`` are read (an earlier hour never replaces a later one)."""
        ...

    def finish(self, workspace_id: str, run_id: str, at: datetime) -> bool:
        """Mark the run done and let the workspace start another; False when already done."""
        ...

    def request_rerun(self, workspace_id: str, run_id: str) -> None:
        """Ask for another run once this one is done (nothing if it is done already)."""
        ...

    def link_next(self, workspace_id: str, run_id: str, next_run_id: str) -> None:
        """Record the run that followed this one."""
        ...

    def population(self, workspace_id: str) -> str | None:
        """The statistics of the workspace's last run as advance() was given them (None before any)."""
        ...

    def population_run_id(self, workspace_id: str) -> str | None:
        """The run whose statistics population() gives: the last run whose every share was read and kept
        (advance() succeeded), so its work files are whole; None before any."""
        ...


class CurrencyStore(Protocol):
    """A workspace's reporting currency and rates, and the jobs that re-derive its profiles' figures."""

    def settings(self, workspace_id: str) -> CurrencySettings | None: ...

    def put_settings(self, settings: CurrencySettings, held_version: int | None) -> None:
        """Write ``settings`` if the held ones are at ``held_version`` (None: none held); ConcurrentUpdate if not."""
        ...

    def start_job(self, job: CurrencyJob) -> None: ...

    def job(self, workspace_id: str, job_id: str) -> CurrencyJob | None: ...

    def share_done(self, workspace_id: str, job_id: str, share: int, profiles: int, rederived: int,
                   at: datetime) -> CurrencyJob:
        """Count one share's figures, once however often its task is delivered; the job as it is now."""
        ...


class PredictionStore(Protocol):
    """A workspace's prediction settings and last fit, and each profile's prediction (crm.predictions)."""

    def settings(self, workspace_id: str) -> PredictionSettings | None: ...

    def put_settings(self, workspace_id: str, settings: PredictionSettings) -> None: ...

    def fit(self, workspace_id: str) -> WorkspaceFit | None: ...

    def put_fit(self, fit: WorkspaceFit) -> None: ...

    def write_prediction(self, profile: Profile, prediction: Prediction) -> None:
        """Set the profile's prediction (and the next revision) if it is still at ``profile.revision``;
        ConcurrentUpdate if it moved on (read it again)."""
        ...


class AffinityStore(Protocol):
    """The products a workspace's shoppers buy together (crm.affinity), one record per product title."""

    def products(self, workspace_id: str) -> dict[str, ProductAffinity]: ...

    def product(self, workspace_id: str, title: str) -> ProductAffinity | None: ...

    def product_by_id(self, workspace_id: str, product_id: str) -> ProductAffinity | None: ...

    def related_to(self, workspace_id: str, titles: Iterable[str]) -> list[ProductAffinity]:
        """The records of those of ``titles`` that have one."""
        ...

    def replace(self, workspace_id: str, put: Sequence[ProductAffinity], deleted: Iterable[str]) -> None: ...


class CurrencyTasks(Protocol):
    def send(self, tasks: Sequence[CurrencyTask]) -> None: ...


class TaskQueue(Protocol):
    def send(self, tasks: Sequence[RunTask | HourlyTask], delay_seconds: int = 0) -> None:
        """Queue the tasks, each delivered no sooner than ``delay_seconds`` from now (at most 900)."""
        ...


class RawArchive(Protocol):
    def append(self, framed_deliveries: Sequence[bytes]) -> None:
        """Archive framed deliveries (crm.archive.frame) in batched objects, in one request; raises unless
        every one was accepted."""
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


class ExportJobStore(Protocol):
    """Asynchronous segment export jobs, per workspace."""

    def get(self, workspace_id: str, export_id: str) -> ExportJob | None: ...

    def save(self, job: ExportJob, expected_attempts: int | None) -> None:
        """Write the job; ``expected_attempts`` None: it must be new, else its ``attempts`` must still be that
        (no other worker claimed it since). ConcurrentUpdate otherwise."""
        ...

    def claim(self, workspace_id: str, export_id: str, now: datetime) -> ExportJob | None:
        """A queued or running job becomes running with one more attempt, atomically, and is answered; a job
        done, failed or unknown answers None (there is nothing to do)."""
        ...


class ExportQueue(Protocol):
    def enqueue(self, message: ExportMessage) -> None: ...


class ExportFiles(Protocol):
    """Where export files are written, and fetched from with a time-limited URL."""

    def write(self, key: str, chunks: Iterable[bytes], content_type: str, filename: str) -> int:
        """Stream ``chunks`` into one object and answer its size in bytes. Memory holds one part at a time;
        on an error nothing is left behind and the error is raised."""
        ...

    def delete(self, key: str) -> None: ...

    def download_url(self, key: str, valid_for: timedelta) -> str:
        """A URL that fetches the object with a plain HTTP GET until ``valid_for`` has passed."""
        ...
