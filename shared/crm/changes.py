"""What one canonical event writes: a pure plan over what the table holds (crm.ports.Context).

The plan resolves the event's identities to one profile (merging profiles the event proves are one
shopper), applies the event to it, and names every item to write with the value it was read at, so the
repository can write it all atomically or not at all. None means the event changes nothing: a duplicate,
an older version, or a shopper erased by a privacy request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from crm.attribution import touch_from_urls
from crm.consent import consent_history
from crm.identity import identities_of, resolve
from crm.models.canonical import (
    ActivityEvent,
    ActivityType,
    CanonicalEvent,
    CustomerRecord,
    OrderRemoved,
    RefundRecord,
)
from crm.models.currency import CurrencySettings
from crm.models.orders import CanonicalOrder
from crm.models.profile import CustomerState, OrderRecord, Profile, TimelineEntry, new_profile
from crm.money import format_money
from crm.ports import Change, Context, IdentityLink, Reads
from crm.profiles import (
    apply_activity,
    apply_customer,
    apply_order_record,
    combine,
    event_digest,
    linked,
    named_profile_id,
    profile_id_for,
    tombstone,
    with_order_dates,
    with_order_facts,
    with_recent_history,
    with_signed_browsers,
    with_signed_touches,
    with_unmarked,
)
from crm.reporting import with_figures
from crm.unwritten_orders import counted_in_flight, order_state, with_in_flight, without_in_flight

_ACTIVITY_TYPES = frozenset(kind.value for kind in ActivityType)


@dataclass(frozen=True)
class ProfileHistory:
    """What a profile's timeline (its merged profiles' included) says: the placement dates of its counted
    orders other than the one being applied, and the time of every activity, by type."""

    order_dates: list[datetime]
    activity: dict[str, list[datetime]]


# Reads a profile's history, excluding the order ref given. The rare path: only when the first or last
# order stops counting, when a kept order time leaves and an older one must come back (crm.recent), or
# when the profile was written before times were kept and they must be rebuilt.
ReadHistory = Callable[[Profile, str], ProfileHistory]


def reads_for(event: CanonicalEvent) -> Reads:
    store = event.store_id
    identities = tuple(identities_of(event))
    if isinstance(event, CanonicalOrder):
        return Reads(event.workspace_id, identities, order=(store, event.order_id), version=event.version)
    if isinstance(event, RefundRecord | OrderRemoved):
        return Reads(event.workspace_id, identities, order=(store, event.order_id))
    if isinstance(event, CustomerRecord):
        return Reads(event.workspace_id, identities, customer=(store, event.customer_id), version=event.version)
    if isinstance(event, ActivityEvent):
        return activity_reads([event])
    return Reads(event.workspace_id, identities)


def activity_reads(events: Sequence[ActivityEvent]) -> Reads:
    """The reads of one shopper's activities (the first's identities): each is applied if its timeline line is
    on the profile (crm.ports.Reads.lines)."""
    first = events[0]
    return Reads(first.workspace_id, tuple(identities_of(first)), event=(first.store_id, first.event_id),
                 folded=tuple((event.store_id, event.event_id) for event in events[1:]),
                 lines={(event.store_id, event.event_id): line_key(event) for event in events})


def line_key(event: ActivityEvent) -> str:
    """The sort key of the activity's timeline line (crm.models.profile.TimelineEntry.sort_key)."""
    return TimelineEntry(workspace_id=event.workspace_id, profile_id="", occurred_at=event.occurred_at,
                         type=event.type.value, ref=event.event_id).sort_key


@dataclass(frozen=True)
class _Target:
    """The profile an event lands on, after any merge, and the writes that got it there."""

    profile: Profile
    before: Profile | None  # the survivor as read (None: new)
    tombstones: tuple[tuple[Profile, int], ...]
    links: tuple[IdentityLink, ...]
    timeline: tuple[TimelineEntry, ...]


