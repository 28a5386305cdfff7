"""Identities: the keys a shopper is known by, and which profiles an event's identities bring together.

An identity is ``kind#value``: ``email#a@b.com``, ``phone#+15551234567``, ``customer#{store}#{id}``
(a platform account), ``anon#{store}#{id}`` (the storefront tracker's browser id), ``cart#{store}#{token}``,
``checkout#{store}#{token}`` and ``order#{store}#{id}``. Emails and phones unify across the stores of a
workspace; everything else is per store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from crm.models.canonical import ActivityEvent, CanonicalEvent, CustomerRecord
from crm.models.orders import CanonicalOrder
from crm.models.profile import Profile


def identities_of(event: CanonicalEvent) -> list[str]:
    """An event's identities, strongest first (the first names a new profile)."""
    store = event.store_id
    found: list[str | None] = []
    if isinstance(event, CanonicalOrder | ActivityEvent | CustomerRecord):
        found += [f"email#{event.email}" if event.email else None,
                  f"customer#{store}#{event.customer_id}" if event.customer_id else None,
                  f"phone#{event.phone}" if event.phone else None]
    if isinstance(event, CanonicalOrder | ActivityEvent):
        found += [f"anon#{store}#{event.anonymous_id}" if event.anonymous_id else None,
                  f"checkout#{store}#{event.checkout_token}" if event.checkout_token else None,
                  f"cart#{store}#{event.cart_token}" if event.cart_token else None]
    if isinstance(event, CanonicalOrder | ActivityEvent) and event.order_id:
        found.append(f"order#{store}#{event.order_id}")
    unique: list[str] = []
    for identity in found:
        if identity is not None and identity not in unique:
            unique.append(identity)
    return unique


def _kind(identity: str) -> str:
    return identity.partition("#")[0]


@dataclass(frozen=True)
class Resolution:
    """Which existing profile the event lands on, which merge into it, and which identities it claims."""

    primary: Profile | None  # None: a new profile
    merged: tuple[Profile, ...]
    claimed: tuple[str, ...]  # identities to point at the survivor (new, or taken over from merged profiles)
    reason: str


def resolve(identities: Sequence[str], owners: Mapping[str, Profile], email: str | None,
            anchor: Profile | None = None) -> Resolution:
    """Decide where an event with ``identities`` belongs, given the live profile owning each known identity.

    Profiles that share an identity with the event are one shopper and merge, except that two profiles
    holding different email addresses are kept apart unless a platform account links them (one account
    whose email changed): a shared browser, phone or cart is not proof enough. ``anchor`` is the profile
    the event is already tied to (an order's profile), which the event never leaves.
    """
    strongest = next((owners[i] for i in identities if i in owners), None)
    primary = anchor or strongest
    if primary is None:
        return Resolution(None, (), tuple(identities), "new")
    target_email = email or primary.email
    accounts = {i for i in identities if _kind(i) == "customer"}
    merged: dict[str, Profile] = {}
    for identity in identities:
        owner = owners.get(identity)
        if owner is None or owner.profile_id == primary.profile_id or owner.profile_id in merged:
            continue
        same_person = not owner.email or not target_email or owner.email == target_email
        if same_person or identity in accounts:
            merged[owner.profile_id] = owner
            if owner.email and not target_email:
                target_email = owner.email
    group = {primary.profile_id, *merged}
    claimed = tuple(i for i in identities if i not in owners or owners[i].profile_id in group)
    reason = ", ".join(i for i in identities if i in owners and owners[i].profile_id in merged) or "event"
    return Resolution(primary, tuple(merged.values()), claimed, reason)
