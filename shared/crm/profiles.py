"""How events change a profile, and how two profiles combine: plain functions over models, no AWS.

Each aggregate is kept so the result does not depend on the order events arrive in: an order's
contribution is taken out and put back when a newer version arrives, counters add, earliest and latest
are min and max, and "latest statement wins" fields carry the stamp that chose them.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from crm.attribution import touch_from_urls
from crm.consent import ConsentNotConfirmable, confirm_request, with_consent_statements
from crm.models.canonical import ActivityEvent, ActivityType, CustomerRecord, Touch
from crm.models.consent import Channel, Consent, ConsentState
from crm.models.orders import CanonicalOrder
from crm.models.profile import Activity, OrderRecord, Profile, RecentTimes
from crm.recent import latest, merged, micros, replaced, with_time
from crm.reporting import add_amount, add_sums, with_figures

_PROFILE_NAMESPACE = uuid.UUID("5b0b5a52-93b0-4d4a-9d8e-8f3f2a1c7e10")

CONTACT_FIELDS = ("email", "phone", "first_name", "last_name", "country")

BROWSE = frozenset({ActivityType.PAGE_VIEWED, ActivityType.PRODUCT_VIEWED})
CART = frozenset({ActivityType.PRODUCT_ADDED_TO_CART, ActivityType.CART_VIEWED, ActivityType.CART_UPDATED})
CHECKOUT = frozenset({ActivityType.CHECKOUT_STARTED, ActivityType.CHECKOUT_UPDATED})


def profile_id_for(workspace_id: str, identity: str) -> str:
    """The profile id a first identity gets: deterministic, so a replay rebuilds the same ids."""
    return uuid.uuid5(_PROFILE_NAMESPACE, f"{workspace_id}|{identity}").hex


def named_profile_id(workspace_id: str, identity: str) -> str | None:
    """Where an identity without a link item leads: the profile named after it, if that exists. Only a storefront
    browser's (``anon#``): a new browser's first /track request is the one frequent first write of a profile, and
    its own link was a write of its own (docs/profile-writes.md). Every other identity keeps its link item, even to
    the profile named after it: linking one of them elsewhere needs no more than the link's own guard, while linking
    a browser with no link and no profile to another profile takes the browser's name too
    (crm.ports.IdentityLink.named_tombstone), and an email, an account or a phone is linked to another profile often
    (every new email signed in from a known browser)."""
    return profile_id_for(workspace_id, identity) if identity.startswith("anon#") else None


@dataclass(frozen=True)
class Contribution:
    """What one order adds to its profile's totals."""

    counted: int = 0
    cancelled: int = 0
    unpaid: int = 0
    currency: str | None = None
    net: Decimal = Decimal("0.00")
    refunded: Decimal = Decimal("0.00")
    products: Mapping[str, int] = field(default_factory=dict)
    categories: Mapping[str, int] = field(default_factory=dict)
    skus: Mapping[str, int] = field(default_factory=dict)
    coupons: Mapping[str, int] = field(default_factory=dict)
    placed_at: datetime | None = None  # set only while the order counts


def contribution(record: OrderRecord | None) -> Contribution:
    if record is None or record.order is None:
        return Contribution()
    if record.unpaid:
        return Contribution(unpaid=1)
    if not record.counts:
        return Contribution(cancelled=1)
    order = record.order
    products: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    skus: Counter[str] = Counter()
    for item in order.line_items:
        products[item.title] += item.quantity
        if item.category:
            categories[item.category] += item.quantity
        if item.sku:
            skus[item.sku] += item.quantity
    return Contribution(
        counted=1, currency=order.currency, net=record.net_total, refunded=record.refunded, products=dict(products),
        categories=dict(categories), skus=dict(skus), coupons={code: 1 for code in set(order.discount_codes)},
        placed_at=order.created_at,
    )


def _add(counts: Mapping[str, int], delta: Mapping[str, int], sign: int = 1) -> dict[str, int]:
    total = Counter(counts)
    for key, value in delta.items():
        total[key] += sign * value
    return {key: value for key, value in sorted(total.items()) if value > 0}


def _earliest(*values: datetime | None) -> datetime | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _latest(*values: datetime | None) -> datetime | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