def _moment(event: CanonicalEvent) -> datetime:
    """When the event happened, by the store's clock."""
    if isinstance(event, CanonicalOrder | CustomerRecord):
        return event.updated_at
    if isinstance(event, ActivityEvent):
        return event.occurred_at
    if isinstance(event, RefundRecord):
        return event.created_at
    if isinstance(event, OrderRemoved):
        return event.removed_at
    return event.requested_at


def _target(event: CanonicalEvent, context: Context, now: datetime, anchor: Profile | None = None) -> _Target:
    identities = identities_of(event)
    email = getattr(event, "email", None)
    resolution = resolve(identities, context.owners, email, anchor)
    group = [p for p in (resolution.primary, *resolution.merged) if p is not None]
    moving, moved = _merging_into(group, context)
    if group:
        survivor = min(group, key=lambda p: p.profile_id)
        others = [p for p in group if p.profile_id != survivor.profile_id]
        joining = [*others, *moving]
        profile = combine(survivor, joining, now) if joining else survivor
        if joining and isinstance(event, ActivityEvent) and event.from_browser:
            profile = with_signed_touches(profile, [*group, *moving])
        before: Profile | None = survivor
    else:
        others = []
        # A first identity whose name a tombstone holds (a link took it for a profile not written yet: its write
        # ended between the two) gives the id it leads to, as the interrupted write's retry plans.
        named = context.named_into.get(identities[0]) or profile_id_for(event.workspace_id, identities[0])
        profile = new_profile(event.workspace_id, named, now)
        before = None
    profile = linked(profile, resolution.claimed, event.store_id)
    if isinstance(event, CanonicalOrder) or (isinstance(event, ActivityEvent) and not event.from_browser):
        profile = with_signed_browsers(profile, resolution.claimed)
    # An identity without a link item leads to the profile named after it (docs/profile-writes.md): its link is
    # written only to say something else, and then takes that name too if no profile has it yet.
    links = tuple(
        IdentityLink(identity, profile.profile_id, context.pointers.get(identity),
                     named_tombstone=_name_taken(context, event.workspace_id, identity, profile.profile_id, now))
        for identity in resolution.claimed if _leads_to(context, event.workspace_id, identity) != profile.profile_id
    )
    # A merge left under way is finished by whoever reads it (the event that began it, delivered again, or any
    # other reaching the survivor through a profile marked as merging): its line names every profile merged.
    merged = [*others, *moving, *moved]
    reason = [i for i in resolution.reason.split(", ") if i in context.owners] + [
        identity for identity in identities
        if _leads_to(context, event.workspace_id, identity) in {p.profile_id for p in moving}]
    timeline = (_merge_line(event, profile, merged, reason),) if merged else ()
    stones = tuple((tombstone(p, profile.profile_id, now), p.revision) for p in merged)
    return _Target(profile, before, stones, links, timeline)


def _leads_to(context: Context, workspace_id: str, identity: str) -> str | None:
    """The profile id an identity leads to as read: its link item's, or without one the profile named after it
    (crm.profiles.named_profile_id), which the reader looks for (crm.ports.ProfileRepository.load)."""
    return context.pointers.get(identity) or named_profile_id(workspace_id, identity)


def _name_taken(context: Context, workspace_id: str, identity: str, profile_id: str, now: datetime) -> Profile | None:
    """The tombstone a link written elsewhere leaves at the name of an identity with no link and no profile of its
    own (crm.ports.IdentityLink.named_tombstone)."""
    named = named_profile_id(workspace_id, identity) if identity in context.unnamed else None
    return tombstone(new_profile(workspace_id, named, now), profile_id, now) if named else None


def _merging_into(group: Sequence[Profile], context: Context) -> tuple[list[Profile], list[Profile]]:
    """The profiles marked as merging into one of ``group`` (crm.changes._merge_guard_last) that were read on the
    way: those whose contents it does not hold yet (its ``merged_from`` does not name them), and those it holds
    that are still to be written as tombstones."""
    moving: list[Profile] = []
    moved: list[Profile] = []
    for profile in group:
        for marked in context.merging.get(profile.profile_id, ()):
            (moved if marked.profile_id in profile.merged_from else moving).append(marked)
    return moving, moved


