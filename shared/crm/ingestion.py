"""Applying a queued delivery: map it to canonical events and apply each to its profile, idempotently."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from pydantic import ValidationError

from crm.changes import ProfileHistory, ReadHistory, activity_reads, fold, history_of, plan, reads_for
from crm.connectors.base import PayloadNotUnderstood
from crm.identity import identities_of
from crm.interpret import canonical_events
from crm.models.canonical import ActivityEvent, CanonicalEvent, ComplianceRequest
from crm.models.ingest import IngestEnvelope
from crm.models.profile import Profile, TimelineEntry
from crm.ports import (
    ChangeRefused,
    ConcurrentUpdate,
    Context,
    IngestQueue,
    ProfileRepository,
    RawArchive,
    Reads,
    StoreDirectory,
)
from crm.profiles import UNMARKED_KEPT
from crm.unwritten_orders import OrderWriteUnfinished, unfinished

MAX_CONFLICT_RETRIES = 8
# A profile's timeline is read in pages of this many entries when its order dates or kept times must be
# recomputed (crm.changes.ReadHistory: the rare path).
_TIMELINE_PAGE = 500
# A shopper's activities written in one write at most: their digests all stay on the profile until their
# lines are written (crm.profiles.UNMARKED_KEPT, docs/profile-writes.md).
FOLD_LIMIT = UNMARKED_KEPT


class TooManyConflicts(Exception):
    """The same profile kept changing under us; the message is retried by the queue."""


@dataclass(frozen=True)
class Outcome:
    applied: int = 0
    unchanged: int = 0
    dead_lettered: str | None = None
    compliance: tuple[ComplianceRequest, ...] = ()


def _history(repository: ProfileRepository) -> ReadHistory:
    def read(profile: Profile, exclude_ref: str) -> ProfileHistory:
        # The records of the other orders the profile counts in flight, in one read of the records alone.
        records = repository.order_records(profile.workspace_id, [
            (store_id, order_id) for ref in profile.unwritten_orders if ref != exclude_ref
            for store_id, _, order_id in [ref.partition(":")]])
        unfinished(profile, exclude_ref, lambda store_id, order_id: records.get((store_id, order_id)))
        ids = [profile.profile_id, *profile.merged_from]
        entries: list[TimelineEntry] = []
        before: str | None = None
        while True:
            page = repository.timeline(profile.workspace_id, ids, before, _TIMELINE_PAGE)
            entries += page
            if len(page) < _TIMELINE_PAGE:
                return history_of(entries, exclude_ref)
            before = page[-1].sort_key
    return read


class _ReadAgain(Exception):
    """An eventually consistent read that may be stale where no guard would refuse a plan made on it: read
    again, consistently."""


# What makes an event be read again, consistently: a refused write, a plan on what may be stale, and an order
# write left unfinished (a profile read stale may show a change of the order since finished).
_READ_AGAIN = (ConcurrentUpdate, _ReadAgain, OrderWriteUnfinished)


def _unless_read_consistently(error: Exception, consistent: bool) -> None:
    """An unfinished order write met on a consistent read is the queue's to retry later: raised."""
    if consistent and isinstance(error, OrderWriteUnfinished):
        raise error


def _read(repository: ProfileRepository, reads: Reads, consistent: bool) -> Context:
    """What the table holds for ``reads``; not ``consistent``, the identities, profiles and currency settings
    eventually consistent (half the read units: every write planned on them is guarded, and a refused one is
    read again consistently, docs/profile-writes.md)."""
    context = repository.load(replace(reads, consistent=consistent))
    if not consistent and _settings_behind(context):
        raise _ReadAgain
    return context


def _settings_behind(context: Context) -> bool:
    """A profile read states its figures at newer currency settings than those read: the settings' read is
    stale, and figures derived at them would replace newer ones with no guard to refuse it."""
    held = context.currency.version if context.currency else 0
    read = [*context.owners.values(), *(p for found in context.merging.values() for p in found)]
    if context.order_owner is not None:
        read.append(context.order_owner)
    return any(profile.currency_settings_version > held for profile in read)