@dataclass(frozen=True)
class OrderChange:
    profile: Profile
    # True when the order that was the first or last counted one stopped counting: the dates must be
    # recomputed from the profile's other orders (crm.changes asks the repository for them).
    dates_stale: bool
    # True when a kept order time left while older counted orders were not kept: the next older one must
    # come back, so the kept times are rebuilt from the same read (crm.recent.replaced).
    recent_stale: bool = False


def _micros(at: datetime | None) -> int | None:
    return None if at is None else micros(at)


def apply_order_record(
    profile: Profile, previous: OrderRecord | None, record: OrderRecord, now: datetime
) -> OrderChange:
    """The profile with ``previous``'s contribution replaced by ``record``'s."""
    old, new = contribution(previous), contribution(record)
    dates_stale = old.placed_at is not None and new.placed_at != old.placed_at and (
        old.placed_at in (profile.first_order_at, profile.last_order_at))
    changes: dict[str, Any] = {
        "orders_count": profile.orders_count - old.counted + new.counted,
        "cancelled_count": profile.cancelled_count - old.cancelled + new.cancelled,
        "unpaid_orders_count": profile.unpaid_orders_count - old.unpaid + new.unpaid,
        "spent_by_currency": add_amount(add_amount(profile.spent_by_currency, old.currency, -old.net),
                                        new.currency, new.net),
        "refunded_by_currency": add_amount(add_amount(profile.refunded_by_currency, old.currency, -old.refunded),
                                           new.currency, new.refunded),
        "orders_by_currency": _add(_add(profile.orders_by_currency, {old.currency: 1} if old.currency else {}, -1),
                                   {new.currency: 1} if new.currency else {}),
        "products": _add(_add(profile.products, old.products, -1), new.products),
        "categories": _add(_add(profile.categories, old.categories, -1), new.categories),
        "skus": _add(_add(profile.skus, old.skus, -1), new.skus),
        "coupons": _add(_add(profile.coupons, old.coupons, -1), new.coupons),
        "first_order_at": _earliest(profile.first_order_at, new.placed_at),
        "last_order_at": _latest(profile.last_order_at, new.placed_at),
        "updated_at": now,
    }
    recent_stale = False
    if profile.recent is not None:  # None: written before times were kept, rebuilt whole by crm.changes
        orders, recent_stale = replaced(profile.recent.order_times(), profile.orders_count,
                                        _micros(old.placed_at), _micros(new.placed_at))
        changes["recent"] = RecentTimes.of(profile.recent.activity_times(), orders)
    # The figures in one currency are derived here without the workspace's rates, and again with them by
    # crm.changes.plan, the one place that reads them.
    updated = with_figures(profile.model_copy(update=changes), None)
    if record.order is not None:
        return OrderChange(with_order_facts(updated, record.order), dates_stale, recent_stale)
    return OrderChange(updated, dates_stale, recent_stale)


def with_order_facts(profile: Profile, order: CanonicalOrder) -> Profile:
    """What an order says about the shopper besides money: contact fields, consent, how they came."""
    updated = with_contact(profile, {f: getattr(order, f) for f in CONTACT_FIELDS},
                           f"{order.created_at.isoformat()}|order|{order.store_id}|{order.order_id}|{order.version}")
    updated = with_consents(updated, order.consents)
    updated = with_touch(updated, touch_from_urls(order.landing_site, order.referring_site, order.created_at))
    return without_browser_contact(updated)


def with_order_dates(profile: Profile, placed: Iterable[datetime]) -> Profile:
    """The first and last order dates recomputed from every counted order's date."""
    dates = list(placed)
    return profile.model_copy(update={"first_order_at": min(dates, default=None),
                                      "last_order_at": max(dates, default=None)})


def with_recent_history(profile: Profile, placed: Iterable[datetime],
                        activity: Mapping[str, Iterable[datetime]] | None = None) -> Profile:
    """The kept times rebuilt from a whole history: every counted order's date, and (when given) every
    activity's time by type; without ``activity`` the kept activity times stay as they are."""
    held = profile.recent or RecentTimes()
    kept_activity = held.activity_times() if activity is None else {
        kind: latest(micros(at) for at in times) for kind, times in activity.items()}
    return profile.model_copy(update={"recent": RecentTimes.of(kept_activity,
                                                               latest(micros(at) for at in placed))})


_BROWSER_KIND = "track"


def browser_stamp(at: datetime, store_id: str, event_id: str) -> str:
    """The stamp of contact fields a browser stated through /track (crm.tracking)."""
    return f"{at.isoformat()}|{_BROWSER_KIND}|{store_id}|{event_id}"


