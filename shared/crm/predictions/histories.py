"""Each profile's counted paid orders as the models learn from them, read from the profile alone.

The scheduled run reads every profile of a workspace anyway (through the workspace index); reading each
profile's orders or timeline as well would be a Query per profile per day. A profile already keeps what a
buy-till-you-die model needs: when its counted orders were placed (``recent``: the latest
crm.recent.RECENT_KEPT times, exact; older ones counted but placed at the oldest kept time, as segments
place them, so a shopper with more orders than are kept has fewer *distinct days* here than in truth) and
what they came to in the workspace's reporting currency (crm.reporting). Each order is given the profile's
average order value: Gamma-Gamma learns from a customer's mean spend, which that is. A merged profile's
orders count for the survivor, whose times and sums the merge combined. Orders in a currency without a
rate are left out of the amount, as crm.reporting leaves them out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal

from crm.models.profile import Profile
from crm.recent import moment

History = tuple[tuple[datetime, Decimal], ...]


def order_times(profile: Profile) -> list[datetime]:
    """When the profile's counted orders were placed, oldest first (one time per counted order)."""
    count = profile.orders_count
    if count <= 0 or profile.first_order_at is None:
        return []
    kept = [moment(value) for value in profile.recent.order_times()] if profile.recent else []
    if not kept:
        # Written before times were kept: the first order at first_order_at, the rest at last_order_at.
        last = profile.last_order_at or profile.first_order_at
        return [profile.first_order_at, *[last] * (count - 1)]
    kept.sort()
    missing = count - len(kept)
    if missing > 0:
        earliest = [profile.first_order_at] if profile.first_order_at < kept[0] else []
        kept = [*earliest, *[kept[0]] * (missing - len(earliest)), *kept]
    return kept[-count:]


def history_of(profile: Profile) -> History:
    """The profile's counted orders as ``(placed_at, amount in the reporting currency)``."""
    times = order_times(profile)
    amount = profile.average_order_value
    return tuple((at, amount) for at in times)


def histories_of(profiles: Iterable[Profile]) -> dict[str, History]:
    """Every live profile's history by profile id (a profile without orders has an empty one)."""
    return {p.profile_id: history_of(p) for p in profiles if p.merged_into is None}


def currency_of(profiles: Mapping[str, Profile]) -> str | None:
    """The reporting currency the profiles' figures are in (the workspace's; the first profile's says)."""
    return next((p.currency for p in profiles.values() if p.currency), None)


__all__ = ["History", "currency_of", "histories_of", "history_of", "order_times"]