def _merge_line(event: CanonicalEvent, profile: Profile, merged: Sequence[Profile],
                reason: Sequence[str]) -> TimelineEntry:
    """Stamped with the event's own time, not the clock's: a replay writes the same line."""
    kinds = sorted({identity.partition("#")[0] for identity in reason} or {"event"})
    return TimelineEntry(
        workspace_id=event.workspace_id, profile_id=profile.profile_id, occurred_at=_moment(event),
        type="profile_merged", ref="+".join(sorted(p.profile_id for p in merged)),
        summary={"merged": sorted(p.profile_id for p in merged), "linked_by": kinds})


def _profiles(target: _Target, profile: Profile) -> tuple[tuple[Profile, int | None], ...]:
    revision = target.before.revision if target.before else None
    written = profile.model_copy(update={"revision": (revision or 0) + 1})
    return ((written, revision), *((stone.model_copy(update={"revision": read + 1}), read)
                                   for stone, read in target.tombstones))


def _entry(profile: Profile, at: datetime, kind: str, ref: str, store_id: str | None = None,
           **summary: Any) -> TimelineEntry:
    return TimelineEntry(workspace_id=profile.workspace_id, profile_id=profile.profile_id, store_id=store_id,
                         occurred_at=at, type=kind, ref=ref,
                         summary={k: v for k, v in summary.items() if v is not None})


def _order_entries(profile: Profile, record: OrderRecord) -> list[TimelineEntry]:
    order = record.order
    if order is None:
        return []
    ref = f"{order.store_id}:{order.order_id}"
    entries = [_entry(profile, order.created_at, "order", ref, order.store_id, number=order.order_number,
                      currency=order.currency,
                      total=format_money(order.total_price), net=format_money(record.net_total),
                      counted=record.counts, unpaid=record.unpaid or None, status=order.financial_status,
                      version=order.version,
                      items=sum(item.quantity for item in order.line_items),
                      channel=record.last_touch.channel if record.last_touch else None)]
    ended = order.cancelled_at or record.removed_at
    if ended is not None:
        entries.append(_entry(profile, ended, "order_cancelled", ref, order.store_id))
    return entries


def _with_order(target: _Target, previous: OrderRecord | None, record: OrderRecord, now: datetime,
                read_history: ReadHistory) -> tuple[Profile, OrderRecord]:
    """The target profile with the order's contribution, and the record with its profile and attribution."""
    profile = target.profile
    record = record.model_copy(update={"profile_id": profile.profile_id})
    counted_before = previous if previous is not None and previous.profile_id is not None else None
    change = apply_order_record(profile, counted_before, record, now)
    profile = change.profile
    if change.dates_stale or change.recent_stale or profile.recent is None:
        history = read_history(profile, f"{record.store_id}:{record.order_id}")
        dates = list(history.order_dates)
        if record.counts and record.order is not None:
            dates.append(record.order.created_at)
        if change.dates_stale:
            profile = with_order_dates(profile, dates)
        profile = with_recent_history(profile, dates, history.activity if profile.recent is None else None)
    order = record.order
    if order is not None:
        touch = touch_from_urls(order.landing_site, order.referring_site, order.created_at)
        last = profile.last_touch if profile.last_touch and profile.last_touch.at <= order.created_at else None
        record = record.model_copy(update={"first_touch": profile.first_touch, "last_touch": touch or last})
    return profile, record


def _links_only(event: CanonicalOrder | CustomerRecord, target: _Target, facts: Profile) -> Change | None:
    """An older version changes no totals, but who it names still counts: its identities link and merge as
    they would have on time, and its contact fields fill gaps (the newest record still wins each field)."""
    # Against the profile as read: an identity may point at it before the profile lists it (an order's links are
    # written first, crm.changes._order_guard_last, and the write may have ended there).
    if not target.links and not target.tombstones and facts == target.before:
        return None
    return Change(workspace_id=event.workspace_id, profiles=_profiles(target, facts), identities=target.links,
                  timeline=target.timeline)