def _from_browser(stamp: str) -> bool:
    # "|activity|<store>|track:..." is how browser stamps were written before they had a kind of their own.
    parts = stamp.split("|")
    return (len(parts) > 1 and parts[1] == _BROWSER_KIND) or "|track:" in stamp


def known_from_signed_source(profile: Profile) -> bool:
    """Whether anything on the profile came from a signed source (a platform, /events, an import): from then
    on what a browser states about the shopper (contact fields, touches, consent grants) is not taken."""
    return bool(
        profile.orders_count or profile.cancelled_count
        or any(not _from_browser(stamp) for stamp in profile.contact_sources.values())
        or any(not consent.from_browser for consent in profile.consents.values())
        or any(identity.startswith("customer#") for identity in profile.identities))


def without_browser_contact(profile: Profile) -> Profile:
    """A profile a signed source knows keeps only signed contact fields: a value a browser stated (anyone
    holding the store's public key could have) must not reach a message (docs/consent.md)."""
    if not known_from_signed_source(profile):
        return profile
    dropped = [name for name, stamp in profile.contact_sources.items() if _from_browser(stamp)]
    if not dropped:
        return profile
    return profile.model_copy(update={**dict.fromkeys(dropped), "contact_sources": {
        name: stamp for name, stamp in profile.contact_sources.items() if name not in dropped}})


def _outranks(stamp: str, held: str) -> bool:
    """A signed record's field beats a browser's whatever their times; within each, the latest wins."""
    if _from_browser(stamp) != _from_browser(held) and held:
        return _from_browser(held)
    return stamp >= held


def with_contact(profile: Profile, values: Mapping[str, Any], stamp: str) -> Profile:
    """Contact fields from one record: each is taken if this record is the latest that has one, except that a
    browser's never replaces a signed source's, nor lands on a profile a signed source knows."""
    if _from_browser(stamp) and known_from_signed_source(profile):
        return profile
    sources = dict(profile.contact_sources)
    changes: dict[str, Any] = {}
    for name, value in values.items():
        if value and _outranks(stamp, sources.get(name, "")):
            changes[name] = value
            sources[name] = stamp
    if not changes:
        return profile
    return without_browser_contact(profile.model_copy(update={**changes, "contact_sources": sources}))


def with_consents(profile: Profile, consents: Iterable[Consent]) -> Profile:
    """The statements applied by crm.consent's rules (a browser withdraws but only asks to subscribe)."""
    return without_browser_contact(with_consent_statements(profile, consents))


def _touch_key(touch: Touch) -> tuple[str, str]:
    return (touch.at.isoformat(), touch.model_dump_json())


def with_touch(profile: Profile, touch: Touch | None, from_browser: bool = False) -> Profile:
    """The earliest and latest touches. A browser's visit sets them only while no signed source knows the
    profile: otherwise whoever holds the public key could rewrite a known shopper's attribution."""
    if touch is None or (from_browser and known_from_signed_source(profile)):
        return profile
    first, last = profile.first_touch, profile.last_touch
    return profile.model_copy(update={
        "first_touch": touch if first is None or _touch_key(touch) < _touch_key(first) else first,
        "last_touch": touch if last is None or _touch_key(touch) > _touch_key(last) else last,
    })


def _later(current: Activity | None, candidate: Activity) -> Activity:
    return candidate if current is None or candidate.sort_key() > current.sort_key() else current


