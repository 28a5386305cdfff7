"""A stored profile as the Subject a segment definition is evaluated against: its events and orders in time.

A profile keeps the times of its latest crm.recent.RECENT_KEPT occurrences of each activity type and of
its counted orders (``profile.recent``), beside counters of all of them. The Subject holds every kept time
as it is. Occurrences older than the kept ones (a counter above RECENT_KEPT) are placed at the oldest kept
time (orders: the first of them at ``first_order_at``): they happened no later than that, so whole-history
counts stay exact at any size, and no window or ``since`` count the definition language allows can tell
them from their true times (docs/segments.md, "How exact event counts are").

Profiles written before times were kept have ``recent`` None until their next order or activity rebuilds
it from their timeline (crm.changes). Until then their times are unknown, and they are reconstructed from
the counters as before: every activity of a type at the latest time the profile knows for that type (its
last browse, cart or checkout when of that type, else when it was last seen), and orders as one at
``first_order_at`` and the rest at ``last_order_at``. "Ever" counts are exact for them; windows and
``since`` are approximate. The same placement fills in occurrences a kept list lacks (a history that lost
entries), so a count is never lower than the counter says.
"""

from __future__ import annotations

from datetime import datetime

from crm.models.profile import Profile, RecentTimes
from crm.recent import complete, moment
from crm.segments.evaluate import Subject

_LAST_ACTIVITY = ("last_browse", "last_cart", "last_checkout")


def subject_of(profile: Profile, segments: frozenset[str] = frozenset()) -> Subject:
    """The profile as a Subject, with the ids of the segments it belongs to now."""
    if profile.recent is None:
        return _reconstructed(profile, segments)
    return _from_kept(profile, profile.recent, segments)


def _latest_known(profile: Profile) -> dict[str, datetime]:
    """The latest time the profile knows for each activity type (falls back to when it was last seen)."""
    return {a.type: a.at for a in (getattr(profile, name) for name in _LAST_ACTIVITY) if a is not None}


def _fallback(profile: Profile) -> datetime:
    return profile.last_seen_at or profile.updated_at


def _reconstructed(profile: Profile, segments: frozenset[str]) -> Subject:
    known, fallback = _latest_known(profile), _fallback(profile)
    events = tuple((kind, known.get(kind, fallback)) for kind, count in sorted(profile.activity_counts.items())
                   for _ in range(max(count, 0)))
    orders: tuple[datetime, ...] = ()
    if profile.orders_count and profile.first_order_at and profile.last_order_at:
        orders = (profile.first_order_at, *([profile.last_order_at] * (profile.orders_count - 1)))
    return Subject(profile=profile, events=events, orders=orders, segments=segments)


def _occurrences(kept: tuple[int, ...], total: int, unknown_at: datetime | None,
                 first: datetime | None = None) -> list[datetime]:
    """The kept times, and one time for each occurrence counted but not kept."""
    times = [moment(value) for value in kept]
    missing = total - len(kept)
    if missing <= 0:
        return times
    if complete(kept, total):
        # Older than every kept time: placed at the oldest kept one (the very first where it is known).
        oldest = times[-1]
        earliest = [first] if first is not None and first < oldest else []
        return [*times, *earliest, *[oldest] * (missing - len(earliest))]
    if unknown_at is None:
        return times
    return [*times, *[unknown_at] * missing]


def _from_kept(profile: Profile, recent: RecentTimes, segments: frozenset[str]) -> Subject:
    known, fallback = _latest_known(profile), _fallback(profile)
    kept = recent.activity_times()
    events = tuple(
        (kind, at)
        for kind in sorted({*profile.activity_counts, *kept})
        for at in _occurrences(kept.get(kind, ()), profile.activity_counts.get(kind, 0), known.get(kind, fallback)))
    orders = tuple(_occurrences(recent.order_times(), profile.orders_count, profile.last_order_at,
                                profile.first_order_at))
    return Subject(profile=profile, events=events, orders=orders, segments=segments)


__all__ = ["subject_of"]