def apply_event(repository: ProfileRepository, event: CanonicalEvent, now: datetime,
                consistent: bool = False) -> bool:
    """Apply one event to its profile; False when it changed nothing (duplicate, stale or erased).
    ``consistent``: read consistently from the first (the event follows a write of the same delivery, which an
    eventually consistent read would likely miss)."""
    reads = reads_for(event)
    read_history = _history(repository)
    for _ in range(MAX_CONFLICT_RETRIES):
        try:
            context = _read(repository, reads, consistent)
            change = plan(event, context, now, read_history)
            if change is None and not (consistent or context.already_held or context.event_seen):
                raise _ReadAgain  # nothing to do, decided on what may be stale: confirmed consistently
            if change is None:
                return False
            repository.commit(change)
        except _READ_AGAIN as error:
            _unless_read_consistently(error, consistent)
            consistent = True
            continue
        return True
    raise TooManyConflicts(f"{type(event).__name__} of store {event.store_id}")


def apply_activities(repository: ProfileRepository, events: Sequence[ActivityEvent], now: datetime,
                     consistent: bool = False) -> int:
    """Apply a shopper's activities (a run of a delivery, _same_shopper_run), as few writes as they fold into
    (crm.changes.fold): how many changed anything. Every write reads every line key of the run: the lines one
    write makes are one item keyed like its earliest (crm.adapters.timeline_items), an activity of this run
    whichever way an earlier, interrupted delivery of it split the run into writes, so it is found. Read
    eventually consistent first unless ``consistent`` (as apply_event), consistently after a write."""
    reads = activity_reads(events)
    read_history = _history(repository)
    applied = start = 0
    while start < len(events):
        for _ in range(MAX_CONFLICT_RETRIES):
            try:
                context = _read(repository, reads, consistent)
                first = events[start]
                context = replace(context, event_seen=(first.store_id, first.event_id) in context.seen)
                taken, change, changed = fold(events[start:], context, now, read_history)
                if change is None and not consistent and not context.seen.issuperset(
                        (event.store_id, event.event_id) for event in events[start:]):
                    raise _ReadAgain
                if change is not None:
                    repository.commit(change)
                    applied += changed
                    consistent = True  # the next write of the run reads what this one wrote
            except _READ_AGAIN as error:
                _unless_read_consistently(error, consistent)
                consistent = True
                continue
            start += taken
            break
        else:
            raise TooManyConflicts(f"{type(events[start]).__name__} of store {events[start].store_id}")
    return applied


def _same_shopper_run(events: Sequence[CanonicalEvent]) -> list[ActivityEvent]:
    """The activities at the head of ``events`` that name the same identities, at most FOLD_LIMIT."""
    run: list[ActivityEvent] = []
    for event in events[:FOLD_LIMIT]:
        if not isinstance(event, ActivityEvent) or (run and identities_of(event) != identities_of(run[0])):
            break
        run.append(event)
    return run


def apply_events(repository: ProfileRepository, events: Sequence[CanonicalEvent], now: datetime) -> Outcome:
    """Apply canonical events in order (a delivery's, an import's); each is idempotent. A shopper's consecutive
    activities (a /track request's) are folded into one write of their profile where they can be.

    Privacy requests are returned, not applied: they are carried out by crm.privacy, which needs the archive.
    """
    compliance = tuple(event for event in events if isinstance(event, ComplianceRequest))
    pending = [event for event in events if not isinstance(event, ComplianceRequest)]
    applied = 0
    while pending:
        run = _same_shopper_run(pending)
        # After a write, reads are consistent: an eventually consistent one would likely miss it.
        if len(run) > 1:
            taken, changed = len(run), apply_activities(repository, run, now, consistent=applied > 0)
        else:
            taken, changed = 1, apply_event(repository, pending[0], now, consistent=applied > 0)
        applied += changed
        pending = pending[taken:]
    return Outcome(applied=applied, unchanged=len(events) - len(compliance) - applied, compliance=compliance)


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
    try:
        return apply_events(repository, events, now)
    except ChangeRefused as error:
        return _dead_letter(queue, message, f"{envelope.meta.topic} {envelope.meta.delivery_id}: the table refused "
                                            f"it: {error}")


def _dead_letter(queue: IngestQueue, message: str, reason: str) -> Outcome:
    queue.dead_letter(message, reason)
    return Outcome(dead_lettered=reason)
