"""A profile as segment conditions see it (a Subject): its events and orders as times.

Event conditions are evaluated against what the profile itself holds, not the timeline: each activity
type counts ``activity_counts[type]`` events, all placed at the latest time the profile knows for that
type (``last_browse``/``last_cart``/``last_checkout`` when they are of that type, else ``last_seen_at``),
and orders are ``orders_count`` placements at ``first_order_at`` (one) and ``last_order_at`` (the rest).
"Ever" counts are exact; a ``within_days`` window or a ``since`` anchor may count events older than the
window as recent.
"""

from __future__ import annotations

from datetime import datetime

from crm.models.profile import Profile
from crm.segments.evaluate import Subject

_LAST_ACTIVITY = ("last_browse", "last_cart", "last_checkout")


def subject_of(profile: Profile, segments: frozenset[str] = frozenset()) -> Subject:
    """The profile as a Subject; its events reconstructed from counts (see the module's note)."""
    known = {a.type: a.at for a in (getattr(profile, name) for name in _LAST_ACTIVITY) if a is not None}
    fallback = profile.last_seen_at or profile.updated_at
    events = tuple((kind, known.get(kind, fallback)) for kind, count in sorted(profile.activity_counts.items())
                   for _ in range(max(count, 0)))
    orders: tuple[datetime, ...] = ()
    if profile.orders_count and profile.first_order_at and profile.last_order_at:
        orders = (profile.first_order_at, *([profile.last_order_at] * (profile.orders_count - 1)))
    return Subject(profile=profile, events=events, orders=orders, segments=segments)


__all__ = ["subject_of"]