def _order_change(event: CanonicalOrder, context: Context, now: datetime,
                  read_history: ReadHistory) -> Change | None:
    previous = context.order
    # Placed on the profile its record names; before the record is written, on the one its order# identity leads
    # to (an order written guard last links it first: crm.changes._order_guard_last).
    anchor = context.order_owner or context.owners.get(f"order#{event.store_id}#{event.order_id}")
    target = _target(event, context, now, anchor=anchor)
    if previous is not None and previous.order is not None and event.version <= previous.version:
        return _links_only(event, target, with_order_facts(target.profile, event))
    record = OrderRecord(workspace_id=event.workspace_id, store_id=event.store_id, order_id=event.order_id,
                         order=event, refunds=previous.refunds if previous else {},
                         refund_dates=previous.refund_dates if previous else {},
                         removed_at=previous.removed_at if previous else None)
    # A first write of this order began with no record (crm.unwritten_orders); refunds may have arrived since.
    alone = (OrderRecord(workspace_id=event.workspace_id, store_id=event.store_id, order_id=event.order_id,
                         order=event),) if previous is not None and previous.order is None else ()
    counted = _counted(target, previous, (record, *alone))
    profile, record = _with_order(target, counted or previous, record, now, read_history)
    waiting = [] if previous is None or previous.order is not None else [
        _entry(profile, at, "refund", f"{event.store_id}:{event.order_id}:{refund_id}", event.store_id,
               amount=format_money(previous.refunds[refund_id]))
        for refund_id, at in sorted(previous.refund_dates.items())]
    return _rest_of(counted, target, Change(
        workspace_id=event.workspace_id, profiles=_profiles(target, profile),
        order=(record, previous), identities=target.links,
        timeline=(*target.timeline, *_order_entries(profile, record), *waiting),
    ))


def _counted(target: _Target, read: OrderRecord | None, candidates: Sequence[OrderRecord]) -> OrderRecord | None:
    """The record the target profile counts when this event's earlier write ended before its record (as the
    record it counts towards, to be replaced by the one written now), or None: it counts the record read."""
    counted = counted_in_flight(target.profile, read, candidates)
    return counted.model_copy(update={"profile_id": target.profile.profile_id}) if counted else None


def _rest_of(counted: OrderRecord | None, target: _Target, change: Change) -> Change:
    """A retry of an order change whose profile was written: when the profile counts what the record becomes,
    only the links, lines and record are left to write (guard last, the record last)."""
    if counted is None or target.tombstones or change.order is None or (
            order_state(counted) != order_state(change.order[0])):
        return change
    return replace(change, profiles=(), guard_last=True)


def _order_amendment(event: RefundRecord | OrderRemoved, context: Context, now: datetime,
                     read_history: ReadHistory) -> Change | None:
    """A refund or a removal: it amends the order record, and its profile if the order has arrived."""
    previous = context.order
    held = previous or OrderRecord(workspace_id=event.workspace_id, store_id=event.store_id, order_id=event.order_id)
    if isinstance(event, RefundRecord):
        if held.all_refunds.get(event.refund_id) == event.amount:
            return None
        record = held.model_copy(update={"refunds": {**held.refunds, event.refund_id: event.amount},
                                         "refund_dates": {**held.refund_dates, event.refund_id: event.created_at}})
        at, kind, ref = event.created_at, "refund", f"{event.store_id}:{event.order_id}:{event.refund_id}"
        summary: dict[str, Any] = {"amount": format_money(event.amount)}
    else:
        if held.removed_at is not None:
            return None
        record = held.model_copy(update={"removed_at": event.removed_at})
        at, kind, ref, summary = event.removed_at, "order_removed", f"{event.store_id}:{event.order_id}", {}
    owner = context.order_owner
    if owner is None or record.order is None:
        return Change(workspace_id=event.workspace_id, order=(record, previous))  # waits for its order
    target = _owner_target(event, owner, context, now)
    counted = _counted(target, previous, (record,))
    profile, record = _with_order(target, counted or previous, record, now, read_history)
    return _rest_of(counted, target, Change(
        workspace_id=event.workspace_id, profiles=_profiles(target, profile), order=(record, previous),
        timeline=(*_order_entries(profile, record), _entry(profile, at, kind, ref, event.store_id, **summary)),
    ))