def apply_activity(profile: Profile, event: ActivityEvent, now: datetime) -> Profile:
    # Pictures and links stay on the timeline line (crm.changes): every later write of the profile would carry
    # them, in write units, for nothing a segment reads.
    products = tuple(p.model_copy(update={"image_url": None, "url": None}) if p.image_url or p.url else p
                     for p in event.products)
    activity = Activity(at=event.occurred_at, event_id=event.event_id, type=event.type.value, url=event.url,
                        value=event.value, currency=event.currency, products=products)
    changes: dict[str, Any] = {
        "activity_counts": _add(profile.activity_counts, {event.type.value: 1}),
        "last_seen_at": _latest(profile.last_seen_at, event.occurred_at),
        "updated_at": now,
    }
    if profile.recent is not None:  # None: written before times were kept, rebuilt whole by crm.changes
        times = profile.recent.activity_times()
        kind = event.type.value
        times[kind] = with_time(times.get(kind, ()), micros(event.occurred_at))
        changes["recent"] = RecentTimes.of(times, profile.recent.order_times())
    if event.type in BROWSE:
        changes["last_browse"] = _later(profile.last_browse, activity)
    elif event.type in CART:
        changes["last_cart"] = _later(profile.last_cart, activity)
    elif event.type in CHECKOUT:
        changes["last_checkout"] = _later(profile.last_checkout, activity)
    updated = profile.model_copy(update=changes)
    stamp = (browser_stamp(event.occurred_at, event.store_id, event.event_id) if event.from_browser
             else f"{event.occurred_at.isoformat()}|activity|{event.store_id}|{event.event_id}")
    if not event.identifies_only:
        updated = with_contact(updated, {"email": event.email, "phone": event.phone,
                                         "first_name": event.first_name, "last_name": event.last_name}, stamp)
    updated = with_confirmation(with_consents(updated, event.consents), event)
    return with_touch(updated, event.touch, event.from_browser)


# How many activity events a profile remembers as written before their lines (their markers): a retry of one
# finds it here unless this many other guard-last writes reached the same profile first (docs/profile-writes.md).
UNMARKED_KEPT = 10


def event_digest(store_id: str, event_id: str) -> str:
    """12 hex characters naming an activity event on its profile (a chance of 1 in 2^48 to confuse two)."""
    return hashlib.blake2b(f"{store_id}:{event_id}".encode(), digest_size=6).hexdigest()


def with_unmarked(profile: Profile, digest: str) -> Profile:
    """The profile remembering an event applied to it whose line is written after it (once: a retry that
    rewrites the profile to finish its links must not push another event's digest out)."""
    if digest in profile.unmarked_events:
        return profile
    return profile.model_copy(update={"unmarked_events": (*profile.unmarked_events, digest)[-UNMARKED_KEPT:]})


def with_confirmation(profile: Profile, event: ActivityEvent) -> Profile:
    """A followed double opt-in link (``event.confirms``) grants consent only as crm.consent.confirm_request
    allows: an open request, and the link's address still the profile's; otherwise it changes nothing."""
    statement = event.confirms
    address = event.email if statement and statement.channel is Channel.EMAIL else event.phone
    if statement is None or event.from_browser or address is None:
        return profile
    try:
        return confirm_request(profile, statement.channel, address, statement.at, statement.source)
    except ConsentNotConfirmable:
        return profile


def apply_customer(profile: Profile, record: CustomerRecord, now: datetime) -> Profile:
    """A platform account's contact fields, consent and tags (a deleted account changes nothing)."""
    if record.deleted:
        return profile.model_copy(update={"updated_at": now})
    updated = with_contact(
        profile, {f: getattr(record, f) for f in CONTACT_FIELDS},
        f"{record.updated_at.isoformat()}|customer|{record.store_id}|{record.customer_id}|{record.version}")
    tags = tuple(sorted(set(updated.tags) | set(record.tags)))
    return with_consents(updated, record.consents).model_copy(update={"tags": tags, "updated_at": now})


def _union(*groups: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({value for group in groups for value in group}))


# Identities a shopper gathers one per order, cart or checkout: their items point at the profile, but the
# profile does not list them, so it stays the same size however many orders it holds.
_PER_PURCHASE = ("order#", "cart#", "checkout#")


def linked(profile: Profile, identities: Iterable[str], store_id: str) -> Profile:
    kept = [identity for identity in identities if not identity.startswith(_PER_PURCHASE)]
    return profile.model_copy(update={"identities": _union(profile.identities, kept),
                                      "store_ids": _union(profile.store_ids, [store_id])})


def with_signed_browsers(profile: Profile, identities: Iterable[str]) -> Profile:
    """The profile once a signed record (an order, a platform's checkout, a signed activity) named these of
    its identities: the tracker's browser ids among them are the shopper's own (docs/consent.md)."""
    browsers = [identity for identity in identities if identity.startswith("anon#")]
    if not browsers or set(browsers) <= set(profile.signed_browsers):
        return profile
    return profile.model_copy(update={"signed_browsers": _union(profile.signed_browsers, browsers)})


