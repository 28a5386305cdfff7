"""How an order changes a profile: plain functions over models, no AWS.

Totals are kept order-safe: each order counts once, at its newest version, so duplicates and
late, out-of-order updates never change them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from crm.models.orders import CanonicalOrder
from crm.models.profile import OrderRecord, Profile

_PROFILE_NAMESPACE = uuid.UUID("5b0b5a52-93b0-4d4a-9d8e-8f3f2a1c7e10")


def profile_id_for(workspace_id: str, identity: str) -> str:
    """The profile id a first identity gets: deterministic, so a replay rebuilds the same ids."""
    return uuid.uuid5(_PROFILE_NAMESPACE, f"{workspace_id}|{identity}").hex


def primary_identity(order: CanonicalOrder) -> str:
    """The identity a profile is found by: email, else phone, else the platform's customer id.

    A guest order with none of them still gets a profile of its own, so no order is lost.
    """
    if order.email:
        return f"email#{order.email}"
    if order.phone:
        return f"phone#{order.phone}"
    if order.customer_id:
        return f"customer#{order.store_id}#{order.customer_id}"
    return f"order#{order.store_id}#{order.order_id}"


@dataclass(frozen=True)
class OrderApplied:
    profile: Profile
    record: OrderRecord


def is_newer(order: CanonicalOrder, previous: OrderRecord | None) -> bool:
    return previous is None or order.version > previous.order.version


def _earliest(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b < a else a


def _latest(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


CONTACT_FIELDS = ("email", "phone", "first_name", "last_name")


def _contact_changes(profile: Profile, order: CanonicalOrder) -> dict[str, object]:
    """Contact fields this order supplies: each one from the latest order (then version) that has it."""
    source = f"{order.created_at.isoformat()}|{order.store_id}|{order.order_id}|{order.version}"
    sources = dict(profile.contact_sources)
    changes: dict[str, object] = {}
    for field in CONTACT_FIELDS:
        value = getattr(order, field)
        if value and source >= sources.get(field, ""):
            changes[field] = value
            sources[field] = source
    changes["contact_sources"] = sources
    return changes


def apply_order(
    profile: Profile, previous: OrderRecord | None, order: CanonicalOrder, now: datetime
) -> OrderApplied | None:
    """The profile after ``order``; None when it is a duplicate or older than what we hold."""
    if not is_newer(order, previous):
        return None
    previous_net = previous.order.net_total if previous else Decimal("0.00")
    changes: dict[str, object] = {
        "orders_count": profile.orders_count + (0 if previous else 1),
        "total_spent": profile.total_spent + order.net_total - previous_net,
        "currency": profile.currency or order.currency,
        "first_order_at": _earliest(profile.first_order_at, order.created_at),
        "last_order_at": _latest(profile.last_order_at, order.created_at),
        "updated_at": now,
        "revision": profile.revision + 1,
    }
    changes.update(_contact_changes(profile, order))
    updated = profile.model_copy(update=changes)
    return OrderApplied(profile=updated, record=OrderRecord(profile_id=profile.profile_id, order=order))