def _owner_target(event: RefundRecord | OrderRemoved, owner: Profile, context: Context, now: datetime) -> _Target:
    """The order's profile, with any merge into it left under way finished (its writes then keep the
    transaction: crm.changes._order_guard_last)."""
    moving, moved = _merging_into([owner], context)
    if not moving and not moved:
        return _Target(owner, owner, (), (), ())
    profile = combine(owner, moving, now) if moving else owner
    merged = [*moving, *moved]
    return _Target(profile, owner, tuple((tombstone(p, owner.profile_id, now), p.revision) for p in merged), (),
                   (_merge_line(event, profile, merged, ()),))


def _activity_change(event: ActivityEvent, context: Context, now: datetime,
                     read_history: ReadHistory) -> Change | None:
    if context.event_seen:
        return None
    target = _target(event, context, now)
    profile = target.profile
    if event_digest(event.store_id, event.event_id) in profile.unmarked_events:
        # Applied by a write whose line never followed: only its line (and links) are left to write.
        return Change(workspace_id=event.workspace_id, profiles=_profiles(target, profile) if (
                          target.links or target.tombstones) else (), identities=target.links,
                      timeline=(*target.timeline, _activity_entry(event, profile)),
                      event=(event.store_id, event.event_id, profile.profile_id))
    if profile.recent is None:  # written before times were kept: rebuilt once, from its timeline
        history = read_history(profile, "")
        profile = with_recent_history(profile, history.order_dates, history.activity)
    profile = apply_activity(profile, event, now)
    return Change(
        workspace_id=event.workspace_id, profiles=_profiles(target, profile), identities=target.links,
        timeline=(*target.timeline, _activity_entry(event, profile)),
        event=(event.store_id, event.event_id, profile.profile_id),
    )


def _activity_entry(event: ActivityEvent, profile: Profile) -> TimelineEntry:
    return _entry(profile, event.occurred_at, event.type.value, event.event_id, event.store_id, url=event.url,
                  value=format_money(event.value) if event.value is not None else None, currency=event.currency,
                  products=[p.title for p in event.products if p.title] or None,
                  order=f"{event.store_id}:{event.order_id}" if event.order_id else None,
                  channel=event.touch.channel if event.touch else None,
                  **_message_fields(event, profile))


def _guard_last(change: Change | None, event: CanonicalEvent) -> Change | None:
    """A change of one profile needs no transaction when a retry can finish what an interrupted write began
    (docs/profile-writes.md): an existing profile goes first under its revision guard, then its identity links
    (each under the pointer read); a new profile after its links (a retry that finds them plans the same profile,
    whose id comes from the event's first identity); then its lines, and last the item whose presence says the
    event is applied.

    - An activity: its line, its marker, is last, and the profile carries the event's digest, so a retry that
      finds the digest writes only what is missing and counts nothing twice.
    - An account update: its account item (guarded by the version read) is last, and applying the same version
      again leaves the profile as it was (each field keeps its latest statement), so a retry simply repeats it.

    Consent lines keep the transaction: a line and its profile must not part. Merges (crm.changes._merge_guard_last)
    and orders (crm.changes._order_guard_last) are written guard last their own way."""
    if change is None or len(change.profiles) != 1 or change.order:
        return change
    profile, revision = change.profiles[0]
    if isinstance(event, ActivityEvent) and event.type is ActivityType.IDENTIFY and (
            change.identities or revision is None):
        return change  # an identify that links keeps its transaction: its write path is reworked with the orders'
    if isinstance(event, ActivityEvent) and change.event is not None and change.customer is None and len(
            change.timeline) == 1:
        return replace(change, profiles=((with_unmarked(profile, event_digest(event.store_id, event.event_id)),
                                          revision),), guard_last=True)
    if isinstance(event, CustomerRecord) and change.customer is not None and change.event is None:
        return replace(change, guard_last=True)
    return change