def combine(survivor: Profile, others: Iterable[Profile], now: datetime) -> Profile:
    """One profile holding everything of ``survivor`` and ``others`` (a merge): totals add up, the
    earliest and latest are kept, and each latest-wins field keeps its latest statement."""
    result = survivor
    for other in others:
        for name in CONTACT_FIELDS:
            value, stamp = getattr(other, name), other.contact_sources.get(name, "")
            if value:
                result = with_contact(result, {name: value}, stamp)
        result = with_consents(result, [*other.consents.values(), *_as_statements(other)])
        for touch in (other.first_touch, other.last_touch):
            result = with_touch(result, touch)
        changes: dict[str, Any] = {
            "identities": _union(result.identities, other.identities),
            "signed_browsers": _union(result.signed_browsers, other.signed_browsers),
            "merged_from": _union(result.merged_from, other.merged_from, [other.profile_id]),
            "store_ids": _union(result.store_ids, other.store_ids),
            "tags": _union(result.tags, other.tags),
            "orders_count": result.orders_count + other.orders_count,
            "cancelled_count": result.cancelled_count + other.cancelled_count,
            "unpaid_orders_count": result.unpaid_orders_count + other.unpaid_orders_count,
            "spent_by_currency": add_sums(result.spent_by_currency, other.spent_by_currency),
            "refunded_by_currency": add_sums(result.refunded_by_currency, other.refunded_by_currency),
            "orders_by_currency": _add(result.orders_by_currency, other.orders_by_currency),
            "first_order_at": _earliest(result.first_order_at, other.first_order_at),
            "last_order_at": _latest(result.last_order_at, other.last_order_at),
            "products": _add(result.products, other.products),
            "categories": _add(result.categories, other.categories),
            "skus": _add(result.skus, other.skus),
            "coupons": _add(result.coupons, other.coupons),
            "activity_counts": _add(result.activity_counts, other.activity_counts),
            "last_seen_at": _latest(result.last_seen_at, other.last_seen_at),
            "created_at": min(result.created_at, other.created_at),
            "updated_at": now,
        }
        for name in ("last_browse", "last_cart", "last_checkout"):
            theirs = getattr(other, name)
            changes[name] = getattr(result, name) if theirs is None else _later(getattr(result, name), theirs)
        changes["recent"] = _merged_recent(result.recent, other.recent)
        changes["unmarked_events"] = (*result.unmarked_events, *other.unmarked_events)[-UNMARKED_KEPT:]
        changes["unwritten_orders"] = {**other.unwritten_orders, **result.unwritten_orders}
        result = with_figures(result.model_copy(update=changes), None)
    return without_browser_contact(result)


def _as_statements(profile: Profile) -> list[Consent]:
    """A profile's open requests as the browser statements they came from, to be combined like any other."""
    return [Consent(channel=request.channel, state=ConsentState.SUBSCRIBED, source=request.source, at=request.at)
            for request in profile.consent_requests.values()]


def with_signed_touches(profile: Profile, group: Iterable[Profile]) -> Profile:
    """The touches of a merge a browser caused: only those of the profiles a signed source knows, so an
    ``identify`` naming a known shopper's email cannot bring its browser's visits into their attribution."""
    known = [member for member in group if known_from_signed_source(member)]
    if not known:
        return profile
    result = profile.model_copy(update={"first_touch": None, "last_touch": None})
    for member in known:
        for touch in (member.first_touch, member.last_touch):
            result = with_touch(result, touch)
    return result


def _merged_recent(first: RecentTimes | None, second: RecentTimes | None) -> RecentTimes | None:
    # Either side unknown (written before times were kept) leaves the whole unknown: crm.changes rebuilds it
    # from the merged timelines at the next write that needs it.
    if first is None or second is None:
        return None
    mine, theirs = first.activity_times(), second.activity_times()
    return RecentTimes.of({kind: merged(mine.get(kind, ()), theirs.get(kind, ())) for kind in {*mine, *theirs}},
                          merged(first.order_times(), second.order_times()))


def tombstone(profile: Profile, survivor_id: str, now: datetime) -> Profile:
    """What is left of a merged profile: a pointer to the survivor, no personal data."""
    return Profile(workspace_id=profile.workspace_id, profile_id=profile.profile_id, merged_into=survivor_id,
                   created_at=profile.created_at, updated_at=now, revision=profile.revision)


def unmerged(marked: Profile) -> Profile:
    """A profile marked as merging whose survivor is gone (a privacy request erased that shopper before the merge
    was finished): live again as it was, the merge abandoned. The next write under its revision makes it so."""
    return marked.model_copy(update={"merged_into": None, "merging": False})