def _merge_guard_last(change: Change | None, event: CanonicalEvent, context: Context) -> Change | None:
    """An activity that merges profiles (an identify naming a known shopper's email from a browser) needs no
    transaction: each merged profile is first marked as merging into the survivor, contents kept (from then on
    every reader follows it to the survivor, so nothing lands on it and its contents stay what was read); then the
    survivor is written holding their contents, naming them in ``merged_from`` and carrying the event's digest;
    then the tombstones, the links and the lines, the activity's last. Whoever next reads a marked profile on the
    way to its survivor finishes the merge (crm.changes._target): its contents are combined in once, because the
    survivor's ``merged_from`` says whether it holds them, under its revision guard. Merges with a consent line,
    an order or an account keep the transaction."""
    if (change is None or change.guard_last or len(change.profiles) < 2 or not isinstance(event, ActivityEvent)
            or change.event is None or change.order is not None or change.customer is not None):
        return change
    (survivor, revision), *stones = change.profiles
    marked = {p.profile_id for found in context.merging.values() for p in found}
    read = {p.profile_id: p for p in context.owners.values()}
    merging: list[tuple[Profile, int | None]] = []
    tombstones: list[tuple[Profile, int | None]] = []
    for stone, stone_revision in stones:
        as_read = read.get(stone.profile_id)
        if stone.profile_id in marked:
            tombstones.append((stone, stone_revision))
            continue
        if as_read is None or stone_revision is None:
            return change
        merging.append((as_read.model_copy(update={"merged_into": survivor.profile_id, "merging": True,
                                                   "revision": stone_revision + 1}), stone_revision))
        tombstones.append((stone.model_copy(update={"revision": stone_revision + 2}), stone_revision + 1))
    survivor = with_unmarked(survivor, event_digest(event.store_id, event.event_id))
    return replace(change, merging=tuple(merging), profiles=((survivor, revision), *tombstones), guard_last=True)


def _order_guard_last(change: Change, consent_lines: bool, now: datetime) -> Change:
    """An order change of one existing profile needs no transaction: its identity links go first (the order's own
    anchors any other version of it to this profile before the record can), then the profile under its revision,
    saying what state the order record is being brought to (crm.unwritten_orders), the timeline lines, and last
    the record under the state read. A retry that finds the profile written finishes the rest; a conflict anywhere
    is read and planned again. New profiles, merges, consent lines and an order arriving
    to a record that holds only its refunds keep the transaction."""
    if change.guard_last or not change.profiles:
        return change
    assert change.order is not None
    record, read = change.order
    (profile, revision), *merged = change.profiles
    if (merged or revision is None or (read is not None and read.order is None) or consent_lines
            or change.customer is not None or change.event is not None):
        return replace(change, profiles=((without_in_flight(profile, record, now), revision), *merged))
    return replace(change, profiles=((with_in_flight(profile, record, now), revision),), guard_last=True)


# The activity lines the outbox turns into flow events (crm.outbox): they carry what a message shows.
_MESSAGE_ACTIVITY = frozenset({ActivityType.CHECKOUT_STARTED, ActivityType.PRODUCT_VIEWED,
                               ActivityType.ORDER_FULFILLED})
_ITEMS_KEPT = 50  # a line stays well under DynamoDB's item limit however big the cart


def _message_fields(event: ActivityEvent, profile: Profile) -> dict[str, Any]:
    """The items (with picture and link), the recovery link, and whether only a browser vouches for the
    activity being this shopper's: true for /track activity unless a signed source tied its browser to the
    profile (docs/consent.md)."""
    if event.type not in _MESSAGE_ACTIVITY:
        return {}
    browser = f"anon#{event.store_id}#{event.anonymous_id}" if event.anonymous_id else None
    from_browser = event.from_browser and browser not in profile.signed_browsers
    items = [{name: value for name, value in (
        ("title", p.title), ("quantity", p.quantity), ("price", format_money(p.price) if p.price is not None else None),
        ("product_id", p.product_id), ("variant_id", p.variant_id), ("sku", p.sku), ("image_url", p.image_url),
        ("product_url", p.url)) if value is not None} for p in event.products[:_ITEMS_KEPT]]
    checkout = (event.checkout_token or event.cart_token) if event.type is ActivityType.CHECKOUT_STARTED else None
    # Most views are anonymous browsing nobody can message: the outbox publishes a view only of a profile with
    # an address (one EventBridge entry, queue message and flows invocation saved per anonymous view).
    reachable = event.type is ActivityType.PRODUCT_VIEWED and bool(profile.email or profile.phone)
    return {"items": items or None, "checkout": checkout, "recovery_url": event.recovery_url,
            "from_browser": from_browser or None, "reachable": reachable or None}


def _customer_change(event: CustomerRecord, context: Context, now: datetime) -> Change | None:
    previous = context.customer
    target = _target(event, context, now)
    if previous is not None and event.version <= previous.version:
        return _links_only(event, target, apply_customer(target.profile, event, target.profile.updated_at))
    if event.deleted and target.before is None:
        return None  # an account we never knew was deleted: there is no one to note it on
    profile = apply_customer(target.profile, event, now)
    state = CustomerState(workspace_id=event.workspace_id, store_id=event.store_id, customer_id=event.customer_id,
                          profile_id=profile.profile_id, version=event.version, deleted=event.deleted)
    ref = f"{event.store_id}:{event.customer_id}"
    entries = [*target.timeline]
    if previous is None:
        entries.append(_entry(profile, event.created_at, "account_created", ref, event.store_id))
    if event.deleted and not (previous and previous.deleted):
        entries.append(_entry(profile, event.updated_at, "account_deleted", ref, event.store_id))
    return Change(
        workspace_id=event.workspace_id, profiles=_profiles(target, profile),
        customer=(state, previous.version if previous else None), identities=target.links, timeline=tuple(entries),
    )


def plan(event: CanonicalEvent, context: Context, now: datetime, read_history: ReadHistory) -> Change | None:
    """The writes ``event`` makes, or None when it changes nothing."""
    if context.already_held or context.redacted.intersection(identities_of(event)):
        return None  # a duplicate; or an erased shopper, who stays erased whatever arrives late or is replayed
    if isinstance(event, CanonicalOrder):
        change = _order_change(event, context, now, read_history)
    elif isinstance(event, RefundRecord | OrderRemoved):
        change = _order_amendment(event, context, now, read_history)
    elif isinstance(event, ActivityEvent):
        change = _activity_change(event, context, now, read_history)
    elif isinstance(event, CustomerRecord):
        change = _customer_change(event, context, now)
    else:
        raise TypeError(f"{type(event).__name__} is not applied to profiles")
    lines = len(change.timeline) if change is not None else 0
    change = _with_consent_history(change, context)
    if change is not None and change.order is not None:
        change = _order_guard_last(change, len(change.timeline) != lines, now)
    elif change is not None and len(change.timeline) == lines:  # a consent line is written with its profile
        change = _merge_guard_last(_guard_last(change, event), event, context)
    return None if change is None else _in_reporting_currency(change, context.currency)


def fold(events: Sequence[ActivityEvent], context: Context, now: datetime,
         read_history: ReadHistory) -> tuple[int, Change | None, int]:
    """Activities of one shopper (a /track request's, read together: ``Reads.folded``) as one write: the longest
    run of them that are guard-last writes of the same profile, each planned on the profile as the previous one
    left it, written once with every line. Returns (events taken, the change, how many it applies);
    a first event that needs a transaction (a merge, a consent line) is taken alone."""
    written: Change | None = None
    applied = 0
    for taken, event in enumerate(events):
        seen = (event.store_id, event.event_id) in context.seen or (taken == 0 and context.event_seen)
        change = plan(event, replace(context, event_seen=seen, already_held=False), now, read_history)
        if change is None:
            continue
        # The first may link identities or make the profile; the events after it fold onto that profile as it
        # left it, with its identities taken as pointing at it (they do once the change is written).
        if written is None and (not change.guard_last or len(change.profiles) != 1):  # a merge is written alone
            return taken + 1, change, 1
        if written is not None and (not change.guard_last or len(change.profiles) != 1 or change.identities
                                    or change.profiles[0][0].profile_id != written.profiles[0][0].profile_id):
            return taken, written, applied
        profile, revision = change.profiles[0]
        assert change.event is not None
        written = change if written is None else replace(
            written, profiles=change.profiles, timeline=(*written.timeline, *change.timeline),
            folded=(*written.folded, change.event))
        applied += 1
        context = _as_written(context, event, profile, revision)
    return len(events), written, applied


def _as_written(context: Context, event: ActivityEvent, profile: Profile, revision: int | None) -> Context:
    """What the next event of a fold reads: ``profile`` as this event left it (its guard still the revision read)
    owning each of the event's identities it holds. Those include identities whose pointer was read leading to
    no profile (a new profile's links are written before it, and that write may have been interrupted): the
    profile planned anew owns them now, so the next event lands on it instead of planning another."""
    as_read = profile.model_copy(update={"revision": revision})
    held = [identity for identity in identities_of(event) if identity in profile.identities]
    return replace(
        context, pointers={**context.pointers, **dict.fromkeys(held, profile.profile_id)},
        unnamed=context.unnamed.difference(held),
        owners={**{identity: as_read if owner.profile_id == profile.profile_id else owner
                   for identity, owner in context.owners.items()}, **dict.fromkeys(held, as_read)})


def _with_consent_history(change: Change | None, context: Context) -> Change | None:
    """The change with a timeline line for each consent statement or request it records (crm.consent)."""
    if change is None or not change.profiles:
        return change
    written = change.profiles[0][0]
    read = [*context.owners.values(), context.order_owner]
    before = next((p for p in read if p is not None and p.profile_id == written.profile_id), None)
    lines = consent_history(before, written)
    return replace(change, timeline=(*change.timeline, *lines)) if lines else change


def _in_reporting_currency(change: Change, settings: CurrencySettings | None) -> Change:
    """Every live profile written states its figures at the workspace's settings as read with it: a change of
    settings since fails the write (the re-derivation job wrote the profile) and the event is applied again."""
    profiles = tuple((profile if profile.merged_into else with_figures(profile, settings), revision)
                     for profile, revision in change.profiles)
    return replace(change, profiles=profiles)


def distinct_entries(entries: Sequence[TimelineEntry]) -> list[TimelineEntry]:
    """Entries without the older copies an order leaves in a profile merged since (its newest version wins)."""
    newest: dict[tuple[str, str], TimelineEntry] = {}
    for entry in entries:
        key = (entry.type, entry.ref)
        held = newest.get(key)
        if held is None or _written_later(entry, held):
            newest[key] = entry
    return [entry for entry in entries if newest[(entry.type, entry.ref)] is entry]


def _written_later(entry: TimelineEntry, other: TimelineEntry) -> bool:
    """Whether ``entry`` is the later copy of ``other``'s line. A refund or a removal rewrites an order's line at
    the same version (it may stop counting), on the profile the order is on by then: a merge's survivor, which
    has the smaller id (crm.changes._target keeps the smallest), so the id decides whatever order they are read
    in."""
    version, other_version = str(entry.summary.get("version", "")), str(other.summary.get("version", ""))
    return version > other_version or (version == other_version and entry.profile_id < other.profile_id)


def counted_order_dates(entries: Sequence[TimelineEntry], exclude_ref: str) -> list[datetime]:
    """Placement dates of counted orders, from a profile's timeline."""
    return [entry.occurred_at for entry in distinct_entries(entries)
            if entry.type == "order" and entry.summary.get("counted") and entry.ref != exclude_ref]


def activity_times(entries: Sequence[TimelineEntry]) -> dict[str, list[datetime]]:
    """When each activity happened, by type, from a profile's timeline (one line per activity event)."""
    found: dict[str, list[datetime]] = {}
    for entry in entries:
        if entry.type in _ACTIVITY_TYPES:
            found.setdefault(entry.type, []).append(entry.occurred_at)
    return found


def history_of(entries: Sequence[TimelineEntry], exclude_ref: str) -> ProfileHistory:
    return ProfileHistory(counted_order_dates(entries, exclude_ref), activity_times(entries))
